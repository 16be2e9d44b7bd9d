"""The HTML page of a report: which codecs are put side by side, the pictures, and the page in a browser."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from browser import load_page
from rd_fixture import write_run

from ctc.metrics import score_frames
from ctc.report.cli import load_report, main
from ctc.report.comparisons import BITRATE, QUALITY, ComparisonError, build_comparisons, choose_sequences
from ctc.report.page import PAGE_FILE, PageSettingsError, page_settings
from ctc.report.redecode import RunFrames
from ctc.report.visuals import WARNING, Label, stamped
from ctc.results import read_result
from models.checkpoints import ENV_VAR

ORDER = ["CFVQA_001", "CFVQA_002", "VOXCELEB_001", "VOXCELEB_002"]
CLASSES = {name: name.split("_")[0] for name in ORDER}


@pytest.fixture(scope="module")
def fixture_report(tmp_path_factory):
    return load_report(write_run(tmp_path_factory.mktemp("fixture") / "fixture"))


def _matches(comparisons, kind):
    """reference rate point -> {codec: rate point} of the comparisons of ``kind``."""
    return {
        c.reference.rate_point: {p.codec: p.rate_point for p in c.panels[:-1]}
        for c in comparisons
        if c.kind == kind
    }


def test_similar_bitrate_and_quality_pick_the_closest_rate_points(fixture_report):
    # cfte reaches the anchor's quality at half the rate, x265 needs twice it (tests/rd_fixture.py)
    comparisons = build_comparisons(
        fixture_report.rate_points, "vvenc", "cfte", "psnr", ["VOXCELEB_001"], fixture_report.metrics
    )
    references = [c.reference.rate_point for c in comparisons if c.kind == BITRATE]
    assert references == ["qp22", "qp32", "qp42", "qp52"]
    # rates 16, 8, 4, 2 kbps: closest in log rate among vvenc's 40/20/10/5 and x265's 320/160/80/40
    assert _matches(comparisons, BITRATE) == {
        "qp22": {"vvenc": "qp42", "x265": "qp47"},
        "qp32": {"vvenc": "qp47", "x265": "qp47"},
        "qp42": {"vvenc": "qp52", "x265": "qp47"},
        "qp52": {"vvenc": "qp52", "x265": "qp47"},
    }
    # equal quality is at twice cfte's rate for vvenc, four times for x265
    assert _matches(comparisons, QUALITY) == {
        "qp22": {"vvenc": "qp37", "x265": "qp42"},
        "qp32": {"vvenc": "qp42", "x265": "qp47"},
        "qp42": {"vvenc": "qp47", "x265": "qp47"},
        "qp52": {"vvenc": "qp52", "x265": "qp47"},
    }
    first = comparisons[0]
    assert [p.codec for p in first.panels] == ["vvenc", "x265", "cfte"]  # anchor first, the reference last
    assert first.reference.random_weights and not first.panels[0].random_weights
    assert first.reference.kbps == 16.0 and first.target == "16.00 kbps"


def test_only_the_chosen_reference_rate_points(fixture_report):
    comparisons = build_comparisons(
        fixture_report.rate_points,
        "vvenc",
        "cfte",
        "psnr",
        ["VOXCELEB_002"],
        fixture_report.metrics,
        reference_points=["qp22"],
    )
    assert {(c.kind, c.reference.rate_point) for c in comparisons} == {(BITRATE, "qp22"), (QUALITY, "qp22")}


def test_sequences_take_each_class_in_turn():
    assert choose_sequences(ORDER, CLASSES, None, 2) == ["CFVQA_001", "VOXCELEB_001"]
    assert choose_sequences(ORDER, CLASSES, None, 3) == ["CFVQA_001", "CFVQA_002", "VOXCELEB_001"]
    assert choose_sequences(ORDER, CLASSES, None, 10) == ORDER
    assert choose_sequences(ORDER, CLASSES, ["VOXCELEB_002", "CFVQA_001"], 1) == ["CFVQA_001", "VOXCELEB_002"]
    with pytest.raises(ComparisonError, match="names DEMO_001, which the run does not have"):
        choose_sequences(ORDER, CLASSES, ["DEMO_001"], 4)


def test_settings_overrides_and_misspelt_keys(tmp_path):
    settings = page_settings(overrides=["video.crf=26", "comparisons.sequences=[A,B]"])
    assert settings["video"]["crf"] == 26 and settings["comparisons"]["sequences"] == ["A", "B"]
    assert settings["video"]["encoder"] == "libx264"
    with pytest.raises(PageSettingsError, match="video.cfr"):
        page_settings(overrides=["video.cfr=26"])
    other = tmp_path / "page.yaml"
    other.write_text("comparisons:\n  max_sequences: 1\n")
    assert page_settings(other)["comparisons"]["max_sequences"] == 1


def test_random_weights_are_stamped_on_the_picture():
    picture = np.full((64, 256, 3), 200, np.uint8)
    assert stamped(picture, Label(("x265 QP37",))) is picture
    marked = stamped(picture, Label(("cfte QP42",), ("RANDOM WEIGHTS",)))
    assert (marked[:30] == picture[:30]).all() and (marked[:, 200:] == picture[:, 200:]).all()  # a corner
    red = (marked[..., 0] > 200) & (marked[..., 1] < 120)
    assert red[-20:].sum() > 20 and WARNING[0] > WARNING[1]


def test_page_of_a_run_without_bitstreams_lists_why_it_shows_no_pictures(tmp_path, capsys):
    run_dir = write_run(tmp_path / "fixture")
    assert (
        main(
            [
                str(run_dir),
                "--metrics",
                "psnr",
                "--no-plots",
                "--page",
                "comparisons.sequences=[VOXCELEB_001]",
            ]
        )
        == 0
    )
    assert f"page: file://{run_dir / 'report' / PAGE_FILE}" in capsys.readouterr().out
    page = (run_dir / "report" / PAGE_FILE).read_text()
    assert "RANDOM WEIGHTS: cfte [RANDOM WEIGHTS] ran with untrained weights" in page
    assert "Not shown:" in page and "the original of VOXCELEB_001" in page
    assert "No RD curves (written without plots)" in page
    assert "<td>-50.00</td>" in page and "<td>+100.00</td>" in page  # cfte's and x265's BD-rate
    (run_dir / "report" / PAGE_FILE).unlink()
    assert main([str(run_dir), "--no-page", "--no-plots"]) == 0
    assert not (run_dir / "report" / PAGE_FILE).exists()
    assert main([str(run_dir), "--no-plots", "--page", "video.cfr=1"]) == 2
    assert "video.cfr" in capsys.readouterr().err


# -- a real run, in a real browser ----------------------------------------------------------------

# four rate points for x265 and the anchor (a BD-rate needs them), one for CFTE; the jobs run in this
# process (the launchers are tested in test_runner_e2e)
RUN_OVERRIDES = [
    "anchor=vvenc",
    "testset=demo",
    "testset.frames=4",
    "testset.sequences=[DEMO_001]",
    "metrics=psnr",
    "launcher=basic",
    "run=page",
]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """x265 and CFTE (random weights: no checkpoint here) against the vvenc anchor, four demo frames."""
    from ctc.runner import main as run

    results = tmp_path_factory.mktemp("results")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(ENV_VAR, raising=False)
        run(["codec=x265", "report=false", f"results_dir={results}", *RUN_OVERRIDES])
        run(["codec=cfte", "codec.rate_points=[42]", f"results_dir={results}", *RUN_OVERRIDES])
    return results / "page"


@pytest.mark.slow
def test_decoded_again_frames_are_the_scored_ones(demo_run):
    frames = RunFrames(demo_run)
    original = frames.original("DEMO_001", 4)
    for codec, rate_point in (("x265", 37), ("cfte", 42)):
        job = frames.job(codec, "DEMO_001", rate_point)
        assert job.source == "bitstream decoded again"
        scores = score_frames(original, job.frames, ["psnr"])
        assert np.allclose(scores["psnr"].to_numpy(), job.per_frame["psnr"].to_numpy())
    directory = demo_run / "x265" / "DEMO_001" / "37"
    job.frames.tofile(directory / "kept_decoded.rgb")  # cfte's frames as if kept: taken as they are
    kept = frames.job("x265", "DEMO_001", 37)
    assert kept.source == "kept decoded file" and (kept.frames == job.frames).all()
    (directory / "kept_decoded.rgb").unlink()


@pytest.mark.slow
def test_the_page_loads_in_chromium_with_every_picture_video_and_number(demo_run, tmp_path):
    page_file = demo_run / "report" / PAGE_FILE
    assert page_file.is_file()  # written by the sweep's report
    loaded = load_page(page_file, tmp_path / "page.png")
    assert loaded.errors == []
    # the RD curves (class average, sequence), then per comparison its grid and per-frame plot
    assert len(loaded.images) == 2 + 2 * 2, loaded.images
    assert all(image["width"] > 0 and image["height"] > 0 for image in loaded.images), loaded.images
    assert len(loaded.videos) == 2
    for video in loaded.videos:
        assert video["error"] is None and video["duration"] > 0 and video["width"] > 0, video
    assert "RANDOM WEIGHTS" in loaded.text
    assert "similar bitrate" in loaded.text and "similar quality" in loaded.text
    tables = "\n".join(loaded.tables)
    points = pd.read_csv(demo_run / "report" / "rate_points.csv")
    assert len(points) == 4 + 4 + 1
    for row in points.itertuples():
        result = read_result(demo_run / row.codec / row.sequence / str(row.rate_point))
        assert f"{result['kbps']:.2f}" in tables and f"{result['metrics']['psnr']:.2f}" in tables
    bd = pd.read_csv(demo_run / "report" / "bd.csv")
    x265 = bd[(bd["codec"] == "x265") & (bd["level"] == "sequence")].iloc[0]
    assert f"{x265['bd_rate']:+.2f}" in tables and f"{x265['bd_quality']:+.4f}" in tables
    assert (tmp_path / "page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    videos = sorted((demo_run / "report" / "visuals").rglob("*.mp4"))
    assert len(videos) in (1, 2) and all(0 < video.stat().st_size < 100_000 for video in videos)
    assert "Page made in" in loaded.text
