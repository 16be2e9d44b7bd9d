"""build_report on result tables made here, with every expected value worked out by hand: the order of
the sequences (the test set's declared order, then by name), the class and overall averages of
sequences that have no BD-rate, the time ratios of times that are missing, zero or not numbers, each
codec's details, the lock-file gaps, the refusals, the BD method used and what the report says about
itself.

Every curve is a line in log2(rate), which PCHIP reproduces exactly: a test codec reaching the anchor's
quality at 1/f of its rate has BD-rate (1/f - 1) x 100 % and BD-PSNR 2 log2(f) dB (0.02 log2(f) on
``dist``, a lower-is-better metric whose BD-quality is on 1 - dist).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pandas as pd
import pytest

from ctc.report.bd import MIN_OVERLAP, bd_rate
from ctc.report.build import build_report
from ctc.report.rows import ReportError

ANCHOR = "vtm"
# the anchor's rate points and kbps; qp9 sorts before qp10 by number, after it as text
RATES = {"qp9": 40.0, "qp10": 20.0, "qp11": 10.0, "qp12": 5.0}
DIRECTIONS = {"psnr": "higher_is_better", "dist": "lower_is_better"}


def curve(
    codec: str,
    sequence: str | None,
    factor: float = 1.0,
    *,
    seq_class: str | None = "DEMO",
    offset: float = 0.0,
    enc: tuple = (1.0,) * 4,
    dec: tuple = (1.0,) * 4,
    **fields: object,
) -> list[dict]:
    """A codec's four results on one sequence, reaching the anchor's quality at 1/``factor`` of its
    rate; ``offset`` dB more PSNR (and offset/100 less dist) at every point."""
    return [
        {
            "codec": codec,
            "sequence": sequence,
            "seq_class": seq_class,
            "rate_point": point,
            "status": "ok",
            "kbps": kbps / factor,
            "psnr": 30.0 + 2.0 * math.log2(kbps) + offset,
            "dist": 0.5 - 0.02 * math.log2(kbps) - offset / 100,
            "enc_seconds": enc[index],
            "dec_seconds": dec[index],
            "codec_setup": f"{codec}-setup",
            **fields,
        }
        for index, (point, kbps) in enumerate(RATES.items())
    ]


def table(*curves: list[dict]) -> pd.DataFrame:
    return pd.DataFrame.from_records([row for rows in curves for row in rows])


def _cells(frame: pd.DataFrame, **where: object) -> pd.DataFrame:
    for column, value in where.items():
        frame = frame[frame[column] == value]
    return frame


def _one(frame: pd.DataFrame, **where: object) -> pd.Series:
    rows = _cells(frame, **where)
    assert len(rows) == 1, rows
    return rows.iloc[0]


@pytest.mark.parametrize(
    ("provenance", "testset", "order"),
    [
        ({"config": {"testset": {"name": "demo"}}}, "demo", ["DEMO_001", "DEMO_002", "AA_9", "AA_10"]),
        ({"config": {"testset": "demo"}}, "demo", ["DEMO_001", "DEMO_002", "AA_9", "AA_10"]),
        ({"testset": "demo"}, "demo", ["DEMO_001", "DEMO_002", "AA_9", "AA_10"]),
        (
            {"config": {"testset": {"name": "no-such-set"}}},
            "no-such-set",
            ["AA_9", "AA_10", "DEMO_001", "DEMO_002"],
        ),
        ({}, "", ["AA_9", "AA_10", "DEMO_001", "DEMO_002"]),
        ({"config": None}, "", ["AA_9", "AA_10", "DEMO_001", "DEMO_002"]),
        ({"config": {"testset": {}}}, "", ["AA_9", "AA_10", "DEMO_001", "DEMO_002"]),
    ],
)
def test_sequences_follow_the_declared_test_set_then_their_names(provenance, testset, order) -> None:
    """The demo set declares DEMO_001, DEMO_002 (class DEMO); AA_9 and AA_10 are not in it and have no
    class: they come after the declared ones, 9 before 10, in class "unknown". Without a known test set,
    all are ordered by name, and so are the classes."""
    sequences = ["DEMO_002", "AA_10", "DEMO_001", "AA_9"]
    classes = {"DEMO_001": "DEMO", "DEMO_002": "DEMO", "AA_9": None, "AA_10": None}
    results = table(
        *(curve(ANCHOR, s, seq_class=classes[s]) for s in sequences),
        *(curve("cfte", s, 2.0, seq_class=classes[s]) for s in sequences),
    )
    report = build_report(results, DIRECTIONS, ANCHOR, metrics=["psnr"], provenance=provenance)
    assert report.info["testset"] == testset
    class_of = {**classes, "AA_9": "unknown", "AA_10": "unknown"}
    class_order = list(dict.fromkeys(class_of[s] for s in order))
    expected = [("sequence", class_of[s], s) for s in order]
    expected += [("class", c, "average") for c in class_order] + [("overall", "", "overall average")]
    assert list(report.bd[["level", "seq_class", "sequence"]].itertuples(index=False, name=None)) == expected
    assert report.bd["bd_rate"].tolist() == pytest.approx([-50.0] * 7, abs=1e-9)
    assert set(report.bd["status"]) == {"ok"} and set(report.bd["reason"]) == {""}  # averages complete
    assert (
        list(report.times[["level", "seq_class", "sequence"]].itertuples(index=False, name=None)) == expected
    )


def test_averages_of_sequences_without_a_bd_rate() -> None:
    """Class A: S1 at half the rate (BD-rate -50 %, +2 dB, overlaps 1 and 0.5) and S2 whose PSNR is 20 dB
    above the anchor's at equal rates (no quality overlap: no BD-rate, BD-PSNR 20 dB, rate overlap 1).
    Class B: S3 without test results; class C: S4 without anchor results. A class average holds the
    BD-rate of the sequences that have one and says which are left out; BD-quality and the rate overlap
    average every sequence that has one; the quality overlap only those with a BD-rate."""
    results = table(
        curve(ANCHOR, "S1", seq_class="A"),
        curve("cfte", "S1", 2.0, seq_class="A"),
        curve(ANCHOR, "S2", seq_class="A"),
        curve("cfte", "S2", offset=20.0, seq_class="A"),
        curve(ANCHOR, "S3", seq_class="B"),
        curve("cfte", "S4", seq_class="C"),
    )
    report = build_report(results, DIRECTIONS, ANCHOR)
    assert report.metrics == ["psnr", "dist"]
    bd = _cells(report.bd, codec="cfte")
    columns = [
        "bd_rate",
        "bd_quality",
        "overlap",
        "rate_overlap",
        "sequences",
        "rate_sequences",
        "quality_sequences",
    ]
    nan = math.nan
    none = [nan] * 4 + [1, 0, 0]  # no BD value: one sequence, none with a BD-rate or a BD-quality
    means = [-50.0, (2.0 + 20.0) / 2, 1.0, (0.5 + 1.0) / 2]  # BD-rate, overlap: S1's; the others: S1 and S2's
    of = "BD-rate average of"
    expected = {
        ("sequence", "A", "S1"): ([-50.0, 2.0, 1.0, 0.5, 1, 1, 1], "ok", ""),
        ("sequence", "A", "S2"): ([nan, 20.0, 0.0, 1.0, 1, 0, 1], "no_overlap", None),
        ("sequence", "B", "S3"): (none, "no_test_results", "cfte has no usable result for this sequence"),
        ("sequence", "C", "S4"): (none, "no_anchor", "anchor vtm has no usable result for this sequence"),
        ("class", "A", "average"): ([*means, 2, 1, 2], "incomplete", f"{of} 1/2 sequences; left out: S2"),
        ("class", "B", "average"): (none, "no_data", "BD-rate average of 0/1 sequences; left out: S3"),
        ("class", "C", "average"): (none, "no_data", "BD-rate average of 0/1 sequences; left out: S4"),
        ("overall", "", "overall average"): (
            [*means, 4, 1, 2],
            "incomplete",
            f"{of} 1/4 sequences; left out: S2, S3, S4",
        ),
    }
    psnr = _cells(bd, metric="psnr")
    assert list(psnr[["level", "seq_class", "sequence"]].itertuples(index=False, name=None)) == list(expected)
    for (level, seq_class, sequence), (values, status, reason) in expected.items():
        row = _one(psnr, level=level, seq_class=seq_class, sequence=sequence)
        assert row[columns].tolist() == pytest.approx(values, abs=1e-9, nan_ok=True), sequence
        assert row["status"] == status
        if reason is not None:
            assert row["reason"] == reason
    # dist is lower-is-better: the same BD-rate, and 0.02 log2(2) more 1 - dist
    dist = _one(bd, metric="dist", sequence="S1")
    assert (dist["status"], dist["bd_rate"], dist["bd_quality"]) == (
        "ok",
        pytest.approx(-50.0),
        pytest.approx(0.02),
    )
    assert list(bd["metric"][:2]) == ["psnr", "dist"]
    assert list(_cells(bd, level="overall")["metric"]) == ["psnr", "dist"]  # the averages' too


def test_time_ratios_leave_out_missing_zero_and_unreadable_times() -> None:
    """The anchor's encoder times 1, 0, 16 and none: geometric mean 4 of 1 and 16; the test's 2, 'n/a', 8
    and -1: geometric mean 4 of 2 and 8, ratio 1. The test has no decoder time at all: no DecT."""
    results = table(
        curve(ANCHOR, "S1", enc=(1.0, 0.0, 16.0, None)),
        curve("cfte", "S1", 2.0, enc=(2.0, "n/a", 8.0, -1.0), dec=(None,) * 4),
    )
    times = build_report(results, DIRECTIONS, ANCHOR).times
    assert len(times) == 3  # the sequence, its class and the overall average
    assert times["enc_ratio"].tolist() == pytest.approx([1.0] * 3, rel=1e-12)
    assert times["dec_ratio"].isna().all()


def test_codec_details_come_from_the_rows_in_the_tables() -> None:
    """Versions, checkpoints, labels and the rate's counting of the rows used (cfte's failed row of an
    older version is not); a codec with no usable row (dead) is described by all its rows. The container
    rate: cfte's file_kbps exceeds its kbps by 0.25, 0.75, 0.5, 0.5 on S1 (mean 0.5) and by 1/3 on S2
    (0.3333 to 4 places); the anchor's files add nothing and are not listed."""
    cfte = {
        "codec_version": "cfte 1.0",
        "checkpoint": "cfte.pth",
        "label": "fomm->cfte",
        "random_weights": math.nan,
    }
    rows = curve("cfte", "S1", 2.0, rate_counts="key_frame+features", **cfte)
    for row, overhead in zip(rows, (0.25, 0.75, 0.5, 0.5), strict=True):
        row["file_kbps"] = row["kbps"] + overhead
    rows2 = curve("cfte", "S2", 2.0, rate_counts="key_frame+features", **cfte)
    for row in rows2:
        row["file_kbps"] = row["kbps"] + 1 / 3
    failed = {**rows[0], "status": "failed", "codec_version": "cfte 0.9", "checkpoint": "old.pth"}
    anchor = [
        {**row, "file_kbps": row["kbps"]}
        for s in ("S1", "S2")
        for row in curve(ANCHOR, s, codec_version="VTM 22.2", random_weights=False)
    ]
    dead = [
        {**row, "status": "failed"}
        for row in curve("dead", "S1", codec_version="dead 0.1", random_weights=True, file_kbps="n/a")
    ]
    results = table(dead, rows, rows2, [failed], anchor)
    report = build_report(results, DIRECTIONS, ANCHOR, metrics=["psnr"])
    failed = report.gaps[report.gaps["kind"] == "failed job"]
    assert list(zip(failed["codec"], failed["rate_point"], strict=True)) == [("dead", p) for p in RATES] + [
        ("cfte", "qp9")
    ]
    codecs = report.info["codecs"]
    assert list(codecs) == [ANCHOR, "cfte", "dead"]
    assert codecs["cfte"] == {
        "role": "test",
        "versions": ["cfte 1.0"],
        "checkpoints": ["cfte.pth"],
        "rate_counts": ["key_frame+features"],
        "labels": ["fomm->cfte"],
        "container_kbps": {"S1": 0.5, "S2": 0.3333},
        "random_weights": False,
    }
    assert codecs[ANCHOR] == {
        "role": "anchor",
        "versions": ["VTM 22.2"],
        "checkpoints": [],
        "rate_counts": [],
        "labels": [],
        "container_kbps": {},
        "random_weights": False,
    }
    about = codecs["dead"]
    assert (about["role"], about["versions"], about["random_weights"], about["container_kbps"]) == (
        "test",
        ["dead 0.1"],
        True,
        {},  # its file_kbps is not a number
    )


def test_a_codec_made_under_another_lock_file_than_the_anchor_is_a_gap() -> None:
    """cfte's rows were made under another lock file than the anchor's: a gap naming both (12 characters
    each); x265's under the same one, and hm's rows record none: no gap. Without lock files, no gap."""
    old, new = "b" * 12 + "1111", "a" * 12 + "2222"
    results = table(
        curve(ANCHOR, "S1", lock=old),
        curve("cfte", "S1", 2.0, lock=new),
        curve("x265", "S1", 0.5, lock=old),
        curve("hm", "S1", 0.5, lock=None),
    )
    gaps = build_report(results, DIRECTIONS, ANCHOR, metrics=["psnr"]).gaps
    assert gaps.to_dict("records") == [
        {
            "kind": "different locks",
            "codec": "cfte",
            "sequence": "",
            "rate_point": "",
            "detail": "its rows and anchor vtm's were made under 2 lock files (aaaaaaaaaaaa, "
            "bbbbbbbbbbbb): the packages that made them may differ; rerun the older ones to compare like "
            "with like",
        }
    ]
    unlocked = build_report(results.drop(columns="lock"), DIRECTIONS, ANCHOR, metrics=["psnr"])
    assert unlocked.gaps.empty
    assert list(unlocked.gaps.columns) == ["kind", "codec", "sequence", "rate_point", "detail"]
    # results that record no versions, checkpoints... nor random weights
    assert all(
        (about["versions"], about["checkpoints"], about["random_weights"]) == ([], [], False)
        for about in unlocked.info["codecs"].values()
    )


def test_refusals_and_a_missing_anchor() -> None:
    results = table(curve(ANCHOR, "S1"), curve("cfte", "S1", 2.0))
    with pytest.raises(ReportError) as error:
        build_report(results, DIRECTIONS, ANCHOR, method="akima")
    assert str(error.value) == "unknown BD method 'akima'; expected one of pchip, cubic"
    with pytest.raises(ReportError) as error:
        build_report(results, DIRECTIONS, ANCHOR, metrics=["psnr", "ssim", "vmaf"])
    assert str(error.value) == "no results for metric(s) ssim, vmaf; the run has psnr, dist"
    report = build_report(results, DIRECTIONS, "hm", metrics=["psnr"])
    assert report.gaps.to_dict("records") == [
        {
            "kind": "no anchor",
            "codec": "hm",
            "sequence": "",
            "rate_point": "",
            "detail": "the run has no result for the anchor; codecs found: cfte, vtm",
        }
    ]
    assert set(report.bd["status"]) == {"no_anchor", "no_data"} and report.test_codecs == ["cfte", "vtm"]


@pytest.mark.parametrize(
    ("provenance", "commit"),
    [({"git": {"commit": "0123abc"}}, "0123abc"), ({"git_commit": "fedcba9"}, "fedcba9"), ({}, None)],
)
def test_what_the_report_says_about_itself(provenance, commit) -> None:
    """Its run, anchor, method, overlap threshold, commit and creation time (UTC, to the second); each
    metric's direction ('' for one the results do not give); the rate points by codec, sequence and
    rate point in number order; the BD rows by codec, sequences first."""
    results = table(
        *(
            curve(codec, s, factor, ssim_y=0.9)
            for s in ("DEMO_002", "DEMO_001")
            for codec, factor in (("x265", 0.5), ("cfte", 2.0), (ANCHOR, 1.0))
        )
    )
    results = results.iloc[::-1].reset_index(drop=True)  # qp12 first, DEMO_001 first
    before = datetime.now().astimezone()
    report = build_report(
        results,
        DIRECTIONS,
        ANCHOR,
        metrics=["psnr", "ssim_y"],
        method="cubic",
        provenance={"config": {"testset": {"name": "demo"}}, **provenance},
        run="r1",
    )
    created = datetime.fromisoformat(report.info["created"])
    assert created.utcoffset() == timedelta(0) and created.microsecond == 0
    assert before.replace(microsecond=0) <= created <= datetime.now().astimezone()
    info = {key: value for key, value in report.info.items() if key not in ("codecs", "created")}
    assert info == {
        "run": "r1",
        "anchor": ANCHOR,
        "method": "cubic",
        "min_overlap": MIN_OVERLAP,
        "testset": "demo",
        "git_commit": commit,
        "provenance": {"config": {"testset": {"name": "demo"}}, **provenance},
    }
    assert (report.method, report.directions) == ("cubic", {"psnr": "higher_is_better", "ssim_y": ""})
    points = report.rate_points
    assert list(points.columns) == list(results.columns)
    expected = [
        (codec, s, point)
        for codec in ("cfte", "vtm", "x265")
        for s in ("DEMO_001", "DEMO_002")
        for point in RATES
    ]
    assert list(points[["codec", "sequence", "rate_point"]].itertuples(index=False, name=None)) == expected
    assert list(points.index) == list(range(len(expected)))
    assert report.test_codecs == ["cfte", "x265"]
    levels = report.bd.loc[report.bd["codec"] == "cfte", "level"].tolist()
    assert levels == ["sequence"] * 4 + ["class"] * 2 + ["overall"] * 2  # two metrics each
    assert list(report.bd.index) == list(range(len(report.bd)))


def test_the_bd_method_asked_for_is_the_one_used() -> None:
    """cfte's PSNR bends (0.8 and 0.3 dB above a line in log rate at its middle points), where cubic and
    PCHIP interpolation part: the report's BD values are those of bd_rate with the method asked for."""
    bend = {"qp10": 0.8, "qp11": 0.3}
    test_rows = [
        {**row, "psnr": row["psnr"] + bend.get(row["rate_point"], 0.0)} for row in curve("cfte", "S1", 2.0)
    ]
    results = table(curve(ANCHOR, "S1"), test_rows)
    anchor, test = (results[results["codec"] == codec] for codec in (ANCHOR, "cfte"))
    by_method = {}
    for method in ("pchip", "cubic"):
        expected = bd_rate(anchor["kbps"], anchor["psnr"], test["kbps"], test["psnr"], method=method)
        cell = _one(
            build_report(results, DIRECTIONS, ANCHOR, metrics=["psnr"], method=method).bd, sequence="S1"
        )
        assert (cell["bd_rate"], cell["bd_quality"]) == (expected.bd_rate, expected.bd_quality)
        by_method[method] = expected.bd_rate
    assert abs(by_method["pchip"] - by_method["cubic"]) > 0.1


def test_results_that_name_no_sequence_give_no_bd_rows() -> None:
    results = table(curve(ANCHOR, None), curve("cfte", None, 2.0))
    report = build_report(results, DIRECTIONS, ANCHOR, metrics=["psnr"])
    assert report.bd.empty and report.times.empty
    assert list(report.times.columns) == ["codec", "level", "seq_class", "sequence", "enc_ratio", "dec_ratio"]
    assert list(report.info["codecs"]) == [ANCHOR, "cfte"] and report.info["run"] == ""
