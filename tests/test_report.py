"""The report stage on a small run with known BD values and every kind of gap (see rd_fixture)."""

from __future__ import annotations

import json
import shutil

import openpyxl
import pandas as pd
import pytest
from rd_fixture import write_run

from ctc.report.build import build_report
from ctc.report.cli import main, plot_options, write_report
from ctc.report.plots import rd_figures
from ctc.report.rows import read_results


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = write_run(tmp_path_factory.mktemp("results") / "fixture")
    report = write_report(run_dir, echo=False)
    return run_dir, report


def _bd(report, codec, sequence, metric, seq_class=None):
    bd = report.bd
    rows = bd[
        (bd["codec"] == codec)
        & (bd["sequence"] == sequence)
        & (bd["metric"] == metric)
        & ((bd["seq_class"] == seq_class) if seq_class else True)
    ]
    assert len(rows) == 1
    return rows.iloc[0]


def test_known_bd_values_per_sequence_and_average(run):
    _, report = run
    assert report.anchor == "vvenc" and report.test_codecs == ["cfte", "x265"]
    for metric, gain in (("dists", 0.02), ("lpips", 0.03), ("psnr", 2.0)):
        cell = _bd(report, "cfte", "VOXCELEB_001", metric)
        assert cell["status"] == "ok"
        assert cell["bd_rate"] == pytest.approx(-50.0, abs=1e-9)
        assert cell["bd_quality"] == pytest.approx(gain, abs=1e-9)
        overall = _bd(report, "cfte", "overall average", metric)
        assert overall["bd_rate"] == pytest.approx(-50.0, abs=1e-9)
        assert (overall["status"], overall["rate_sequences"], overall["sequences"]) == ("incomplete", 2, 4)
    partial = _bd(report, "x265", "VOXCELEB_002", "psnr")
    assert partial["status"] == "partial_overlap"
    assert partial["bd_rate"] == pytest.approx(100.0, abs=1e-9)
    assert partial["overlap"] == pytest.approx(0.2)


def test_gaps_are_marked_in_the_table(run):
    _, report = run
    assert _bd(report, "cfte", "CFVQA_002", "psnr")["status"] == "no_anchor"
    assert _bd(report, "cfte", "VOXCELEB_002", "dists")["status"] == "too_few_points"
    assert _bd(report, "x265", "CFVQA_001", "lpips")["status"] == "too_few_points"
    assert _bd(report, "x265", "average", "psnr", seq_class="CFVQA")["status"] == "no_data"
    assert _bd(report, "x265", "average", "psnr", seq_class="VOXCELEB")["status"] == "ok"
    kinds = set(report.gaps["kind"])
    assert {"failed job", "missing rate points"} <= kinds
    failed = report.gaps[report.gaps["kind"] == "failed job"].iloc[0]
    assert (failed["codec"], failed["sequence"], failed["rate_point"]) == ("cfte", "VOXCELEB_002", "qp52")
    assert "out of memory" in failed["detail"]


def test_time_ratios_are_test_over_anchor(run):
    _, report = run
    times = report.times.set_index(["codec", "sequence"])
    assert times.loc[("cfte", "VOXCELEB_001"), "enc_ratio"] == pytest.approx(0.1)
    assert times.loc[("cfte", "overall average"), "dec_ratio"] == pytest.approx(4.0)
    assert pd.isna(times.loc[("x265", "CFVQA_002"), "enc_ratio"])  # no anchor times there


def test_files_hold_the_expected_rows(run):
    run_dir, report = run
    out = run_dir / "report"
    bd = pd.read_csv(out / "bd.csv")
    assert len(bd) == 2 * (4 + 2 + 1) * 3  # codecs x (sequences + classes + overall) x metrics
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["Sequence"][:7]) == [
        "CFVQA_001",
        "CFVQA_002",
        "VOXCELEB_001",
        "VOXCELEB_002",
        "average",
        "average",
        "overall average",
    ]
    assert set(summary["Codec"]) == {"cfte [RANDOM WEIGHTS]", "x265"}
    assert "BD-rate dists (%)" in summary.columns and "BD-quality 1 - dists" in summary.columns
    points = pd.read_csv(out / "rate_points.csv")
    assert len(points) == 3 * 4 * 4 - 4 - 1 - 1  # anchor lacks a sequence, one failed, one absent
    cfte = points[points["codec"] == "cfte"]  # each part of the bitstreams, and the key frames
    assert (cfte[["bits_header", "bits_key_frame", "bits_features"]].sum(axis=1) == cfte["bits"]).all()
    assert (cfte["key_frames"] == 1).all()
    assert points.loc[points["codec"] == "vvenc", "bits_video"].notna().all()
    document = json.loads((out / "report.json").read_text())
    assert document["info"]["anchor"] == "vvenc"
    assert document["info"]["codecs"]["cfte"]["random_weights"] is True
    assert document["info"]["codecs"]["cfte"]["checkpoints"] == ["cfte-random.pth"]
    assert document["metrics"] == {
        "dists": "lower_is_better",
        "lpips": "lower_is_better",
        "psnr": "higher_is_better",
    }
    assert any(row["bd_rate"] is None and row["status"] == "no_anchor" for row in document["bd"])
    markdown = (out / "summary.md").read_text()
    assert "## cfte [RANDOM WEIGHTS] vs anchor vvenc" in markdown
    cells = ["VOXCELEB", "VOXCELEB_001", *["-50.00%"] * 3, "+0.0200", "+0.0300", "+2.0000", "10%", "400%"]
    assert "| " + " | ".join(cells) + " |" in markdown
    assert "n/a [no anchor]" in markdown and "[overlap 20%]" in markdown
    assert "test set: fixture; git commit: 0123abc" in markdown
    assert (
        "kbps counts key_frame+features (as the GFVC common software counts it); the file's container "
        "adds, in kbps: CFVQA_001 0.50, CFVQA_002 0.50, VOXCELEB_001 0.50, VOXCELEB_002 0.50"
    ) in markdown


def test_workbook_has_a_summary_and_a_rate_point_sheet_per_codec(run):
    run_dir, _ = run
    workbook = openpyxl.load_workbook(run_dir / "report" / "report.xlsx", read_only=True)
    assert workbook.sheetnames[:4] == ["Summary", "vvenc rate points", "cfte rate points", "x265 rate points"]
    summary = [row for row in workbook["Summary"].iter_rows(values_only=True)]
    assert summary[0][0] == "BD-rate report: fixture"
    assert any(row[0] == "cfte [RANDOM WEIGHTS]" and row[3] == "VOXCELEB_001" for row in summary)
    anchor_points = list(workbook["vvenc rate points"].iter_rows(values_only=True))
    assert anchor_points[0][:5] == ("codec", "seq_class", "sequence", "rate_point", "kbps")
    assert len(anchor_points) == 1 + 3 * 4


def test_rd_curves_are_written_per_metric_sequence_and_class(run):
    run_dir, _ = run
    curves = run_dir / "report" / "rd_curves"
    for metric in ("dists", "lpips", "psnr"):
        for stem in ("VOXCELEB_001", "CFVQA_002", "VOXCELEB_average", "CFVQA_average"):
            for extension in ("png", "svg"):
                assert (curves / f"rd_{metric}_{stem}.{extension}").stat().st_size > 1000
    svg = (curves / "rd_psnr_VOXCELEB_001.svg").read_text()
    assert "cfte [RANDOM WEIGHTS]" in svg and "vvenc (anchor)" in svg


def test_duplicate_rows_are_listed_and_the_report_still_comes_out(run):
    run_dir, _ = run
    results, directions = read_results(run_dir)
    doubled = pd.concat([results, results[results["codec"] == "x265"].head(2)], ignore_index=True)
    report = build_report(doubled, directions, "vvenc", metrics=["psnr"])
    duplicates = report.gaps[report.gaps["kind"] == "duplicate rows"]
    assert len(duplicates) == 2
    assert _bd(report, "x265", "VOXCELEB_001", "psnr")["bd_rate"] == pytest.approx(100.0)


def test_cli_prints_the_tables_and_the_gaps(tmp_path, capsys):
    run_dir = write_run(tmp_path / "cli")
    assert (
        main([str(run_dir), "--metrics", "psnr", "--method", "cubic", "--no-plots", "--anchor", "vvenc"]) == 0
    )
    out = capsys.readouterr().out
    assert "BD method: cubic" in out
    assert "failed job: cfte VOXCELEB_002 qp52" in out
    assert "BD no anchor: cfte CFVQA_002 (psnr)" in out
    assert "gap(s) in" in out
    assert not (run_dir / "report" / "rd_curves").exists()


@pytest.mark.parametrize("log_rate", [False, True])
def test_rd_figure_axes_and_lines(run, log_rate):
    _, report = run
    figures = dict(
        rd_figures(report.rate_points, report.anchor, ["psnr"], log_rate=log_rate, **plot_options(report))
    )
    assert set(figures) == {
        f"rd_psnr_{stem}"
        for stem in (
            "VOXCELEB_001",
            "VOXCELEB_002",
            "CFVQA_001",
            "CFVQA_002",
            "VOXCELEB_average",
            "CFVQA_average",
        )
    }
    axes = figures["rd_psnr_VOXCELEB_001"].axes[0]
    assert axes.get_xscale() == ("log" if log_rate else "linear")
    anchor, *tested = axes.lines
    assert anchor.get_label() == "vvenc (anchor)" and anchor.get_linestyle() == "--"
    assert [line.get_label() for line in tested] == ["cfte [RANDOM WEIGHTS]", "x265"]
    assert list(anchor.get_xdata()) == [5.0, 10.0, 20.0, 40.0]
    # the class average leaves out cfte's qp52, which failed on VOXCELEB_002
    average = figures["rd_psnr_VOXCELEB_average"].axes[0].lines[1]
    assert list(average.get_xdata()) == [4.0, 8.0, 16.0]


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (lambda d: None, [], "does not exist"),
        (lambda d: d.mkdir(), [], "holds no <codec>/<sequence>/<rate_point>/result.json"),
        (write_run, ["--metrics", "ssim"], "no results for metric(s) ssim"),
        (write_run, ["--method", "cubic", "--anchor", "vtm"], None),
    ],
)
def test_cli_bad_runs(tmp_path, capsys, make, args, message):
    run_dir = tmp_path / "bad"
    make(run_dir)
    code = main([str(run_dir), "--no-plots", *args])
    if message is None:  # an anchor without results still gives a report, with the gap listed
        assert code == 0
        assert "no anchor: vtm: the run has no result for the anchor" in capsys.readouterr().out
        return
    assert code == 2
    assert message in capsys.readouterr().err


def test_unreadable_result_is_a_gap(tmp_path):
    run_dir = write_run(tmp_path / "broken")
    (run_dir / "x265" / "VOXCELEB_001" / "qp32" / "result.json").write_text("{not json")
    report = write_report(run_dir, metrics=["psnr"], plots=False, echo=False)
    failed = report.gaps[report.gaps["kind"] == "failed job"]
    assert any("is not readable JSON" in detail for detail in failed["detail"])
    assert _bd(report, "x265", "VOXCELEB_001", "psnr")["status"] == "too_few_points"


def test_anchor_only_run_still_reports(tmp_path, capsys):
    run_dir = write_run(tmp_path / "anchor-only")
    for codec in ("cfte", "x265"):
        shutil.rmtree(run_dir / codec)
    assert main([str(run_dir), "--no-plots"]) == 0
    assert "No tested codec besides the anchor vvenc" in capsys.readouterr().out
    assert len(pd.read_csv(run_dir / "report" / "rate_points.csv")) == 3 * 4


def test_rows_of_an_older_setup_are_stale_gaps_and_only_the_newest_setup_is_compared():
    """A codec rerun with other weights leaves its old rows on disk: the report compares only the rows of
    the codec's newest setup (the last one, rows oldest first) and lists the others, per sequence."""
    from ctc.report.rows import comparable_rows

    rows = pd.DataFrame(
        {
            "codec": ["test", "test", "test", "test", "anchor", "anchor"],
            "sequence": ["S1", "S1", "S2", "S1", "S1", "S2"],
            "rate_point": [1, 2, 1, 1, 1, 1],
            "codec_setup": ["old", "old", "old", "new", "a", "a"],
            "configured": [True] * 6,
        }
    )
    kept, gaps = comparable_rows(rows, "anchor")
    assert list(kept.index) == [3, 4, 5]
    assert [(gap["kind"], gap["codec"], gap["sequence"], gap["rate_point"]) for gap in gaps] == [
        ("stale results", "test", "S1", "1, 2"),
        ("stale results", "test", "S2", "1"),
    ]
    assert gaps[0]["detail"].startswith("made by another setup of test than its newest results")
