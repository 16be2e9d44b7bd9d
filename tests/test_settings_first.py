"""Friction that cost wrong or lost numbers: settings refused before anything runs, a report never lost,
the harness writing nothing into the clone, each metric's direction from its class, and identity changes
shown where they differ."""

from __future__ import annotations

import hashlib
import json

import pytest
from rd_fixture import write_run

from ctc.hashing import file_digest
from ctc.identity import changes
from ctc.paths import PROJECT_ROOT
from ctc.report.bd import main as bd_main
from ctc.report.cli import main as report_main
from ctc.runner import main as run_main

GFVC_WITHOUT_BASE = """\
defaults:
  - /model@model: fomm
  - /picture_codec@intra: vvenc
  - _self_
name: nobatch
module: models.gfvc
type: gfvc
rate_points: [22, 32, 42, 52]
q_step: 64
weights: random
"""


def run_exit(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    with pytest.raises(SystemExit) as stop:
        run_main(args)
    return int(stop.value.code), capsys.readouterr().err


def test_a_gfvc_codec_config_without_the_base_config_is_refused_before_anything_runs(tmp_path, capsys):
    conf = tmp_path / "conf" / "codec"
    conf.mkdir(parents=True)
    (conf / "nobatch.yaml").write_text(GFVC_WITHOUT_BASE)
    results = tmp_path / "results"
    code, err = run_exit(
        [
            "--config-dir",
            str(tmp_path / "conf"),
            "codec=nobatch",
            "testset=demo",
            "metrics=psnr",
            f"results_dir={results}",
        ],
        capsys,
    )
    assert code == 2
    assert (
        "ctc-run: error: nobatch: the codec config lacks batch_size, key_frame_format, gop_size, refresh, "
        "feature_coding, output_rounding, threads, encoder_reconstruction; compose the GFVC "
        "base config first (defaults: [/gfvc@_here_: base, ...])"
    ) in err
    assert not results.exists()
    with_base = GFVC_WITHOUT_BASE.replace("defaults:\n", "defaults:\n  - /gfvc@_here_: base\n")
    (conf / "withbase.yaml").write_text(with_base.replace("nobatch", "withbase"))
    with pytest.raises(SystemExit) as stop:
        run_main(
            [
                "--config-dir",
                str(tmp_path / "conf"),
                "codec=withbase",
                "testset=demo",
                "metrics=psnr",
                f"results_dir={results}",
                "--plan",
            ]
        )
    assert stop.value.code == 0
    assert "withbase: 8 to code, 0 to score only, 0 reused" in capsys.readouterr().out
    assert not results.exists()  # a plan writes nothing


def test_an_out_of_range_rate_point_and_a_bad_worker_count_stop_before_anything_runs(tmp_path, capsys):
    results = tmp_path / "results"
    code, err = run_exit(
        [
            "codec=x265",
            "codec.rate_points=[37,42,47,99]",
            "anchor=vvenc",
            "testset=demo",
            "metrics=psnr",
            f"results_dir={results}",
        ],
        capsys,
    )
    assert code == 2 and "x265: rate_points [99] are not QPs of 8-bit HEVC (0 to 51)" in err
    code, err = run_exit(["codec=x265", "jobs=abc", "testset=demo", f"results_dir={results}"], capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        "ctc-run: error: jobs='abc': expected a positive number of parallel workers (or auto)"
    ]
    assert not results.exists()


def test_a_gfvc_rate_point_its_key_frame_codec_cannot_code_stops_before_anything_runs(tmp_path, capsys):
    results = tmp_path / "results"
    args = ["codec=dac", "codec.weights=random", "picture_codec@codec.intra=vvenc", "anchor=none"]
    code, err = run_exit(
        [*args, "codec.rate_points=[32,64]", "testset=demo", f"results_dir={results}"], capsys
    )
    assert code == 2
    assert (
        "dac: key frames at QPs [32, 64]: vvenc: rate_points [64] are not QPs of 8-bit VVC (0 to 63)" in err
    )
    assert not results.exists()


def test_a_launcher_or_config_path_ctc_run_cannot_run_stops_before_anything_runs(tmp_path, capsys):
    """Hydra's own SLURM launcher (hydra/launcher=submitit_slurm) runs Hydra jobs, not ctc-run's tasks;
    --config-path would replace ctc-run's config (--config-dir adds a folder to its search path)."""
    results = tmp_path / "results"
    args = ["codec=x265", "anchor=vvenc", "testset=demo", "metrics=psnr", f"results_dir={results}"]
    code, err = run_exit([*args, "launcher=basic", "hydra/launcher=submitit_slurm"], capsys)
    assert code == 2
    errors = [line for line in err.splitlines() if "error" in line]
    assert errors == [
        "ctc-run: error: hydra.launcher._target_=hydra_plugins.hydra_submitit_launcher.submitit_launcher."
        "SlurmLauncher: not an executor of ctc-run (a class with whole_sweep, preflight and run: "
        "ctc/sweep/executors.py); choose launcher=joblib, basic, submitit_local, slurm"
    ]
    code, err = run_exit([*args, "--config-path", str(tmp_path)], capsys)  # not ctc-run's config
    assert code == 2 and err.strip().splitlines() == [
        "ctc-run: error: --config-path: a run composes ctc-run's own config; add your folder to its search "
        "path with --config-dir instead"
    ]
    assert not results.exists()


def test_digests_of_a_users_files_are_remembered_outside_the_clone(tmp_path, monkeypatch):
    monkeypatch.delenv("GFVC_CACHE", raising=False)
    monkeypatch.setenv("GFVC_TOOLS", str(tmp_path / "tools"))
    sequence = tmp_path / "mine" / "MINE_001.rgb"
    sequence.parent.mkdir()
    sequence.write_bytes(b"\1" * 1000)
    before = set((PROJECT_ROOT / ".cache").rglob("*")) if (PROJECT_ROOT / ".cache").is_dir() else set()
    assert file_digest(sequence) == hashlib.md5(b"\1" * 1000).hexdigest()
    remembered = json.loads((tmp_path / "tools" / "digests.json").read_text())
    assert f"md5:{sequence.resolve()}" in remembered
    after = set((PROJECT_ROOT / ".cache").rglob("*")) if (PROJECT_ROOT / ".cache").is_dir() else set()
    assert after == before


def test_a_failed_report_keeps_the_previous_one(tmp_path, monkeypatch, capsys):
    run_dir = write_run(tmp_path / "run")
    assert report_main([str(run_dir), "--no-plots", "--no-page"]) == 0
    written = {
        path.relative_to(run_dir): path.read_bytes()
        for path in (run_dir / "report").rglob("*")
        if path.is_file()
    }

    def broken(*args, **kwargs):
        raise RuntimeError("the page failed half-way")

    monkeypatch.setattr("ctc.report.cli.write_rd_curves", broken)
    with pytest.raises(RuntimeError, match="half-way"):
        report_main([str(run_dir), "--no-page"])
    assert {
        path.relative_to(run_dir): path.read_bytes()
        for path in (run_dir / "report").rglob("*")
        if path.is_file()
    } == written
    assert sorted(path.name for path in run_dir.iterdir() if path.name.startswith(".")) == []


def test_rate_points_dropped_from_a_codecs_config_leave_the_tables_and_are_listed_as_stale(tmp_path, capsys):
    run_dir = write_run(tmp_path / "run")
    (run_dir / "cfte" / "provenance.json").write_text(
        json.dumps({"codec_config": {"name": "cfte", "rate_points": ["qp22", "qp32", "qp42"]}})
    )
    assert report_main([str(run_dir), "--no-plots", "--no-page"]) == 0
    gaps = (run_dir / "report" / "gaps.csv").read_text()
    assert "rate points no longer in cfte's configuration" in gaps
    points = (run_dir / "report" / "rate_points.csv").read_text().splitlines()
    assert not [line for line in points if line.startswith("cfte,") and ",qp52," in line]
    assert [line for line in points if line.startswith("cfte,") and ",qp42," in line]
    assert (run_dir / "cfte" / "VOXCELEB_001" / "qp52" / "result.json").is_file()  # kept on disk


def test_an_identity_change_shows_the_part_of_two_long_values_that_differs():
    old = "ffmpeg version n9.0.2-17-g2a571b6068-20260930 Copyright, libvvenc 1.13.1 built with gcc 12.2"
    new = old.replace("libvvenc 1.13.1", "libvvenc 1.14.0")
    (line,) = changes({"codec": {"version": old}}, {"codec": {"version": new}})
    assert line.startswith("codec.version: …") and "1.13.1" in line and "1.14.0" in line


def test_ctc_bd_takes_a_metrics_direction_from_its_class_and_refuses_to_guess(tmp_path, capsys, monkeypatch):
    anchor, test = tmp_path / "anchor.csv", tmp_path / "test.csv"
    anchor.write_text("kbps,edge_psnr\n10,30\n20,33\n40,36\n80,39\n")
    test.write_text("kbps,edge_psnr\n5,30\n10,33\n20,36\n40,39\n")
    unknown_anchor, unknown_test = tmp_path / "unknown_anchor.csv", tmp_path / "unknown_test.csv"
    unknown_anchor.write_text(anchor.read_text().replace("edge_psnr", "sharpness_gain"))
    unknown_test.write_text(test.read_text().replace("edge_psnr", "sharpness_gain"))
    assert bd_main([str(unknown_anchor), str(unknown_test)]) == 2
    err = capsys.readouterr().err
    assert "metric 'sharpness_gain' is not registered, so its direction is unknown" in err
    monkeypatch.syspath_prepend(str(PROJECT_ROOT / "examples" / "my_gfvc_model"))
    assert bd_main([str(anchor), str(test), "--metric-modules", "my_gfvc_model.metrics"]) == 0
    result = json.loads(capsys.readouterr().out)["metrics"]["edge_psnr"]
    assert result["direction"] == "higher_is_better" and result["bd_rate"] == pytest.approx(-50.0, abs=1e-6)
    assert bd_main([str(anchor), str(test), "--lower-is-better", "edge_psnr"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["edge_psnr"]["direction"] == "lower_is_better"
