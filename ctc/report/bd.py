"""Bjøntegaard-delta (BD) rate and quality between two rate-quality curves.

The integration is the ``bjontegaard`` package's (FAU-LMS): PCHIP interpolation of log10(rate) over
the overlapping quality interval, the method of the JVET CTC Excel template, or the VCEG-M33 cubic
fit. This module only prepares the points and turns the package's asserts, warnings and silent NaNs
into a :class:`BDResult` whose ``status`` and ``reason`` say why a value is missing or doubtful.

Lower-is-better metrics (DISTS, LPIPS) are remapped to ``1 - value``, as the GFVC common software
reports them, so that quality rises with rate. BD-rate does not change under that remap; BD-quality
is then a difference of ``1 - value`` and so positive always means the test codec is better.

It knows nothing about how results are stored: call :func:`bd_rate` on your own numbers, or run
``ctc-bd ANCHOR.csv TEST.csv``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import bjontegaard
import numpy as np
import pandas as pd

from ctc.cli import finish

METHODS = ("pchip", "cubic")
# Points per curve the CTC asks for (four QPs); the cubic fit needs at least four too.
MIN_POINTS = 4
# Below this fraction of overlap the result is marked partial (the bjontegaard package's threshold).
MIN_OVERLAP = 0.75

# Statuses, most severe first. "ok" and "partial_overlap" carry a BD-rate; the others do not.
STATUSES = (
    "invalid_input",
    "too_few_points",
    "duplicate_rates",
    "non_monotonic",
    "no_overlap",
    "partial_overlap",
    "ok",
)


@dataclass(frozen=True)
class BDResult:
    """One anchor/test comparison.

    ``bd_rate`` is in percent (negative: the test needs less rate for the same quality);
    ``bd_quality`` is the mean quality gain at equal rate in the units of the BD quality (the metric,
    or ``1 - metric`` for lower-is-better metrics; positive: the test is better). ``overlap`` and
    ``rate_overlap`` are the fractions of the joint quality and log-rate ranges that both curves
    cover, over which BD-rate and BD-quality are integrated. ``status`` is one of :data:`STATUSES`
    and ``reason`` explains anything but ``ok``.
    """

    bd_rate: float
    bd_quality: float
    overlap: float
    rate_overlap: float
    status: str
    reason: str = ""

    @property
    def has_bd_rate(self) -> bool:
        return self.status in ("ok", "partial_overlap")

    def to_dict(self) -> dict[str, float | str | None]:
        """JSON-ready: NaN becomes None."""
        return {
            key: (None if isinstance(value, float) and math.isnan(value) else value)
            for key, value in asdict(self).items()
        }


def quality_label(metric: str, lower_is_better: bool) -> str:
    """What the BD quality axis is for ``metric``: the metric itself or ``1 - metric``."""
    return f"1 - {metric}" if lower_is_better else metric


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of the union of the ranges of ``a`` and ``b`` that both cover (as bjontegaard does)."""
    union = max(a.max(), b.max()) - min(a.min(), b.min())
    shared = min(a.max(), b.max()) - max(a.min(), b.min())
    return max(shared, 0.0) / union if union > 0 else 0.0


def _curve_problem(name: str, rate: np.ndarray, quality: np.ndarray, min_points: int) -> tuple[str, str]:
    """The first problem of one curve (rates sorted ascending), as (status, reason); ("", "") if none."""
    if not (np.all(np.isfinite(rate)) and np.all(np.isfinite(quality))):
        return "invalid_input", f"{name} curve has a missing (NaN) or infinite value"
    if np.any(rate <= 0):
        return "invalid_input", f"{name} curve has a rate <= 0 ({rate.min():g}); rates must be positive"
    if len(rate) < min_points:
        return "too_few_points", f"{name} curve has {len(rate)} rate point(s), {min_points} needed"
    if np.any(np.diff(rate) == 0):
        return "duplicate_rates", f"{name} curve has two points at the same rate"
    drops = np.flatnonzero(np.diff(quality) <= 0)
    if drops.size:
        i = drops[0]
        return "non_monotonic", (
            f"{name} quality does not rise with rate: {quality[i]:.6g} at "
            f"{rate[i]:.6g}, {quality[i + 1]:.6g} at {rate[i + 1]:.6g}"
        )
    return "", ""


def bd_rate(
    anchor_rate: Sequence[float],
    anchor_quality: Sequence[float],
    test_rate: Sequence[float],
    test_quality: Sequence[float],
    *,
    method: str = "pchip",
    lower_is_better: bool = False,
    min_points: int = MIN_POINTS,
    min_overlap: float = MIN_OVERLAP,
) -> BDResult:
    """BD-rate and BD-quality of the test curve against the anchor curve.

    Rates are in any positive unit (kbps), points in any order; the curves may have different
    rate points and different numbers of them. ``lower_is_better`` remaps quality to ``1 - value``.
    Never raises for bad data: the result's ``status`` says what is wrong (see :data:`STATUSES`).
    Raises ``ValueError`` for an unknown ``method`` or rate/quality lists of different lengths.
    """
    if method not in METHODS:
        raise ValueError(f"unknown BD method {method!r}; expected one of {', '.join(METHODS)}")
    curves = []
    for name, rate, quality in (("anchor", anchor_rate, anchor_quality), ("test", test_rate, test_quality)):
        rate = np.asarray(rate, dtype=float).ravel()
        quality = np.asarray(quality, dtype=float).ravel()
        if rate.shape != quality.shape:
            raise ValueError(f"{name} curve has {rate.size} rates but {quality.size} quality values")
        order = np.argsort(rate, kind="stable")
        quality = 1.0 - quality[order] if lower_is_better else quality[order]
        curves.append((name, rate[order], quality))

    nan = float("nan")
    problems = [_curve_problem(name, rate, quality, min_points) for name, rate, quality in curves]
    status, reason = min(problems, key=lambda p: STATUSES.index(p[0]) if p[0] else len(STATUSES))
    if status in ("invalid_input", "too_few_points", "duplicate_rates"):
        return BDResult(nan, nan, nan, nan, status, reason)

    (_, rate_a, quality_a), (_, rate_t, quality_t) = curves
    overlap = _overlap(quality_a, quality_t)
    rate_overlap = _overlap(np.log10(rate_a), np.log10(rate_t))
    # min_overlap=0: the package would only warn; the overlap is reported in the result instead.
    options = {"method": method, "require_matching_points": False, "min_overlap": 0}
    quality_gain = (
        float(bjontegaard.bd_psnr(rate_a, quality_a, rate_t, quality_t, **options))
        if rate_overlap > 0
        else nan
    )
    if status == "non_monotonic":
        return BDResult(
            nan, quality_gain, nan, rate_overlap, status, reason + "; BD-rate needs a rising curve"
        )
    if overlap == 0:
        return BDResult(
            nan,
            quality_gain,
            overlap,
            rate_overlap,
            "no_overlap",
            f"quality ranges do not overlap (anchor {quality_a.min():.6g} to "
            f"{quality_a.max():.6g}, test {quality_t.min():.6g} to {quality_t.max():.6g})",
        )
    rate_change = float(bjontegaard.bd_rate(rate_a, quality_a, rate_t, quality_t, **options))
    if overlap < min_overlap:
        return BDResult(
            rate_change,
            quality_gain,
            overlap,
            rate_overlap,
            "partial_overlap",
            f"curves overlap on only {overlap:.0%} of their quality range",
        )
    return BDResult(rate_change, quality_gain, overlap, rate_overlap, "ok")


def _read_curve_csv(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ValueError(f"{path}: cannot read as CSV ({error})") from error
    if "kbps" not in table.columns:
        raise ValueError(
            f"{path}: expected a 'kbps' column (one row per rate point); "
            f"found {', '.join(map(str, table.columns))}"
        )
    for column in table.columns:
        if not pd.api.types.is_numeric_dtype(table[column]):
            raise ValueError(
                f"{path}: column {column!r} is not numeric; expected kbps and one column per metric"
            )
    return table


def registered_lower_is_better(
    names: Sequence[str], modules: Sequence[str] = (), declared: Sequence[str] = ()
) -> set[str]:
    """The names among ``names`` whose metric class (``ctc.metrics``' registry, after importing the
    plug-in ``modules``) is lower-is-better. A name neither registered nor in ``declared`` (names whose
    direction the caller gives) is refused: its direction would be a guess."""
    from ctc.metrics import MetricError, metric_class, use_metric_modules  # imports torch: only here

    use_metric_modules(list(modules))
    lower, unknown = set(), []
    for name in names:
        try:
            if metric_class(name).lower_is_better:
                lower.add(name)
        except MetricError:
            if name not in declared:
                unknown.append(name)
    if unknown:
        raise ValueError(
            f"metric {', '.join(map(repr, unknown))} is not registered, so its direction is "
            "unknown: name the module that registers it (--metric-modules), or say which way "
            "it goes (--lower-is-better NAME or --higher-is-better NAME)"
        )
    return lower


def compare_csv(
    anchor_csv: Path,
    test_csv: Path,
    *,
    method: str = "pchip",
    metrics: Sequence[str] | None = None,
    lower_is_better: Sequence[str] = (),
    higher_is_better: Sequence[str] = (),
    metric_modules: Sequence[str] = (),
) -> dict[str, object]:
    """BD of every metric column shared by two rate-point CSV files, as a JSON-ready mapping; each
    metric's direction from its class (:func:`registered_lower_is_better`) unless given here."""
    anchor, test = _read_curve_csv(anchor_csv), _read_curve_csv(test_csv)
    shared = [c for c in anchor.columns if c != "kbps" and c in test.columns]
    names = list(metrics) if metrics else shared
    for name in names:
        for path, table in ((anchor_csv, anchor), (test_csv, test)):
            if name not in table.columns:
                raise ValueError(f"{path}: no column for metric {name!r}")
    if not names:
        raise ValueError(f"{anchor_csv} and {test_csv} share no metric column besides kbps")
    both = set(lower_is_better) & set(higher_is_better)
    if both:
        raise ValueError(f"metric {', '.join(sorted(both))} is both lower- and higher-is-better")
    given = [*lower_is_better, *higher_is_better]
    lower = registered_lower_is_better(
        [name for name in names if name not in given], metric_modules, given
    ) | set(lower_is_better)
    results = {}
    for name in names:
        result = bd_rate(
            anchor["kbps"],
            anchor[name],
            test["kbps"],
            test[name],
            method=method,
            lower_is_better=name in lower,
        )
        results[name] = {
            "direction": "lower_is_better" if name in lower else "higher_is_better",
            "bd_quality_of": quality_label(name, name in lower),
            **result.to_dict(),
        }
    return {"anchor": str(anchor_csv), "test": str(test_csv), "method": method, "metrics": results}


def add_method_argument(parser: argparse.ArgumentParser) -> None:
    """``--method``, the BD curve fit, as ctc-bd and ctc-report take it."""
    parser.add_argument(
        "--method",
        choices=METHODS,
        default="pchip",
        help="pchip: JVET CTC template (default); cubic: VCEG-M33 polynomial fit",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ctc-bd",
        description="BD-rate (%%) and BD-quality per metric of TEST against ANCHOR, as JSON. "
        "Each CSV has one row per rate point: a kbps column and one column per metric.",
    )
    parser.add_argument("anchor", type=Path, help="anchor rate points (CSV)")
    parser.add_argument("test", type=Path, help="tested codec's rate points (CSV)")
    add_method_argument(parser)
    parser.add_argument("--metrics", nargs="+", help="metric columns to compare (default: all shared)")
    parser.add_argument(
        "--metric-modules",
        nargs="*",
        default=[],
        metavar="MODULE",
        help="modules that register metrics of your own (as a metrics config's modules)",
    )
    parser.add_argument(
        "--lower-is-better",
        nargs="*",
        default=[],
        metavar="METRIC",
        help="metrics where lower is better, compared as 1 - value (default: as each "
        "metric's class says, e.g. dists and lpips)",
    )
    parser.add_argument(
        "--higher-is-better",
        nargs="*",
        default=[],
        metavar="METRIC",
        help="metrics where higher is better (default: as each metric's class says)",
    )
    args = parser.parse_args(argv)
    return finish(
        "ctc-bd",
        lambda: compare_csv(
            args.anchor,
            args.test,
            method=args.method,
            metrics=args.metrics,
            lower_is_better=args.lower_is_better,
            higher_is_better=args.higher_is_better,
            metric_modules=args.metric_modules,
        ),
        (ValueError,),
        print_json=True,
    )


if __name__ == "__main__":
    sys.exit(main())
