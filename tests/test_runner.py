"""ctc-run on a tiny test set with the fake codec (tests/fake_codec.py): jobs, resume, failures, errors."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctc.codec import codec_class
from ctc.devices import DeviceError, codec_devices
from ctc.jobs import Job, plan_jobs
from ctc.results import load_results, read_result
from ctc.runner import main
from ctc.testset.sequences import SequenceSpec

TESTS = Path(__file__).resolve().parent
NAMES = ["SEQ_A", "SEQ_B", "SEQ_C"]
WIDTH = HEIGHT = 64
FRAMES = 4
CODEC_RATE_POINTS = [1, 3]
ANCHOR_RATE_POINTS = [2, 4]
FPS = {"SEQ_A": 25, "SEQ_B": 30, "SEQ_C": 25}


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A 3-sequence test set of random 64x64 frames, the fake codec and anchor as Hydra configs.

    Returns the overrides that select them; results go to ``tmp_path/results``.
    """
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.delenv("FAKE_CODEC_INTERRUPT", raising=False)
    rng = np.random.default_rng(0)
    (tmp_path / "seqs").mkdir()
    for name in NAMES:
        frames = rng.integers(0, 256, (FRAMES, 3, HEIGHT, WIDTH), dtype=np.uint8)
        frames.tofile(tmp_path / "seqs" / f"{name}.rgb")
    entries = "".join(f"      - {{name: {name}, class: T{name[-1]}, fps: {FPS[name]}}}\n" for name in NAMES)
    (tmp_path / "sequences.yaml").write_text(
        "file_template: '{name}.rgb'\ntest_sets:\n  tiny:\n    root: null\n"
        f"    defaults: {{width: {WIDTH}, height: {HEIGHT}, frames: {FRAMES}}}\n    sequences:\n{entries}"
    )
    conf = tmp_path / "conf"
    for group in ("codec", "anchor", "testset"):
        (conf / group).mkdir(parents=True)
    (conf / "codec" / "fake.yaml").write_text(
        f"name: fake\nmodule: fake_codec\ntype: fake\nrate_points: {CODEC_RATE_POINTS}\n"
    )
    (conf / "anchor" / "fake_anchor.yaml").write_text(
        f"name: fake_anchor\nmodule: fake_codec\ntype: fake_anchor\nrate_points: {ANCHOR_RATE_POINTS}\n"
    )
    (conf / "testset" / "tiny.yaml").write_text(
        f"name: tiny\nroot: {tmp_path / 'seqs'}\nsequences: null\nframes: null\n"
        f"sequences_file: {tmp_path / 'sequences.yaml'}\n"
    )
    # report=false: the fake anchor has two rate points, too few for BD-rate
    return [
        f"hydra.searchpath=[file://{conf}]",
        "codec=fake",
        "anchor=fake_anchor",
        "testset=tiny",
        "metrics=psnr",
        "report=false",
        f"results_dir={tmp_path / 'results'}",
    ]


def run_dir_of(overrides: list[str], run: str = "tiny") -> Path:
    results_dir = next(o.split("=", 1)[1] for o in overrides if o.startswith("results_dir="))
    return Path(results_dir) / run


def expected_psnr(path: Path, shift: int) -> float:
    """What the fake codec's reconstruction scores, computed here from the original frames."""
    original = np.fromfile(path, np.uint8).reshape(FRAMES, 3, HEIGHT, WIDTH)
    decoded = ((original >> shift) << shift) + ((1 << shift) >> 1)
    mse = ((original.astype(np.float64) - decoded) ** 2).mean(axis=(2, 3))
    return float((10 * np.log10(255.0**2 / mse)).mean(axis=1).mean())  # per plane, then RGB, then frames


def digests(paths: Iterable[Path]) -> dict[Path, str]:
    """Each file's content hash: a job redone rewrites its result (new timings, time stamp) even where
    the file system's clock would give it the same mtime."""
    return {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in paths}


def snapshot(run_dir: Path) -> dict[str, tuple]:
    """Per job: the bitstream bytes and the numbers of its result (not its timings or time stamps)."""
    jobs = {}
    for path in sorted(run_dir.glob("*/*/*/result.json")):
        result = json.loads(path.read_text())
        jobs[str(path.parent.relative_to(run_dir))] = (
            (path.parent / "stream.bin").read_bytes(),
            result["status"],
            result["bits"],
            result["kbps"],
            result["metrics"],
            result["config_hash"],
            (path.parent / "per_frame.csv").read_text(),
        )
    return jobs


@pytest.mark.slow  # starts joblib worker processes, each importing torch
def test_sweep_runs_every_job_in_parallel_workers_and_writes_results(tiny, tmp_path, capsys):
    main([*tiny, "jobs=2"])
    run_dir = run_dir_of(tiny)
    printed = capsys.readouterr().out
    table = load_results(run_dir)
    assert len(table) == len(NAMES) * (len(CODEC_RATE_POINTS) + len(ANCHOR_RATE_POINTS)) == 12
    assert (table.status == "ok").all()
    assert set(zip(table.codec, table.role, strict=True)) == {("fake", "test"), ("fake_anchor", "anchor")}
    for row in table.itertuples():
        directory = run_dir / row.codec / row.sequence / str(row.rate_point)
        result = read_result(directory)
        assert result["bits"]["total"] == 8 * (directory / "stream.bin").stat().st_size
        assert result["bits"]["total"] == sum(result["bits"]["parts"].values())
        assert result["kbps"] == pytest.approx(result["bits"]["total"] / 1000 * FPS[row.sequence] / FRAMES)
        assert result["fps"] == FPS[row.sequence] and result["frames"] == FRAMES
        assert result["metrics"]["psnr"] == pytest.approx(
            expected_psnr(tmp_path / "seqs" / f"{row.sequence}.rgb", row.rate_point), abs=1e-9
        )
        assert result["metric_directions"] == {"psnr": "higher_is_better"}
        assert result["codec_version"] == "fake 1.0" and result["random_weights"] is False
        assert result["commands"]["encode"] == [["fake-enc", f"--shift={row.rate_point}"]]
        assert "fake encoder" in (directory / "job.log").read_text()
        assert len(pd.read_csv(directory / "per_frame.csv")) == FRAMES
        assert not (directory / "decoded.rgb").exists()  # keep_decoded=false
    summary = pd.read_csv(run_dir / "summary.csv")
    assert len(summary) == 12 and summary.psnr.tolist() == pytest.approx(table.psnr.tolist())
    assert "fake_anchor" in printed and "SEQ_C" in printed
    provenance = json.loads((run_dir / "provenance.json").read_text())
    assert provenance["anchor"] == "fake_anchor" and provenance["codec"] == "fake"
    assert provenance["codec_versions"] == {"fake": ["fake 1.0"], "fake_anchor": ["fake 1.0"]}
    assert provenance["config"]["codec"]["rate_points"] == CODEC_RATE_POINTS
    assert provenance["packages"]["numpy"] == np.__version__ and "commit" in provenance["git"]
    assert json.loads((run_dir / "fake_anchor" / "provenance.json").read_text())["role"] == "anchor"


def test_rerun_skips_complete_jobs_and_redoes_stale_or_failed_ones(tiny):
    main([*tiny, "launcher=basic", "anchor=none"])
    run_dir = run_dir_of(tiny)
    stamps = digests(run_dir.glob("*/*/*/result.json"))
    assert len(stamps) == 6
    main([*tiny, "launcher=basic", "anchor=none"])
    assert digests(stamps) == stamps  # nothing redone
    failed, stale = run_dir / "fake/SEQ_A/1/result.json", run_dir / "fake/SEQ_B/3/result.json"
    failed.write_text(json.dumps({**json.loads(failed.read_text()), "status": "failed"}))
    stale.write_text(json.dumps({**json.loads(stale.read_text()), "config_hash": "0" * 16}))
    (run_dir / "fake/SEQ_C/1/result.json").unlink()
    stamps = digests(p for p in stamps if p.exists())
    main([*tiny, "launcher=basic", "anchor=none"])
    after = digests(run_dir.glob("*/*/*/result.json"))
    redone = {p for p, digest in after.items() if stamps.get(p) != digest}
    assert redone == {failed, stale, run_dir / "fake/SEQ_C/1/result.json"}
    assert (load_results(run_dir).status == "ok").all()
    full = digests(run_dir.glob("*/*/*/result.json"))
    main([*tiny, "launcher=basic", "anchor=none", "testset.frames=3"])  # a run folder of its own
    table = load_results(run_dir_of(tiny, "tiny-f3"))
    assert (table.frames == 3).all() and len(table) == 6
    assert digests(full) == full  # the full run is left as it was


def test_a_new_metric_rescores_complete_jobs_from_their_bitstreams(tiny):
    main([*tiny, "launcher=basic", "anchor=none"])
    run_dir = run_dir_of(tiny)
    streams = digests(run_dir.glob("*/*/*/stream.bin"))
    first = {p: read_result(p.parent) for p in streams}
    main([*tiny, "launcher=basic", "anchor=none", "metrics.names=[psnr,psnr_y]"])
    assert digests(streams) == streams  # and each result says its bitstream was reused:
    for stream, before in first.items():
        after = read_result(stream.parent)
        assert after["reused_bitstream"] and after["bits"] == before["bits"]
        assert after["commands"]["encode"] == before["commands"]["encode"]
        assert after["metrics"]["psnr"] == before["metrics"]["psnr"] and after["metrics"]["psnr_y"] > 0
    stamps = digests(run_dir.glob("*/*/*/result.json"))
    main([*tiny, "launcher=basic", "anchor=none", "metrics.names=[psnr_y]"])  # a subset: nothing to do
    assert digests(stamps) == stamps


def test_interrupted_sweep_resumes_to_the_results_of_an_uninterrupted_one(tiny, tmp_path, monkeypatch):
    reference = [*tiny[:-1], f"results_dir={tmp_path / 'reference'}"]
    main([*reference, "launcher=basic"])
    monkeypatch.setenv("FAKE_CODEC_INTERRUPT", "SEQ_B/3")  # Ctrl-C half way through this job's encoding
    with pytest.raises(SystemExit, match="130"):
        main([*tiny, "launcher=basic"])
    run_dir = run_dir_of(tiny)
    interrupted = run_dir / "fake/SEQ_B/3"
    assert (interrupted / "stream.bin").exists() and read_result(interrupted) is None
    status = {
        str(p.parent.relative_to(run_dir)): read_result(p.parent)["status"]
        for p in run_dir.glob("*/*/*/result.json")
    }
    # sequence by sequence: SEQ_A coded and scored (both codecs), SEQ_B/1 decoded, waiting for its scoring
    assert status == {
        "fake/SEQ_A/1": "ok",
        "fake/SEQ_A/3": "ok",
        "fake_anchor/SEQ_A/2": "ok",
        "fake_anchor/SEQ_A/4": "ok",
        "fake/SEQ_B/1": "decoded",
    }
    done_before = digests(run_dir.glob("*/SEQ_A/*/result.json"))
    coded_before = read_result(run_dir / "fake/SEQ_B/1")
    monkeypatch.delenv("FAKE_CODEC_INTERRUPT")
    main([*tiny, "launcher=basic"])
    assert digests(done_before) == done_before
    scored = read_result(run_dir / "fake/SEQ_B/1")  # scored, not coded again: its encoding's record kept
    assert (scored["enc_seconds"], scored["bits"]) == (coded_before["enc_seconds"], coded_before["bits"])
    assert snapshot(run_dir) == snapshot(run_dir_of(reference))
    assert len(snapshot(run_dir)) == 12


@pytest.mark.slow  # a ctc-run process of its own
def test_a_killed_sweep_resumes_to_the_results_of_an_uninterrupted_one(tiny, tmp_path):
    reference = [*tiny[:-1], f"results_dir={tmp_path / 'reference'}", "launcher=basic"]
    main(reference)
    run_dir = run_dir_of(tiny)
    env = {**os.environ, "FAKE_CODEC_HANG": "SEQ_C/1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "ctc.runner", *tiny, "launcher=basic"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "fake/SEQ_C/1/hanging").exists():
            assert process.poll() is None and time.monotonic() < deadline, "the sweep never reached SEQ_C/1"
            time.sleep(0.1)
    finally:
        process.kill()
        process.wait()
    done_before = digests(run_dir.glob("*/*/*/result.json"))
    # sequence by sequence: SEQ_A and SEQ_B coded and scored
    assert len(done_before) == 8 and read_result(run_dir / "fake/SEQ_C/1") is None
    main([*tiny, "launcher=basic"])
    assert digests(done_before) == done_before
    assert snapshot(run_dir) == snapshot(run_dir_of(reference)) and len(snapshot(run_dir)) == 12


def test_failing_jobs_are_recorded_the_others_complete_and_the_run_exits_nonzero(tiny, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*tiny, "launcher=basic", "+codec.fail_on=[SEQ_B/3]", "+anchor.short_decode=true"])
    assert exit_info.value.code == 1
    run_dir = run_dir_of(tiny)
    table = load_results(run_dir)
    failed = table[table.status == "failed"]
    assert set(zip(failed.codec, failed.sequence, failed.rate_point, strict=True)) == (
        {("fake", "SEQ_B", 3)} | {("fake_anchor", name, rp) for name in NAMES for rp in ANCHOR_RATE_POINTS}
    )
    assert (table[table.codec == "fake"].status == "ok").sum() == 5
    crash = read_result(run_dir / "fake/SEQ_B/3")
    assert crash["error"] == "CodecError: fake encoder crashed on purpose on SEQ_B/3"
    assert "Traceback" in crash["log_tail"] and "Traceback" in (run_dir / "fake/SEQ_B/3/job.log").read_text()
    short = read_result(run_dir / "fake_anchor/SEQ_A/2")
    assert f"expected {FRAMES} frames" in short["error"] and "decoded file" in short["error"]
    err = capsys.readouterr().err
    assert "7 of 12 jobs failed" in err and "fake/SEQ_B/3: CodecError: fake encoder crashed" in err
    assert (run_dir / "summary.csv").exists()


@pytest.mark.parametrize(
    ("override", "code", "message"),
    [
        ("codec=no_such_codec", 2, "Could not find 'codec/no_such_codec'"),
        ("testset=no_such_set", 2, "Could not find 'testset/no_such_set'"),
        ("testset.sequences=[SEQ_A,SEQ_X]", 2, "unknown sequence SEQ_X in test set tiny"),
        ("codec.module=no_such_module", 2, "codec 'fake': cannot import its module 'no_such_module'"),
        ("scoring=later", 2, "scoring='later': expected one of sequence, job"),
    ],
)
def test_unknown_names_stop_the_run_before_any_job(tiny, capsys, override, code, message):
    with pytest.raises(SystemExit) as exit_info:
        main([*tiny, override])
    assert exit_info.value.code == code
    captured = capsys.readouterr()
    assert message in captured.out + captured.err
    assert not list(run_dir_of(tiny).glob("*/*/*/result.json"))


def test_a_bad_sequence_file_stops_the_run_with_its_name(tiny, tmp_path, capsys):
    path = tmp_path / "seqs" / "SEQ_C.rgb"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(SystemExit) as exit_info:
        main(tiny)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"file {path} is" in err and "not a whole number" in err


def test_anchor_none_sweeps_the_codec_alone_and_random_weights_are_labelled(tiny, capsys):
    main(
        [
            *tiny,
            "anchor=none",
            "launcher=basic",
            "testset.sequences=[SEQ_A]",
            "run=alone",
            "+codec.random_weights=true",
        ]
    )
    table = load_results(run_dir_of(tiny, "alone"))
    assert list(zip(table.codec, table.rate_point, strict=True)) == [("fake", 1), ("fake", 3)]
    assert table.random_weights.all()
    assert "WARNING: fake ran with RANDOM weights" in capsys.readouterr().out
    assert json.loads((run_dir_of(tiny, "alone") / "provenance.json").read_text())["anchor"] is None


def _spec(name: str) -> SequenceSpec:
    return SequenceSpec(name, "T", f"{name}.rgb", WIDTH, HEIGHT, FRAMES, 25.0)


def test_gpu_codecs_get_a_device_each_round_robin_and_cpu_codecs_the_cpu(monkeypatch, tmp_path):
    import torch

    specs = [replace(_spec(name), root=tmp_path) for name in ("S1", "S2")]
    for spec in specs:
        spec.path.write_bytes(bytes(FRAMES * spec.frame_bytes))

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    sections = {
        "test": {"name": "fake_gpu", "module": "fake_codec", "type": "fake_gpu", "rate_points": [1, 3]},
        "anchor": {"name": "fake_anchor", "module": "fake_codec", "type": "fake_anchor", "rate_points": [2]},
    }
    uses_gpu = {"test": True, "anchor": False}  # fake_gpu and fake_anchor (tests/fake_codec.py)
    assert {role: codec_class(section).uses_gpu for role, section in sections.items()} == uses_gpu
    devices = codec_devices(uses_gpu, "auto")
    assert devices == {"test": ["cuda:0", "cuda:1"], "anchor": ["cpu"]}
    identities = {role: {"config": section} for role, section in sections.items()}
    jobs = plan_jobs(sections, identities, specs, {"psnr": {}}, devices)
    assert [(job.codec, job.device) for job in jobs] == [
        ("fake_gpu", "cuda:0"),
        ("fake_gpu", "cuda:1"),
        ("fake_gpu", "cuda:0"),
        ("fake_gpu", "cuda:1"),
        ("fake_anchor", "cpu"),
        ("fake_anchor", "cpu"),
    ]
    assert codec_devices(uses_gpu, "cpu") == {"test": ["cpu"], "anchor": ["cpu"]}
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert codec_devices(uses_gpu, "auto")["test"] == ["cpu"]
    with pytest.raises(DeviceError, match="device=cuda but no CUDA device is visible"):
        codec_devices(uses_gpu, "cuda")


def test_job_identity_covers_what_makes_the_bitstream_only(tmp_path):
    from ctc.identity import codec_identity, job_identity, sequence_identity

    spec = replace(_spec("S1"), root=tmp_path)
    spec.path.write_bytes(b"\0" * FRAMES * spec.frame_bytes)
    section = {"name": "fake", "module": "fake_codec", "type": "fake", "rate_points": [1, 3], "timeout_s": 10}

    def job(section=section, spec=spec, rate_point=1) -> Job:
        identity = job_identity(codec_identity(section), sequence_identity(spec), rate_point)
        return Job("test", "fake", spec, rate_point, identity)

    base = job().identity_hash
    assert base == job({**section, "timeout_s": 99}).identity_hash
    assert base != job({**section, "preset": "slow"}).identity_hash
    assert base != job(rate_point=3).identity_hash
    assert base != job(spec=replace(spec, frames=2)).identity_hash
    spec.path.write_bytes(b"\1" * FRAMES * spec.frame_bytes)  # another file under the same name
    assert base != job().identity_hash
    assert job().identity["codec"]["version"] == "fake 1.0"  # resolved from the codec itself


def test_results_of_another_setup_never_count_as_this_sweeps(tiny, monkeypatch, capsys):
    main([*tiny, "launcher=basic", "anchor=none"])
    run_dir = run_dir_of(tiny)
    assert (load_results(run_dir).status == "ok").all()
    # the next sweep's workers are lost before their jobs start: the old results stay on disk
    monkeypatch.setattr("ctc.sweep.run._launch_wave", lambda *args: None)
    with pytest.raises(SystemExit) as stop:
        main([*tiny, "launcher=basic", "anchor=none", "+codec.extra_option=1"])
    assert stop.value.code == 1
    assert "6 of 6 jobs failed" in capsys.readouterr().err
    table = load_results(run_dir)
    assert (table.status == "failed").all()  # a stale result is not left to look like this setup's
    assert "made by another setup (stale)" in read_result(run_dir / "fake/SEQ_A/1")["error"]


def test_keep_decoded_keeps_the_real_decoders_output_that_was_scored(tiny, tmp_path):
    """keep_decoded=true: each job's decoded RGB file stays next to its result, and it is what was scored
    (its PSNR against the source, by the formula, is the recorded one)."""
    overrides = [("codec=x265" if o == "codec=fake" else o) for o in tiny]
    main(
        [
            *overrides,
            "launcher=basic",
            "anchor=none",
            "testset.sequences=[SEQ_A]",
            "codec.rate_points=[30,40]",
            "keep_decoded=true",
        ]
    )
    original = np.fromfile(tmp_path / "seqs" / "SEQ_A.rgb", np.uint8)  # the tiny fixture's
    original = original.reshape(FRAMES, 3, HEIGHT, WIDTH).astype(np.float64)
    for qp in (30, 40):
        result = read_result(run_dir_of(tiny) / "x265" / "SEQ_A" / str(qp))
        decoded = run_dir_of(tiny) / "x265" / "SEQ_A" / str(qp) / result["decoded_file"]
        assert result["status"] == "ok" and decoded.is_file()
        frames = np.fromfile(decoded, np.uint8).reshape(FRAMES, 3, HEIGHT, WIDTH)
        mse = ((original - frames) ** 2).mean(axis=(2, 3))
        expected = float((10 * np.log10(255.0**2 / mse)).mean(axis=1).mean())
        assert result["metrics"]["psnr"] == pytest.approx(expected, abs=1e-9)
