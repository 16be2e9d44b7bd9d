"""ctc-run end to end with the real codecs (x265 against the vvenc anchor) on the demo test set."""

from __future__ import annotations

import json

import pytest

from ctc.results import load_results, read_result
from ctc.runner import main


@pytest.mark.slow
def test_x265_against_the_vvenc_anchor_on_three_demo_frames(tmp_path, capsys):
    overrides = [
        "codec=x265",
        "anchor=vvenc",
        "testset=demo",
        "testset.frames=3",
        "testset.sequences=[DEMO_001]",
        "codec.rate_points=[37,51]",
        "anchor.rate_points=[37,42,47,52]",
        f"results_dir={tmp_path}",
        "jobs=2",
    ]
    main(overrides)
    run_dir = tmp_path / "demo-f3"  # a frames-limited run has a folder of its own
    table = load_results(run_dir)
    assert list(zip(table.codec, table.role, table.rate_point, strict=True)) == [
        ("vvenc", "anchor", 37),
        ("vvenc", "anchor", 42),
        ("vvenc", "anchor", 47),
        ("vvenc", "anchor", 52),
        ("x265", "test", 37),
        ("x265", "test", 51),
    ]
    assert (table.status == "ok").all() and (table.frames == 3).all()
    for codec in ("x265", "vvenc"):
        rows = table[table.codec == codec]
        assert rows.kbps.iloc[0] > rows.kbps.iloc[-1] > 0  # a higher QP costs fewer bits ...
        assert rows.psnr.iloc[0] > rows.psnr.iloc[-1] > 20  # ... and loses quality
        assert 0 < rows.lpips.iloc[0] < rows.lpips.iloc[-1] < 1  # the CTC metrics by default
        assert 0 < rows.dists.iloc[0] < rows.dists.iloc[-1] < 1
    for row in table.itertuples():
        directory = run_dir / row.codec / row.sequence / str(row.rate_point)
        result = read_result(directory)
        outputs = {"result.json", "job.log", "per_frame.csv", ".lock"}
        streams = [p for p in directory.iterdir() if p.name not in outputs]
        assert result["bits"]["total"] == 8 * sum(p.stat().st_size for p in streams)
        assert result["kbps"] == pytest.approx(result["bits"]["total"] / 1000 * 25 / 3)
        assert "ffmpeg" in result["commands"]["encode"][0][0] and result["commands"]["decode"]
        assert result["codec_version"]
    provenance = json.loads((run_dir / "provenance.json").read_text())
    assert provenance["anchor"] == "vvenc" and provenance["codec"] == "x265"
    assert {"bd.csv", "summary.md", "report.xlsx"} <= {p.name for p in (run_dir / "report").iterdir()}
    capsys.readouterr()
    stamps = {p: p.stat().st_mtime_ns for p in run_dir.glob("*/*/*/result.json")}
    main(overrides)  # everything is complete: nothing is coded again
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert "x265" in capsys.readouterr().out


@pytest.mark.slow
def test_the_submitit_launcher_runs_jobs_as_separate_processes(tmp_path):
    main(
        [
            "codec=x265",
            "anchor=none",
            "testset=demo",
            "testset.frames=2",
            "testset.sequences=[DEMO_002]",
            "codec.rate_points=[42]",
            "metrics=psnr",
            f"results_dir={tmp_path}",
            "launcher=submitit_local",
        ]
    )
    run_dir = tmp_path / "demo-f2"
    result = read_result(run_dir / "x265" / "DEMO_002" / "42")
    assert result["status"] == "ok" and result["frames"] == 2 and result["metrics"]["psnr"] > 20
    assert list((run_dir / ".submitit").rglob("*_result.pkl"))  # made by a submitit job process


@pytest.mark.slow
def test_quick_sets_keep_vvenc_as_their_anchor_where_vtm_is_found(real_vtm, tmp_path, capsys):
    main(
        [
            "codec=x265",
            "testset=demo",
            "testset.frames=2",
            "testset.sequences=[DEMO_001]",
            "codec.rate_points=[42]",
            "metrics=psnr",
            "report=false",
            f"results_dir={tmp_path}",
            "jobs=1",
        ]
    )
    assert "anchor vvenc (the default of test set demo; anchor=NAME for another)" in capsys.readouterr().err
    assert read_result(tmp_path / "demo-f2" / "vvenc" / "DEMO_001" / "42")["status"] == "ok"
    assert not (tmp_path / "demo-f2" / "vtm").exists()
