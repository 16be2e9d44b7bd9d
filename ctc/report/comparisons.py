"""Choosing what the report shows side by side: each codec at a similar bitrate and at a similar quality.

The targets are the rate points of one reference codec (by default the run's codec under test, a
GFVC model): for each of them, every other codec's rate point whose rate is closest to the
reference's (in log rate, as an RD plot reads), and the one whose quality metric is closest. Only
the run's own results are used; nothing is picked by hand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

BITRATE, QUALITY = "bitrate", "quality"


class ComparisonError(ValueError):
    """The configuration asks for something the run does not have (a codec, a sequence, a metric)."""


@dataclass(frozen=True)
class Panel:
    """One decoded sequence shown in a comparison: a codec at one of its rate points."""

    codec: str
    rate_point: Any
    kbps: float
    metrics: Mapping[str, float]
    random_weights: bool

    @property
    def job(self) -> tuple[str, str]:
        return self.codec, str(self.rate_point)


@dataclass(frozen=True)
class Comparison:
    """The panels of one sequence matched to one of the reference's rate points."""

    kind: str  # BITRATE or QUALITY
    sequence: str
    seq_class: str
    metric: str  # what QUALITY matches on (and what the per-frame plots show)
    reference: Panel
    panels: tuple[Panel, ...]  # anchor first, the reference last

    @property
    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """Comparisons with the same key show the same pictures (their files are shared)."""
        return self.sequence, tuple(panel.job for panel in self.panels)

    @property
    def target(self) -> str:
        if self.kind == BITRATE:
            return f"{self.reference.kbps:.2f} kbps"
        return f"{self.metric} {self.reference.metrics[self.metric]:.4g}"


def quality_metric(preferred: str, metrics: Sequence[str]) -> str:
    """``preferred`` when the run has it, else the run's first metric."""
    if preferred in metrics:
        return preferred
    if not metrics:
        raise ComparisonError("the run has no metric to compare quality on")
    return metrics[0]


def reference_codec(preferred: str | None, codecs: Sequence[str], anchor: str) -> str:
    """The codec whose rate points set the targets: ``preferred``, else the first that is not the anchor."""
    if preferred:
        if preferred not in codecs:
            raise ComparisonError(
                f"comparisons.reference={preferred!r} has no results in this run; it has {', '.join(codecs)}"
            )
        return preferred
    tested = [codec for codec in codecs if codec != anchor]
    return tested[0] if tested else anchor


def choose_sequences(
    order: Sequence[str], classes: Mapping[str, str], names: Sequence[str] | None, limit: int
) -> list[str]:
    """``names`` (checked against the run), else the first ``limit`` sequences taking one class after
    another in turn, so every class shows before any shows twice."""
    if names:
        unknown = [name for name in names if name not in order]
        if unknown:
            raise ComparisonError(
                f"comparisons.sequences names {', '.join(unknown)}, which the run does not "
                f"have; it has {', '.join(order)}"
            )
        return [name for name in order if name in set(names)]
    by_class: dict[str, list[str]] = {}
    for name in order:
        by_class.setdefault(classes.get(name, ""), []).append(name)
    chosen: list[str] = []
    while len(chosen) < min(limit, len(order)):
        for members in by_class.values():
            if members and len(chosen) < limit:
                chosen.append(members.pop(0))
    return [name for name in order if name in set(chosen)]


def _panel(row: Mapping[str, Any], metrics: Sequence[str]) -> Panel:
    return Panel(
        codec=row["codec"],
        rate_point=row["rate_point"],
        kbps=float(row["kbps"]),
        metrics={m: float(row[m]) for m in metrics if m in row and pd.notna(row[m])},
        random_weights=bool(row.get("random_weights", False)),
    )


def _closest(rows: pd.DataFrame, distance: pd.Series) -> Mapping[str, Any] | None:
    """The row of smallest distance; ties go to the lower rate."""
    usable = rows.assign(_distance=distance).dropna(subset=["_distance"])
    if usable.empty:
        return None
    return usable.sort_values(["_distance", "kbps"], kind="stable").iloc[0].to_dict()


def build_comparisons(
    rate_points: pd.DataFrame,
    anchor: str,
    reference: str,
    metric: str,
    sequences: Sequence[str],
    metrics: Sequence[str],
    reference_points: Sequence[Any] | None = None,
) -> list[Comparison]:
    """Similar-bitrate and similar-quality comparisons of ``sequences`` (in that order).

    ``rate_points`` has one usable row per codec, sequence and rate point (:class:`ctc.report.cli.Report`'s).
    """
    points = rate_points.dropna(subset=["kbps"])
    points = points[points["kbps"] > 0]
    codecs = list(dict.fromkeys(points["codec"]))
    others = ([anchor] if anchor in codecs and anchor != reference else []) + sorted(
        c for c in codecs if c not in (anchor, reference)
    )
    comparisons = []
    for sequence in sequences:
        rows = points[points["sequence"] == sequence]
        references = rows[rows["codec"] == reference].sort_values("kbps", ascending=False)
        if reference_points is not None:
            chosen = [str(point) for point in reference_points]
            references = references[references["rate_point"].astype(str).isin(chosen)]
        for target in references.to_dict("records"):
            kinds = [BITRATE] + ([QUALITY] if metric in rows and pd.notna(target.get(metric)) else [])
            for kind in kinds:
                panels = []
                for codec in others:
                    candidates = rows[rows["codec"] == codec]
                    if kind == BITRATE:
                        distance = candidates["kbps"].map(math.log) - math.log(target["kbps"])
                    else:
                        distance = candidates[metric] - target[metric]
                    best = _closest(candidates, distance.abs())
                    if best is not None:
                        panels.append(_panel(best, metrics))
                reference_panel = _panel(target, metrics)
                comparisons.append(
                    Comparison(
                        kind,
                        sequence,
                        str(target.get("seq_class", "")),
                        metric,
                        reference_panel,
                        (*panels, reference_panel),
                    )
                )
    return comparisons
