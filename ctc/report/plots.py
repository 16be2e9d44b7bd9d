"""Rate-distortion curves: kbps against each metric, per sequence and per class average.

Figures are built with matplotlib's object API (no pyplot state), so they render the same in a
headless report run and in a notebook, where :func:`rd_figure` returns a figure to display.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

FORMATS = ("png", "svg")


def class_average_curves(rate_points: pd.DataFrame, seq_class: str, metrics: Sequence[str]) -> pd.DataFrame:
    """Mean kbps and metric per codec and rate point over the sequences of ``seq_class``.

    A codec's rate point enters the average only where every sequence of the class has it, so
    that a missing job does not bend the average curve.
    """
    rows = rate_points[rate_points["seq_class"] == seq_class]
    sequences = rows["sequence"].nunique()
    grouped = rows.groupby(["codec", "rate_point"], sort=False)
    complete = grouped.filter(lambda group: group["sequence"].nunique() == sequences)
    columns = ["kbps", *metrics]
    return (
        complete.groupby(["codec", "rate_point"], sort=False)[columns]
        .mean()
        .reset_index()
        .assign(seq_class=seq_class, sequence=f"{seq_class} average")
    )


def rd_figure(
    curves: pd.DataFrame,
    metric: str,
    anchor: str,
    *,
    title: str,
    labels: Mapping[str, str] | None = None,
    lower_is_better: bool = False,
    log_rate: bool = False,
) -> Figure:
    """One RD plot: a line per codec in ``curves`` (columns codec, kbps, ``metric``), anchor dashed."""
    labels = labels or {}
    figure = Figure(figsize=(6.4, 4.8), layout="constrained")
    axes = figure.add_subplot()
    codecs = [anchor] + sorted(set(curves["codec"]) - {anchor})
    for codec in codecs:
        curve = curves[curves["codec"] == codec].dropna(subset=["kbps", metric]).sort_values("kbps")
        if curve.empty:
            continue
        label = labels.get(codec, codec)
        axes.plot(
            curve["kbps"],
            curve[metric],
            marker="o",
            linestyle="--" if codec == anchor else "-",
            color="black" if codec == anchor else None,
            label=f"{label} (anchor)" if codec == anchor else label,
        )
    if log_rate:
        axes.set_xscale("log")
    axes.set_xlabel("rate (kbps)")
    axes.set_ylabel(f"{metric} ({'lower' if lower_is_better else 'higher'} is better)")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    if axes.lines:
        axes.legend()
    return figure


def _file_stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def figure_name(metric: str, stem: str) -> str:
    """The file name (no extension) of the RD curve of ``metric`` for a sequence or ``<class>_average``."""
    return f"rd_{_file_stem(metric)}_{_file_stem(stem)}"


def rd_figures(
    rate_points: pd.DataFrame,
    anchor: str,
    metrics: Sequence[str],
    *,
    lower_is_better: Sequence[str] = (),
    labels: Mapping[str, str] | None = None,
    log_rate: bool = False,
) -> Iterator[tuple[str, Figure]]:
    """``(name, figure)`` for every metric, sequence and class average: ``rd_<metric>_<sequence>``.

    ``rate_points`` has one row per codec, sequence and rate point (columns codec, seq_class,
    sequence, rate_point, kbps and the metrics).
    """
    plots: list[tuple[str, str, pd.DataFrame]] = [
        (sequence, f"{sequence} ({group['seq_class'].iloc[0]})", group)
        for sequence, group in rate_points.groupby("sequence", sort=False)
    ]
    for seq_class in rate_points["seq_class"].drop_duplicates():
        average = class_average_curves(rate_points, seq_class, metrics)
        plots.append((f"{seq_class}_average", f"class {seq_class}: average", average))
    for metric in metrics:
        for stem, title, curves in plots:
            yield (
                figure_name(metric, stem),
                rd_figure(
                    curves,
                    metric,
                    anchor,
                    title=title,
                    labels=labels,
                    lower_is_better=metric in lower_is_better,
                    log_rate=log_rate,
                ),
            )


def write_rd_curves(
    rate_points: pd.DataFrame,
    anchor: str,
    metrics: Sequence[str],
    out_dir: Path,
    *,
    lower_is_better: Sequence[str] = (),
    labels: Mapping[str, str] | None = None,
    log_rate: bool = False,
) -> list[Path]:
    """Write every figure of :func:`rd_figures` into ``out_dir`` as PNG and SVG; return the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, figure in rd_figures(
        rate_points, anchor, metrics, lower_is_better=lower_is_better, labels=labels, log_rate=log_rate
    ):
        for extension in FORMATS:
            path = out_dir / f"{name}.{extension}"
            figure.savefig(path)
            written.append(path)
    return written
