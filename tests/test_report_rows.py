"""Which results the report uses (ctc.report.rows), on result tables and run folders made here, every
expected row and gap written out by hand: what read_results takes from each result.json, the failed,
duplicate, missing and incomplete results of usable_rows, and the stale and unlike rows of
comparable_rows."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from ctc.identity import identity_hash
from ctc.report.rows import (
    ReportError,
    comparable_rows,
    configured_rate_points,
    natural_key,
    read_provenance,
    read_results,
    usable_rows,
)


def _values(column: pd.Series) -> list:
    """The column's values, a missing one (None or NaN) as None."""
    return [None if pd.isna(value) else value for value in column]


def _write(path: Path, content: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")


def test_read_results_takes_each_jobs_details_and_its_configured_rate_points(tmp_path: Path) -> None:
    """A full result, a sparse one at a rate point the codec's newest sweep no longer configures, and an
    unreadable one (a failed row naming its file)."""
    run = tmp_path / "run"
    codec_identity = {"name": "cfte", "checkpoint": "c.pth"}
    _write(
        run / "cfte" / "S1" / "qp22" / "result.json",
        {
            "status": "ok",
            "codec": "cfte",
            "sequence": "S1",
            "rate_point": "qp22",
            "codec_version": "cfte 1.0",
            "codec_provenance": {"checkpoint": "c.pth", "label": "fomm->cfte"},
            "created": "2026-01-02T00:00:00+00:00",
            "identity": {"codec": codec_identity, "sequence": {"file_md5": "md5-S1"}},
            "bits": {"total": 120, "parts": {"key_frame": 100, "features": 20}},
            "encode_details": {"key_frames": 2},
            "made_by": {"lock_sha256": "lock-1"},
            "metrics": {"psnr": 30.0},
            "metric_directions": {"psnr": "higher_is_better"},
        },
    )
    _write(
        run / "cfte" / "S1" / "qp32" / "result.json",
        {
            "status": "failed",
            "codec": "cfte",
            "sequence": "S1",
            "rate_point": "qp32",
            "error": "out of memory",
            "codec_provenance": None,
            "identity": {"sequence": {}},
            "bits": {"parts": {"header": 8}},
            "metrics": {"dists": 0.1},
            "metric_directions": {"dists": "lower_is_better"},
        },
    )
    _write(run / "vtm" / "S1" / "qp22" / "result.json", "{not json")
    _write(run / "cfte" / "provenance.json", {"codec_config": {"rate_points": ["qp22", "qp27"]}})
    table, directions = read_results(run)
    assert directions == {"psnr": "higher_is_better", "dists": "lower_is_better"}
    expected = {
        "codec": ["cfte", "cfte", "vtm"],
        "rate_point": ["qp22", "qp32", "qp22"],
        "status": ["ok", "failed", "failed"],
        "codec_version": ["cfte 1.0", None, None],
        "checkpoint": ["c.pth", None, None],
        "label": ["fomm->cfte", None, None],
        "error": [
            None,
            "out of memory",
            f"{run / 'vtm' / 'S1' / 'qp22' / 'result.json'} is not readable JSON",
        ],
        "created": ["2026-01-02T00:00:00+00:00", None, None],
        "codec_setup": [identity_hash(codec_identity), None, None],
        "source_md5": ["md5-S1", None, None],
        "bits_key_frame": [100, None, None],
        "bits_features": [20, None, None],
        "bits_header": [None, 8, None],
        "key_frames": [2, None, None],
        "lock": ["lock-1", None, None],
        "configured": [True, False, True],
        "psnr": [30.0, None, None],
        "dists": [None, 0.1, None],
    }
    assert {column: _values(table[column]) for column in expected} == expected


def test_configured_rate_points_skip_unreadable_and_empty_sweeps(tmp_path: Path) -> None:
    _write(tmp_path / "cfte" / "provenance.json", {"codec_config": {"rate_points": [22, "qp27"]}})
    _write(tmp_path / "broken" / "provenance.json", "{not json")
    _write(tmp_path / "empty" / "provenance.json", {"codec_config": {"rate_points": []}})
    _write(tmp_path / "none" / "provenance.json", {"codec_config": None})
    _write(tmp_path / "other" / "provenance.json", {"anchor": "vtm"})
    (tmp_path / "folder" / "provenance.json").mkdir(parents=True)  # unreadable: a folder
    assert configured_rate_points(tmp_path) == {"cfte": {"22", "qp27"}}


def test_read_provenance_of_a_run(tmp_path: Path) -> None:
    assert read_provenance(tmp_path) == {}
    _write(tmp_path / "provenance.json", {"anchor": "vtm"})
    assert read_provenance(tmp_path) == {"anchor": "vtm"}
    _write(tmp_path / "provenance.json", "{not json")
    with pytest.raises(ReportError) as error:
        read_provenance(tmp_path)
    assert str(error.value) == (
        f"{tmp_path / 'provenance.json'} is not valid JSON: Expecting property name enclosed in double "
        "quotes: line 1 column 2 (char 1)"
    )


def test_natural_key_sorts_numbers_by_value() -> None:
    assert sorted(["qp100", "qp22", "qp9", "qp22b"], key=natural_key) == ["qp9", "qp22", "qp22b", "qp100"]
    assert natural_key(22) == ("", 22, "") and natural_key("qp9") == ("qp", 9, "")


def _row(codec: str, sequence: str, rate_point: str, status: str = "ok", **fields: object) -> dict:
    """A result row; no error unless ``fields`` give one (None, as read_results has it)."""
    return {
        "codec": codec,
        "sequence": sequence,
        "rate_point": rate_point,
        "status": status,
        "error": None,
        **fields,
    }


USABLE = [
    _row("cfte", "S1", "qp9", "failed", error="Traceback\nCodecError: out of memory\n"),  # 0
    _row("cfte", "S1", "qp10", "failed", error=None),  # 1
    _row("cfte", "S1", "qp11", "decoded", error=" \n "),  # 2: decoded, never scored
    _row("cfte", "S1", "qp9", created="2026-01-02", psnr=31.0),  # 3: the newest of three
    _row("cfte", "S1", "qp9", created="2026-01-01", psnr=30.0),  # 4
    _row("cfte", "S1", "qp9", created=None, psnr=29.0),  # 5: no time: the oldest
    _row("cfte", "S1", "qp10", created="2026-01-01", psnr=28.0),  # 6
    _row("cfte", "S1", "qp11", created="2026-01-01", psnr=math.nan),  # 7: no PSNR
    _row("cfte", "S2", "qp10", created="2026-01-01", psnr=27.0),  # 8: S2 lacks qp9 and qp11
    _row("aom", "S2", "qp1", created="2026-01-01", psnr=26.0),  # 9: aom after cfte, S2 before S1
    _row("aom", "S1", "qp2", created="2026-01-01", psnr=25.0),  # 10
    _row("aom", "S2", "qp1", created="2026-01-01", psnr=24.0),  # 11: as new as 9, and later
]


def test_usable_rows_keep_the_newest_complete_result_of_each_rate_point() -> None:
    rows, gaps = usable_rows(pd.DataFrame.from_records(USABLE), ["psnr"])
    assert list(rows.index) == [6, 7, 8, 10, 11, 3]  # oldest first; the newest of each rate point
    assert rows.loc[3, "psnr"] == 31.0
    assert [
        (gap["kind"], gap["codec"], gap["sequence"], gap["rate_point"], gap["detail"]) for gap in gaps
    ] == [
        ("failed job", "cfte", "S1", "qp9", "CodecError: out of memory"),
        ("failed job", "cfte", "S1", "qp10", "no error message"),
        ("failed job", "cfte", "S1", "qp11", ""),
        ("duplicate rows", "cfte", "S1", "qp9", "3 results for one rate point; kept the newest"),
        ("duplicate rows", "aom", "S2", "qp1", "2 results for one rate point; kept the newest"),
        ("missing rate points", "cfte", "S2", "", "no result for qp9, qp11, which cfte has elsewhere"),
        ("missing rate points", "aom", "S2", "", "no result for qp2, which aom has elsewhere"),
        ("missing rate points", "aom", "S1", "", "no result for qp1, which aom has elsewhere"),
        ("missing metric", "cfte", "S1", "qp11", "no psnr value"),
    ]


def test_usable_rows_without_creation_times_or_errors() -> None:
    """The last of duplicates is kept; a failed job has no error message."""
    results = pd.DataFrame.from_records(USABLE).drop(columns=["created", "error"])
    rows, gaps = usable_rows(results, ["psnr"])
    assert list(rows.index) == [5, 6, 7, 8, 10, 11]
    assert [gap["detail"] for gap in gaps if gap["kind"] == "failed job"] == ["no error message"] * 3


def test_of_results_made_at_the_same_time_the_later_row_is_kept() -> None:
    """Twenty rate points, each with two results of one creation time: the later row of each pair wins
    (a stable sort by time keeps the rows' order among equal times)."""
    results = pd.DataFrame.from_records(
        [
            _row("cfte", "S1", f"qp{point}", created="2026-01-01", psnr=float(version))
            for version in (1, 2)
            for point in range(20)
        ]
    )
    rows, _ = usable_rows(results, ["psnr"])
    assert rows["psnr"].tolist() == [2.0] * 20


COMPARABLE = [
    _row("vtm", "S1", "qp1", codec_setup="v", fps=30, width=64, height=64, source_md5="md5-S1"),  # 0
    _row("vtm", "S1", "qp2", codec_setup="v", fps=25, width=64, height=64, source_md5="md5-S1"),  # 1: S1's
    _row("cfte", "S1", "qp0", codec_setup="old", fps=25, width=64, height=64, source_md5="md5-S1"),  # 2
    _row("cfte", "S1", "qp1", codec_setup="new", fps=25, width=64, height=64, source_md5=None),  # 3
    _row("cfte", "S1", "qp2", codec_setup="new", fps=25, width=96, height=64, source_md5="md5-S1"),  # 4
    _row("cfte", "S1", "qp3", codec_setup="new", fps=25, width=64, height=64, source_md5="md5-S1"),  # 5
    _row("cfte", "S1", "qp4", codec_setup="new", fps=30, width=64, height=48, source_md5="md5-S1"),  # 6
    _row("cfte", "S2", "qp1", codec_setup="new", fps=50, width=64, height=64, source_md5="md5-S2"),  # 7
    _row("cfte", "S2", "qp2", codec_setup=None, fps=25, width=64, height=64, source_md5="md5-S2"),  # 8
    _row("vtm", "S3", "qp1", codec_setup="v", fps=25, width=64, height=64, source_md5=None),  # 9
    _row("cfte", "S3", "qp1", codec_setup="new", fps=25, width=64, height=64, source_md5="md5-S3"),  # 10
    _row("cfte", "S3", "qp2", codec_setup="new", fps=25, width=96, height=64, source_md5="md5-S3"),  # 11
    _row("cfte", "R1", "qp1", codec_setup="old", fps=25, width=64, height=64, source_md5="md5-R1"),  # 12
    _row("cfte", "S3", "qp3", codec_setup="new", fps=25, width=64, height=64, source_md5="md5-S3"),  # 13
]


def test_comparable_rows_are_the_newest_setups_configured_rows_like_the_anchors() -> None:
    """cfte's newest setup is "new" (row 8 records none); its "old" rows are stale, its qp3 (row 5) no
    longer configured; qp2 and qp4 differ from the anchor's newest S1 row (fps 25, 64x64), qp1's missing
    source checksum matches any, as does the anchor's missing one on S3; S2 has no anchor row to differ
    from, and the S3 rows after it are still checked."""
    frame = pd.DataFrame.from_records(COMPARABLE)
    frame["configured"] = frame.index != 5
    rows, gaps = comparable_rows(frame, "vtm")
    stale = (
        "made by another setup of cfte than its newest results (weights, binaries or config changed); "
        "rerun the sweep to redo them"
    )
    assert list(rows.index) == [0, 1, 3, 7, 8, 9, 10, 13]
    assert [
        (gap["kind"], gap["codec"], gap["sequence"], gap["rate_point"], gap["detail"]) for gap in gaps
    ] == [
        ("stale results", "cfte", "S1", "qp0", stale),
        ("stale results", "cfte", "R1", "qp1", stale),  # in the rows' order
        (
            "stale results",
            "cfte",
            "S1",
            "qp3",
            "rate points no longer in cfte's configuration (its newest sweep's); kept on disk, left out of "
            "the tables",
        ),
        (
            "setup mismatch",
            "cfte",
            "S1",
            "qp2",
            "not comparable with anchor vtm: width 96 vs the anchor's 64",
        ),
        (
            "setup mismatch",
            "cfte",
            "S1",
            "qp4",
            "not comparable with anchor vtm: fps 30 vs the anchor's 25, height 48 vs the anchor's 64",
        ),
        (
            "setup mismatch",
            "cfte",
            "S3",
            "qp2",
            "not comparable with anchor vtm: width 96 vs the anchor's 64",
        ),
    ]
    unconfigured, _ = comparable_rows(frame.drop(columns="configured"), "vtm")
    assert list(unconfigured.index) == [0, 1, 3, 5, 7, 8, 9, 10, 13]
