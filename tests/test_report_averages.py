"""The report's aggregates, on a run whose every sequence has its own BD value and times, with
expected numbers computed by hand: class and overall BD averages (arithmetic, as the JVET templates),
EncT/DecT (geometric means over rate points, then over sequences); and the setup mismatches that
keep a test row out of BD (fps, size, source file), each named in the gaps.

Every curve is a line in log2(rate), which PCHIP reproduces exactly: a test codec reaching the
anchor's quality at 1/f of its rate has BD-rate (1/f - 1) x 100 % and BD-PSNR 2 log2(f) dB.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ctc.report.cli import load_report
from ctc.report.tables import NO_TEST

ANCHOR_KBPS = {"qp1": 40.0, "qp2": 20.0, "qp3": 10.0, "qp4": 5.0}
# sequence: (class, f: the test's rate factor, test encoder-time scale, test decoder-time scale)
SEQUENCES = {"A1": ("A", 2.0, 1.0, 1.0), "A2": ("A", 4.0, 4.0, 2.0), "B1": ("B", 0.5, 16.0, 8.0)}
# seconds per rate point (qp1..qp4): varying, so that a geometric and an arithmetic mean differ
ANCHOR_ENC, ANCHOR_DEC = (1.0, 4.0, 16.0, 64.0), (1.0, 1.0, 1.0, 1.0)  # geometric means 8 and 1
TEST_ENC, TEST_DEC = (2.0, 2.0, 2.0, 2.0), (1.0, 1.0, 4.0, 4.0)  # geometric means 2 and 2
SETUP = {"frames": 4, "fps": 25, "width": 64, "height": 64}


def _result(
    codec: str,
    sequence: str,
    rate_point: str,
    kbps: float,
    psnr: float,
    enc: float,
    dec: float,
    **setup: object,
) -> dict:
    return {
        "status": "ok",
        "codec": codec,
        "role": "anchor" if codec == "anchor" else "test",
        "sequence": sequence,
        "seq_class": SEQUENCES[sequence][0],
        "rate_point": rate_point,
        **SETUP,
        "kbps": kbps,
        "enc_seconds": enc,
        "dec_seconds": dec,
        "metrics": {"psnr": psnr},
        "metric_directions": {"psnr": "higher_is_better"},
        "config_hash": f"{codec}-{rate_point}",
        "identity": {
            "codec": {"name": codec},
            "sequence": {"file_md5": setup.pop("file_md5", f"md5-of-{sequence}")},
        },
        "created": "2026-01-01T00:00:00+00:00",
        **setup,
    }


def write_run(run_dir: Path, test_setup: dict[str, dict] | None = None) -> Path:
    """The anchor and one test codec on SEQUENCES; ``test_setup``: per sequence, fields of the test's
    results that differ from the anchor's (fps, width, file_md5...)."""
    for sequence, (_, factor, enc_scale, dec_scale) in SEQUENCES.items():
        for index, (rate_point, kbps) in enumerate(ANCHOR_KBPS.items()):
            psnr = 30.0 + 2.0 * math.log2(kbps)
            results = [
                _result("anchor", sequence, rate_point, kbps, psnr, ANCHOR_ENC[index], ANCHOR_DEC[index]),
                _result(
                    "test",
                    sequence,
                    rate_point,
                    kbps / factor,
                    psnr,
                    enc_scale * TEST_ENC[index],
                    dec_scale * TEST_DEC[index],
                    **(test_setup or {}).get(sequence, {}),
                ),
            ]
            for result in results:
                folder = run_dir / result["codec"] / sequence / rate_point
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "result.json").write_text(json.dumps(result), encoding="utf-8")
    (run_dir / "provenance.json").write_text(json.dumps({"anchor": "anchor"}), encoding="utf-8")
    return run_dir


def _row(table, sequence: str, seq_class: str | None = None):
    rows = table[(table["sequence"] == sequence) & ((table["seq_class"] == seq_class) if seq_class else True)]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_class_and_overall_bd_are_arithmetic_means_of_the_sequences(tmp_path: Path) -> None:
    """Protects the averaging of per-sequence BD values (not their max, min or first)."""
    report = load_report(write_run(tmp_path / "run"))
    bd = report.bd[report.bd["metric"] == "psnr"]
    for sequence, rate, psnr in (("A1", -50.0, 2.0), ("A2", -75.0, 4.0), ("B1", 100.0, -2.0)):
        assert _row(bd, sequence)[["bd_rate", "bd_quality"]].tolist() == pytest.approx([rate, psnr], abs=1e-9)
    class_a, class_b = _row(bd, "average", "A"), _row(bd, "average", "B")
    overall = _row(bd, "overall average")
    assert class_a["bd_rate"] == pytest.approx((-50.0 - 75.0) / 2, abs=1e-9)
    assert class_a["bd_quality"] == pytest.approx((2.0 + 4.0) / 2, abs=1e-9)
    assert class_b["bd_rate"] == pytest.approx(100.0, abs=1e-9)
    assert overall["bd_rate"] == pytest.approx((-50.0 - 75.0 + 100.0) / 3, abs=1e-9)
    assert overall["bd_quality"] == pytest.approx((2.0 + 4.0 - 2.0) / 3, abs=1e-9)
    assert (overall["status"], overall["rate_sequences"], overall["sequences"]) == ("ok", 3, 3)


def test_enct_and_dect_are_geometric_means(tmp_path: Path) -> None:
    """Protects the geometric means of EncT/DecT, over rate points and then over sequences."""
    report = load_report(write_run(tmp_path / "run"))
    times = report.times[report.times["codec"] == "test"]
    # per sequence: (encoder scale x 2) / 8 and (decoder scale x 2) / 1
    expected = {"A1": (0.25, 2.0), "A2": (1.0, 4.0), "B1": (4.0, 16.0)}
    for sequence, ratios in expected.items():
        assert _row(times, sequence)[["enc_ratio", "dec_ratio"]].tolist() == pytest.approx(ratios, rel=1e-12)
    assert _row(times, "average", "A")[["enc_ratio", "dec_ratio"]].tolist() == pytest.approx(
        [math.sqrt(0.25 * 1.0), math.sqrt(2.0 * 4.0)], rel=1e-12
    )
    assert _row(times, "overall average")[["enc_ratio", "dec_ratio"]].tolist() == pytest.approx(
        [(0.25 * 1.0 * 4.0) ** (1 / 3), (2.0 * 4.0 * 16.0) ** (1 / 3)], rel=1e-12
    )


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("fps", 30, "fps 30 vs the anchor's 25"),
        ("width", 96, "width 96 vs the anchor's 64"),
        ("height", 48, "height 48 vs the anchor's 64"),
        ("file_md5", "md5-of-another-file", "source_md5 md5-of-another-file vs the anchor's md5-of-A2"),
    ],
)
def test_a_setup_mismatch_keeps_the_sequence_out_of_bd(
    tmp_path: Path, field: str, value: object, named: str
) -> None:
    """A test result made from another fps, size or source file than the anchor's is a gap, never a BD
    number; the other sequences' BD values and averages are unchanged."""
    report = load_report(write_run(tmp_path / "run", {"A2": {field: value}}))
    gaps = report.gaps[report.gaps["kind"] == "setup mismatch"]
    assert sorted(gaps["rate_point"]) == list(ANCHOR_KBPS) and set(gaps["sequence"]) == {"A2"}
    assert all(named in detail for detail in gaps["detail"])
    bd = report.bd[report.bd["metric"] == "psnr"]
    assert math.isnan(_row(bd, "A2")["bd_rate"]) and _row(bd, "A2")["status"] == NO_TEST
    assert _row(bd, "average", "A")["bd_rate"] == pytest.approx(-50.0, abs=1e-9)
    assert _row(bd, "overall average")["bd_rate"] == pytest.approx((-50.0 + 100.0) / 2, abs=1e-9)


def test_a_sequence_without_a_test_result_is_named_in_its_row(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run")
    for folder in (run / "test" / "B1").iterdir():
        (folder / "result.json").unlink()
    bd = load_report(run).bd
    row = _row(bd[bd["metric"] == "psnr"], "B1")
    assert row["status"] == NO_TEST and row["reason"] == "test has no usable result for this sequence"
    assert [math.isnan(row[column]) for column in ("bd_rate", "bd_quality", "overlap", "rate_overlap")] == [
        True
    ] * 4


def test_without_an_anchor_in_the_provenance_the_codec_with_role_anchor_is_the_anchor(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run")
    (run / "provenance.json").write_text("{}", encoding="utf-8")
    report = load_report(run)
    assert report.anchor == "anchor"
    assert _row(report.bd[report.bd["metric"] == "psnr"], "A1")["bd_rate"] == pytest.approx(-50.0, abs=1e-9)


@pytest.mark.parametrize(
    ("roles", "named"), [({"anchor": "test"}, "0 codecs"), ({"test": "anchor"}, "2 codecs")]
)
def test_an_anchor_that_the_roles_do_not_settle_is_refused(tmp_path: Path, roles: dict, named: str) -> None:
    from ctc.report.rows import ReportError

    run = write_run(tmp_path / "run")
    (run / "provenance.json").write_text("{}", encoding="utf-8")
    for codec, role in roles.items():
        for path in (run / codec).glob("*/*/result.json"):
            path.write_text(json.dumps({**json.loads(path.read_text()), "role": role}), encoding="utf-8")
    with pytest.raises(ReportError) as error:
        load_report(run)
    anchors = {"0 codecs": "()", "2 codecs": "(anchor, test)"}[named]
    assert str(error.value) == (
        f"cannot tell the anchor of {run}: provenance.json names none and the results have {named} with "
        f"role 'anchor' {anchors}; pass --anchor"
    )
