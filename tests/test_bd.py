"""BD-rate: hand-computed cases, an independent implementation of the definition on curved RD sets,
every bad input, the CLI."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from ctc.report.bd import BDResult, bd_rate, compare_csv, main, quality_label, registered_lower_is_better

RATES = np.array([100.0, 200.0, 400.0, 800.0])
PSNR = np.array([30.0, 33.0, 36.0, 39.0])  # 3 dB per doubling of the rate: a line in log(rate)


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_identical_curves_give_zero(method):
    result = bd_rate(RATES, PSNR, RATES, PSNR, method=method)
    assert result.status == "ok"
    assert result.bd_rate == pytest.approx(0.0, abs=1e-9)
    assert result.bd_quality == pytest.approx(0.0, abs=1e-9)
    assert result.overlap == 1.0


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_half_the_rate_gives_minus_fifty_percent(method):
    curved = np.array([30.0, 34.5, 37.2, 38.9])  # any rising curve: BD-rate compares rates at equal quality
    result = bd_rate(RATES, curved, RATES / 2, curved, method=method)
    assert result.bd_rate == pytest.approx(-50.0, abs=1e-9)
    assert result.status == "ok"
    assert result.rate_overlap == pytest.approx(0.5)  # shared 100..400 of 50..800 kbps, in log rate


def test_shifted_curve_gives_the_known_value():
    # Quality rises 3 dB per doubling, so +1.5 dB everywhere is the anchor's quality at sqrt(1/2) of
    # the rate: BD-rate = 2**-0.5 - 1, and BD-quality is the shift itself.
    result = bd_rate(RATES, PSNR, RATES, PSNR + 1.5)
    assert result.bd_rate == pytest.approx((2**-0.5 - 1) * 100, abs=1e-9)
    assert result.bd_quality == pytest.approx(1.5, abs=1e-9)
    assert result.overlap == pytest.approx(7.5 / 10.5)  # shared 31.5..39 of 30..40.5
    assert result.status == "partial_overlap"
    assert "71%" in result.reason


def test_point_order_does_not_matter():
    shuffled = [2, 0, 3, 1]
    assert bd_rate(RATES[shuffled], PSNR[shuffled], RATES / 2, PSNR).bd_rate == pytest.approx(-50.0)


def test_lower_is_better_compares_one_minus_value():
    dists = np.array([0.30, 0.24, 0.19, 0.15])
    test_dists = np.array([0.28, 0.22, 0.18, 0.14])
    result = bd_rate(RATES, dists, RATES, test_dists, lower_is_better=True)
    same = bd_rate(RATES, 1 - dists, RATES, 1 - test_dists)
    assert result == same
    assert result.bd_rate < 0 and result.bd_quality > 0  # lower DISTS at equal rate: better, both ways
    # the raw values fall with rate: without the flag they are not a usable curve
    assert bd_rate(RATES, dists, RATES, test_dists).status == "non_monotonic"


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch-Carlson slopes of the JVET template's piecewise cubic (as MATLAB's pchip): interior ones the
    weighted harmonic mean of the neighbouring secants (0 at an extremum), end ones the three-point
    formula kept shape-preserving."""
    h, secant = np.diff(x), np.diff(y) / np.diff(x)
    slopes = np.zeros_like(y)
    for k in range(1, len(x) - 1):
        if secant[k - 1] * secant[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            slopes[k] = (w1 + w2) / (w1 / secant[k - 1] + w2 / secant[k])
    for end, (h0, h1, d0, d1) in (
        (0, (h[0], h[1], secant[0], secant[1])),
        (-1, (h[-1], h[-2], secant[-1], secant[-2])),
    ):
        slope = ((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
        if np.sign(slope) != np.sign(d0):
            slope = 0.0
        elif np.sign(d0) != np.sign(d1) and abs(slope) > abs(3 * d0):
            slope = 3 * d0
        slopes[end] = slope
    return slopes


def _mean_of_curve(x: np.ndarray, y: np.ndarray, low: float, high: float, method: str) -> float:
    """Mean over [low, high] of the curve through (x, y): the cubic Hermite pieces with PCHIP slopes, or the
    least-squares cubic (VCEG-M33), integrated by the trapezoid rule on a dense grid."""
    grid = np.linspace(low, high, 200_001)
    if method == "cubic":
        values = np.polyval(np.polyfit(x, y, 3), grid)
    else:
        slopes = _pchip_slopes(x, y)
        k = np.clip(np.searchsorted(x, grid, side="right") - 1, 0, len(x) - 2)
        h = x[k + 1] - x[k]
        t = (grid - x[k]) / h
        values = (
            (2 * t**3 - 3 * t**2 + 1) * y[k]
            + (t**3 - 2 * t**2 + t) * h * slopes[k]
            + (-2 * t**3 + 3 * t**2) * y[k + 1]
            + (t**3 - t**2) * h * slopes[k + 1]
        )
    return float(np.sum((values[1:] + values[:-1]) / 2 * np.diff(grid)) / (high - low))


def reference_bd(anchor_rate, anchor_quality, test_rate, test_quality, method="pchip") -> tuple[float, float]:
    """BD-rate (%) and BD-quality by their definition (Bjontegaard, VCEG-M33; the JVET CTC template's
    piecewise cubic): log10(rate) as a function of quality averaged over the shared quality range, and
    quality as a function of log10(rate) over the shared log-rate range; test minus anchor."""
    curves = [
        (np.log10(np.asarray(r, float)), np.asarray(q, float))
        for r, q in ((anchor_rate, anchor_quality), (test_rate, test_quality))
    ]
    curves = [(r[np.argsort(r)], q[np.argsort(r)]) for r, q in curves]
    (log_a, q_a), (log_t, q_t) = curves
    low, high = max(q_a.min(), q_t.min()), min(q_a.max(), q_t.max())
    by_quality = [np.argsort(q) for q in (q_a, q_t)]
    log_rate_gain = _mean_of_curve(
        q_t[by_quality[1]], log_t[by_quality[1]], low, high, method
    ) - _mean_of_curve(q_a[by_quality[0]], log_a[by_quality[0]], low, high, method)
    low, high = max(log_a.min(), log_t.min()), min(log_a.max(), log_t.max())
    quality_gain = _mean_of_curve(log_t, q_t, low, high, method) - _mean_of_curve(
        log_a, q_a, low, high, method
    )
    return (10**log_rate_gain - 1) * 100, quality_gain


# A curved RD set (PSNR flattening with rate, unevenly spaced points, different rates per codec), where
# PCHIP and the cubic fit differ from each other and from any straight line
CURVED_ANCHOR = ([100.0, 180.0, 400.0, 900.0], [30.0, 33.5, 36.2, 38.0])
CURVED_TEST = ([80.0, 160.0, 300.0, 700.0], [30.5, 34.0, 36.0, 38.4])


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_curved_rd_set_matches_the_definition(method):
    """Protects the BD integration (interpolation, overlap bounds, log base, percent) on curves where the
    method matters: an independent implementation of the definition in this test is the reference."""
    expected_rate, expected_quality = reference_bd(*CURVED_ANCHOR, *CURVED_TEST, method=method)
    result = bd_rate(*CURVED_ANCHOR, *CURVED_TEST, method=method)
    assert result.status == "ok"
    assert result.bd_rate == pytest.approx(expected_rate, abs=1e-6)
    assert result.bd_quality == pytest.approx(expected_quality, abs=1e-6)
    other = reference_bd(*CURVED_ANCHOR, *CURVED_TEST, method="cubic" if method == "pchip" else "pchip")
    assert abs(other[0] - expected_rate) > 0.05  # the set tells the two methods apart


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_random_monotonic_curves_match_the_definition(method):
    generator = np.random.default_rng(7)
    for _ in range(20):
        anchor_rate = np.sort(generator.uniform(10, 1000, 4))
        anchor_quality = np.sort(generator.uniform(25, 45, 4))
        count = generator.integers(4, 7)
        test_rate = np.sort(generator.uniform(10, 1000, count))
        test_quality = np.sort(generator.uniform(25, 45, count))
        result = bd_rate(anchor_rate, anchor_quality, test_rate, test_quality, method=method, min_overlap=0)
        if result.rate_overlap == 0 or result.overlap == 0:
            continue  # no range to integrate over: the statuses are tested below
        expected_rate, expected_quality = reference_bd(
            anchor_rate, anchor_quality, test_rate, test_quality, method=method
        )
        assert result.status == "ok"
        # relative: the cubic fit's BD-rate can be huge when curves barely overlap
        assert result.bd_rate == pytest.approx(expected_rate, rel=1e-6, abs=1e-6)
        assert result.bd_quality == pytest.approx(expected_quality, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize(
    ("anchor", "test", "status", "words"),
    [
        ((RATES, PSNR), (RATES * 100, PSNR + 20), "no_overlap", "do not overlap"),
        ((RATES, PSNR), (RATES[:3], PSNR[:3]), "too_few_points", "test curve has 3 rate point(s), 4 needed"),
        ((RATES[:2], PSNR[:2]), (RATES, PSNR), "too_few_points", "anchor curve has 2"),
        ((RATES, PSNR), (RATES, [30, 34, 33, 39]), "non_monotonic", "test quality does not rise with rate"),
        ((RATES, [30, 30, 36, 39]), (RATES, PSNR), "non_monotonic", "anchor quality"),
        ((RATES, PSNR), ([100, 100, 400, 800], PSNR), "duplicate_rates", "same rate"),
        ((RATES, PSNR), (RATES, [30, np.nan, 36, 39]), "invalid_input", "NaN"),
        ((RATES, PSNR), ([0, 200, 400, 800], PSNR), "invalid_input", "rate <= 0"),
        (([], []), (RATES, PSNR), "too_few_points", "anchor curve has 0"),
    ],
)
def test_bad_curves_get_a_status_and_reason(anchor, test, status, words):
    result = bd_rate(*anchor, *test)
    assert result.status == status
    assert words in result.reason
    assert math.isnan(result.bd_rate)
    assert not result.has_bd_rate
    if status in ("invalid_input", "too_few_points", "duplicate_rates"):  # nothing computed at all
        assert all(math.isnan(value) for value in (result.bd_quality, result.overlap, result.rate_overlap))
    elif status == "non_monotonic":  # the same rates: BD-quality still integrates over them
        assert math.isnan(result.overlap) and result.rate_overlap == 1.0
    else:
        assert result.overlap == 0 and result.rate_overlap == 0 and math.isnan(result.bd_quality)


def test_the_first_non_rising_point_is_named():
    result = bd_rate(RATES, PSNR, RATES, [30, 34, 33, 39])
    assert result.reason == (
        "test quality does not rise with rate: 34 at 200, 33 at 400; BD-rate needs a rising curve"
    )


@pytest.mark.parametrize("which", ["rate", "quality"])
def test_a_missing_value_as_none_is_invalid_input_not_an_error(which):
    """``bd_rate`` never raises for bad data: None (a missing value from JSON) is NaN."""
    rates, quality = (
        [100, 200, None, 800] if which == "rate" else RATES,
        [30, None, 36, 39] if which == "quality" else PSNR,
    )
    result = bd_rate(RATES, PSNR, rates, quality)
    assert result.status == "invalid_input" and "missing (NaN)" in result.reason


def test_rates_below_one_are_rates():
    """Rates in Mbit/s (below 1) are as good as kbit/s: only a rate <= 0 is refused."""
    result = bd_rate(RATES / 1000, PSNR, RATES / 2000, PSNR)
    assert result.status == "ok" and result.bd_rate == pytest.approx(-50.0, abs=1e-9)


def test_integer_inputs_give_the_float_results():
    assert bd_rate([100, 200, 400, 800], [30, 33, 36, 39], [50, 100, 200, 400], [30, 33, 36, 39]) == bd_rate(
        RATES, PSNR, RATES / 2, PSNR
    )


def test_an_overlap_of_exactly_the_threshold_is_enough():
    shifted = bd_rate(RATES, PSNR, RATES, PSNR + 1.5)
    assert shifted.status == "partial_overlap"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the overlap is reported in the result, never warned about
        at_threshold = bd_rate(RATES, PSNR, RATES, PSNR + 1.5, min_overlap=shifted.overlap)
    assert at_threshold.status == "ok" and at_threshold.bd_rate == shifted.bd_rate


def test_non_monotonic_curve_still_gets_bd_quality():
    result = bd_rate(RATES, PSNR, RATES, [31, 34, 33.5, 40])
    assert result.status == "non_monotonic"
    assert math.isnan(result.bd_rate)
    # BD-quality integrates quality over log-rate, which needs no rising curve
    expected = reference_bd(RATES, PSNR, RATES, [31, 34, 33.5, 40])[1]
    assert result.bd_quality == pytest.approx(expected, abs=1e-6)


def test_no_rate_overlap_is_explained():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing integrated over an empty range (the package would warn)
        result = bd_rate(RATES, PSNR, RATES * 8, PSNR + 5)  # quality ranges overlap, rates do not
    assert result.has_bd_rate
    assert math.isnan(result.bd_quality) and result.rate_overlap == 0


def test_caller_errors_raise():
    with pytest.raises(ValueError, match="unknown BD method 'akima'; expected one of pchip, cubic"):
        bd_rate(RATES, PSNR, RATES, PSNR, method="akima")
    with pytest.raises(ValueError, match="anchor curve has 4 rates but 3 quality values"):
        bd_rate(RATES, PSNR[:3], RATES, PSNR)


def test_result_to_dict_is_json_ready():
    result = bd_rate(RATES, PSNR, RATES[:3], PSNR[:3])
    data = json.loads(json.dumps(result.to_dict()))
    assert data["bd_rate"] is None and data["status"] == "too_few_points"
    assert BDResult(**{k: (math.nan if v is None else v) for k, v in data.items()}).status == "too_few_points"


def _write_curve(path, rates, **metrics):
    pd.DataFrame({"kbps": rates, **metrics}).to_csv(path, index=False)
    return path


def test_cli_prints_bd_per_metric_as_json(tmp_path, capsys):
    dists = np.array([0.30, 0.24, 0.19, 0.15])
    anchor = _write_curve(tmp_path / "anchor.csv", RATES, psnr=PSNR, dists=dists)
    test = _write_curve(tmp_path / "test.csv", RATES / 2, psnr=PSNR, dists=dists)
    assert main([str(anchor), str(test), "--lower-is-better", "dists"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["method"] == "pchip"
    assert set(report["metrics"]) == {"psnr", "dists"}
    for metric in ("psnr", "dists"):
        assert report["metrics"][metric]["bd_rate"] == pytest.approx(-50.0)
        assert report["metrics"][metric]["status"] == "ok"
    assert report["metrics"]["dists"]["bd_quality_of"] == "1 - dists"
    assert report["metrics"]["psnr"]["direction"] == "higher_is_better"


@pytest.mark.slow
def test_cli_takes_directions_from_the_metric_registry(tmp_path, capsys):
    dists = np.array([0.30, 0.24, 0.19, 0.15])
    anchor = _write_curve(tmp_path / "anchor.csv", RATES, psnr=PSNR, dists=dists, vmaf=PSNR * 2)
    test = _write_curve(tmp_path / "test.csv", RATES / 2, psnr=PSNR, dists=dists, vmaf=PSNR * 2)
    assert main([str(anchor), str(test)]) == 0
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    assert {name: m["direction"] for name, m in metrics.items()} == {
        "psnr": "higher_is_better",
        "dists": "lower_is_better",
        "vmaf": "higher_is_better",
    }
    assert all(m["bd_rate"] == pytest.approx(-50.0) for m in metrics.values())


def test_cli_marks_bad_curves_and_takes_the_method(tmp_path, capsys):
    anchor = _write_curve(tmp_path / "anchor.csv", RATES, psnr=PSNR)
    test = _write_curve(tmp_path / "test.csv", RATES[:3], psnr=PSNR[:3])
    assert main([str(anchor), str(test), "--method", "cubic", "--lower-is-better"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["method"] == "cubic"
    assert report["metrics"]["psnr"]["status"] == "too_few_points"
    assert report["metrics"]["psnr"]["bd_rate"] is None


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (
            {"rate": RATES, "psnr": PSNR},
            "expected a 'kbps' column (one row per rate point); found rate, psnr",
        ),
        (
            {"kbps": RATES, "psnr": ["a", "b", "c", "d"]},
            "column 'psnr' is not numeric; expected kbps and one column per metric",
        ),
        ({"kbps": RATES, "ssim": PSNR}, "no column for metric 'psnr'"),
    ],
)
def test_cli_rejects_bad_files_with_one_message(tmp_path, capsys, columns, message):
    anchor = _write_curve(tmp_path / "anchor.csv", RATES, psnr=PSNR)
    bad = tmp_path / "bad.csv"
    pd.DataFrame(columns).to_csv(bad, index=False)
    assert main([str(anchor), str(bad), "--metrics", "psnr", "--lower-is-better"]) == 2
    error = capsys.readouterr().err
    assert message in error and "bad.csv" in error


def test_cli_names_a_missing_file(tmp_path, capsys):
    anchor = _write_curve(tmp_path / "anchor.csv", RATES, psnr=PSNR)
    assert main([str(anchor), str(tmp_path / "absent.csv")]) == 2
    assert "absent.csv: cannot read as CSV" in capsys.readouterr().err


def test_compare_csv_defaults_and_names(tmp_path):
    """Called as a library: pchip by default, the given method and directions used, the files named."""
    falling = [0.3, 0.2, 0.1, 0.05]
    anchor = _write_curve(tmp_path / "anchor.csv", CURVED_ANCHOR[0], psnr=CURVED_ANCHOR[1], dists=falling)
    test = _write_curve(tmp_path / "test.csv", CURVED_TEST[0], psnr=CURVED_TEST[1], dists=falling)
    report = compare_csv(anchor, test, higher_is_better=["dists"])
    assert (report["anchor"], report["test"], report["method"]) == (str(anchor), str(test), "pchip")
    assert report["metrics"]["psnr"]["bd_rate"] == bd_rate(*CURVED_ANCHOR, *CURVED_TEST).bd_rate
    assert report["metrics"]["dists"]["direction"] == "higher_is_better"  # as asked, not as registered
    assert report["metrics"]["dists"]["status"] == "non_monotonic"
    cubic = compare_csv(anchor, test, method="cubic", lower_is_better=["dists"])
    expected = bd_rate(*CURVED_ANCHOR, *CURVED_TEST, method="cubic").bd_rate
    assert cubic["metrics"]["psnr"]["bd_rate"] == expected
    assert cubic["metrics"]["dists"]["bd_quality_of"] == "1 - dists"
    assert cubic["metrics"]["psnr"]["bd_quality_of"] == quality_label("psnr", False) == "psnr"
    lonely = _write_curve(tmp_path / "lonely.csv", CURVED_TEST[0], vmaf=CURVED_TEST[1])
    with pytest.raises(ValueError, match=f"{anchor} and {lonely} share no metric column besides kbps"):
        compare_csv(anchor, lonely)


def test_registered_directions_take_unknown_names_only_when_their_direction_is_given():
    assert registered_lower_is_better(["no_such_metric", "dists", "psnr"], declared=["no_such_metric"]) == {
        "dists"
    }
    with pytest.raises(ValueError, match="'no_such_metric' is not registered, so its direction is unknown"):
        registered_lower_is_better(["no_such_metric", "dists"])


def test_cli_prints_indented_json_and_takes_the_directions_asked(tmp_path, capsys):
    anchor = _write_curve(tmp_path / "anchor.csv", RATES, psnr=PSNR)
    test = _write_curve(tmp_path / "test.csv", RATES / 2, psnr=PSNR)
    assert main([str(anchor), str(test), "--lower-is-better", "psnr"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith('{\n  "anchor": ')
    assert json.loads(printed)["metrics"]["psnr"]["direction"] == "lower_is_better"
