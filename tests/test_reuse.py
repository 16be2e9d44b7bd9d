"""Numbers you can trust: a result is reused only when it was made by exactly this setup (weights,
key-frame codec, binaries, cfg content, sequence file, frames), only this sweep's results count, a
report compares like with like, and two sweeps on one run folder do each job once."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ctc.results import load_results, read_result
from ctc.runner import main
from models.checkpoints import ENV_VAR
from models.registry import get_model_class, load_model_config

DEMO_ONE = ["testset=demo", "testset.sequences=[DEMO_001]", "metrics=psnr"]


def stamps(run_dir: Path, codec: str = "*") -> dict[Path, str]:
    """Each job result's content hash (a redone job's result has new timings and time stamp)."""
    paths = run_dir.glob(f"{codec}/*/*/result.json")
    return {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in paths}


def cfte_checkpoint_folder(tmp_path: Path) -> Path:
    """A folder with a valid CFTE checkpoint in the layout the model itself has, where the harness looks."""
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    networks = get_model_class("cfte").build_networks(load_model_config("cfte")["model_params"])
    torch.save(
        {name: network.state_dict() for name, network in networks.items()}, folder / "CFTE-checkpoint.pth.tar"
    )
    return folder


@pytest.mark.slow
def test_workers_kept_from_an_earlier_sweep_load_what_this_sweep_planned(tmp_path, monkeypatch):
    """joblib keeps its workers between the sweeps of one process (a notebook, a test session): a checkpoint
    folder named after they started is the one their jobs load, as the results' identities say."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    sweep = [
        "codec=cfte",
        "anchor=none",
        *DEMO_ONE,
        "testset.frames=2",
        "codec.rate_points=[37,42]",
        "picture_codec@codec.intra=vvenc",
        "report=false",
        "jobs=2",
    ]
    main([*sweep, f"results_dir={tmp_path / 'random'}"])  # the workers start without a checkpoint
    monkeypatch.setenv(ENV_VAR, str(cfte_checkpoint_folder(tmp_path)))
    main([*sweep, f"results_dir={tmp_path / 'trained'}"])
    for rate_point in (37, 42):
        result = read_result(tmp_path / "trained" / "demo-f2" / "cfte" / "DEMO_001" / str(rate_point))
        assert result["identity"]["codec"]["weights"].startswith("CFTE-checkpoint.pth.tar sha256 ")
        assert result["status"] == "ok" and result["random_weights"] is False, result.get("error")


@pytest.mark.slow
def test_a_checkpoint_installed_after_a_random_weight_run_redoes_the_job(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(ENV_VAR, raising=False)
    sweep = [
        "codec=cfte",
        "anchor=none",
        *DEMO_ONE,
        "testset.frames=2",
        "codec.rate_points=[42]",
        "picture_codec@codec.intra=vvenc",
        f"results_dir={tmp_path / 'results'}",
        "jobs=1",
    ]
    main(sweep)
    job = tmp_path / "results" / "demo-f2" / "cfte" / "DEMO_001" / "42"
    first = read_result(job)
    assert first["random_weights"] is True and first["identity"]["codec"]["weights"] == "random (seed 0)"
    monkeypatch.setenv(ENV_VAR, str(cfte_checkpoint_folder(tmp_path)))
    capsys.readouterr()
    main(sweep)
    second = read_result(job)
    weights = second["identity"]["codec"]["weights"]
    assert second["random_weights"] is False and second["status"] == "ok"
    assert weights.startswith("CFTE-checkpoint.pth.tar sha256 ") and len(weights.split()[-1]) == 64
    assert second["config_hash"] != first["config_hash"]
    assert "cfte: codec.weights: random (seed 0) -> CFTE-checkpoint.pth.tar sha256" in capsys.readouterr().err


@pytest.mark.vtm
@pytest.mark.slow
def test_a_new_key_frame_codec_or_vtm_cfg_redoes_exactly_the_affected_jobs(
    real_vtm, tmp_path, monkeypatch, capsys
):
    from anchors.vtm_tools import find_encoder_cfg, find_program

    cfg = tmp_path / "encoder_lowdelay_vtm.cfg"
    cfg.write_text(
        find_encoder_cfg(real_vtm, find_program(real_vtm, "encoder", ("EncoderAppStatic",))).read_text()
    )
    results = tmp_path / "results"
    sweep = [
        "codec=cfte",
        "codec.weights=random",
        "anchor=vtm",
        f"anchor.cfg={cfg}",
        *DEMO_ONE,
        "testset.frames=2",
        "codec.rate_points=[42]",
        "anchor.rate_points=[42]",
        "report=false",
        f"results_dir={results}",
        "jobs=2",
    ]
    run_dir = results / "demo-f2"
    empty = tmp_path / "no-vtm"
    empty.mkdir()
    main([*sweep, "picture_codec@codec.intra=vvenc"])
    assert (
        read_result(run_dir / "cfte/DEMO_001/42")["identity"]["codec"]["key_frame_codec"]["config"]["name"]
        == "vvenc"
    )
    anchor_jobs, test_jobs = stamps(run_dir, "vtm"), stamps(run_dir, "cfte")
    assert len(anchor_jobs) == 1 and len(test_jobs) == 1
    main([*sweep, "picture_codec@codec.intra=vtm"])  # the key frame through VTM: the cfte job only
    assert stamps(run_dir, "vtm") == anchor_jobs and stamps(run_dir, "cfte") != test_jobs
    assert "key_frame_codec" in capsys.readouterr().err
    test_jobs = stamps(run_dir, "cfte")
    cfg.write_text(cfg.read_text() + "\n# the same options, another file\n")
    main([*sweep, "picture_codec@codec.intra=vtm"])  # the anchor's cfg changed: the anchor's jobs only
    assert stamps(run_dir, "cfte") == test_jobs
    assert all(stamps(run_dir, "vtm")[path] != stamp for path, stamp in anchor_jobs.items())
    assert "vtm: codec.cfg_sha256:" in capsys.readouterr().err


@pytest.mark.slow
def test_a_frames_limited_run_stays_apart_and_a_mismatch_is_a_gap(tmp_path, capsys):
    results = tmp_path / "results"
    common = ["codec=x265", *DEMO_ONE, f"results_dir={results}", "jobs=2", "report_page.enabled=false"]
    main([*common, "anchor=vvenc", "testset.frames=4"])
    full = results / "demo-f4"
    report = (full / "report" / "summary.md").read_text()
    main([*common, "anchor=vvenc", "testset.frames=2"])  # the README's quick look
    assert (results / "demo-f2" / "report" / "summary.md").is_file()
    assert (full / "report" / "summary.md").read_text() == report
    # by hand, into one run folder: the anchor at 2 frames, the test codec at 4
    main([*common, "anchor=vvenc", "testset.frames=2", "run=mixed"])
    main([*common, "anchor=none", "testset.frames=4", "run=mixed", "report=false"])
    capsys.readouterr()
    assert main_report(results / "mixed") == 0
    out = capsys.readouterr().out
    assert "setup mismatch: x265 DEMO_001" in out and "frames 4 vs the anchor's 2" in out
    bd = json.loads((results / "mixed" / "report" / "report.json").read_text())["bd"]
    assert all(row["bd_rate"] is None for row in bd if row["level"] == "sequence")


def main_report(run_dir: Path) -> int:
    from ctc.report.cli import main as report_main

    return report_main([str(run_dir), "--no-plots"])


def logging_ffmpeg(folder: Path, log: Path) -> Path:
    """An FFmpeg that notes each call in ``log`` and runs the real one (imageio-ffmpeg's)."""
    from ctc.tools import ffmpeg_exe

    wrapper = folder / "ffmpeg"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {ffmpeg_exe()} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


@pytest.mark.slow
def test_two_sweeps_on_one_run_folder_code_each_job_once_and_equal_a_sequential_run(tmp_path, monkeypatch):
    log = tmp_path / "ffmpeg-calls.txt"
    env = {**os.environ, "IMAGEIO_FFMPEG_EXE": str(logging_ffmpeg(tmp_path, log))}
    common = [
        "codec=x265",
        "anchor=vvenc",
        "testset=demo",
        "testset.frames=2",
        "metrics=psnr",
        "jobs=1",
        "report_page.enabled=false",
        "run=shared",
    ]
    first = [*common, "testset.sequences=[DEMO_001]", f"results_dir={tmp_path / 'together'}"]
    second = [*common, "testset.sequences=[DEMO_001,DEMO_002]", f"results_dir={tmp_path / 'together'}"]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "ctc.runner", *args],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for args in (first, second)
    ]
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    encodes = [line for line in log.read_text().splitlines() if "_input.yuv" in line]
    bitstreams = [Path(line.split()[-1]) for line in encodes]  # .../<codec>/<seq>/<qp>/<bitstream>
    coded = sorted(f"{path.parents[2].name}/{path.name}" for path in bitstreams)
    assert len(coded) == len(set(coded)) == 16  # 2 sequences x (4 + 4) rate points, each coded once
    together = tmp_path / "together" / "shared"
    assert len(list((together / "provenance").glob("*.json"))) == 2  # one per sweep, none overwritten
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", env["IMAGEIO_FFMPEG_EXE"])  # the same binary: the same identity
    main(
        [
            *common[:-1],
            "run=alone",
            "testset.sequences=[DEMO_001,DEMO_002]",
            f"results_dir={tmp_path / 'sequential'}",
        ]
    )
    columns = ["codec", "sequence", "rate_point", "kbps", "psnr", "config_hash", "status"]
    expected = load_results(tmp_path / "sequential" / "alone")[columns]
    assert load_results(together)[columns].equals(expected)
