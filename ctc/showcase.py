"""The visual comparisons of a report: choose them (:mod:`ctc.comparisons`), get the frames
(:mod:`ctc.redecode`) and draw them (:mod:`ctc.visuals`) under ``<run>/report/visuals/``.

A comparison that cannot be shown (bitstream gone, codec configuration changed, decoder error)
is listed with its reason; the others are still made.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctc.codec import CodecError
from ctc.comparisons import (
    Comparison,
    Panel,
    build_comparisons,
    choose_sequences,
    quality_metric,
    reference_codec,
)
from ctc.redecode import JobFrames, RedecodeError, RunFrames
from ctc.visuals import RANDOM_LABEL, Label, VisualError, write_grid, write_per_frame_plot, write_video

VISUALS_DIR = "visuals"
UNITS = {"psnr": " dB", "psnr_y": " dB", "psnr_u": " dB", "psnr_v": " dB", "psnr_yuv": " dB"}


@dataclass
class Shown:
    """One comparison with its files (relative to the report folder), or why it has none."""

    comparison: Comparison
    video: str | None = None
    grid: str | None = None
    plot: str | None = None
    sources: dict[str, str] = field(default_factory=dict)  # panel label -> where its frames came from
    problem: str = ""


@dataclass
class Showcase:
    shown: list[Shown]
    quality_metric: str
    plot_metric: str
    reference: str
    notes: list[str]


def value_text(metric: str, value: float) -> str:
    return f"{value:.2f}{UNITS[metric]}" if metric in UNITS else f"{value:.4f}"


def rate_point_text(rate_point: Any) -> str:
    text = str(rate_point)
    return f"QP{text}" if text.isdigit() else text


def panel_title(panel: Panel) -> str:
    suffix = f" [{RANDOM_LABEL}]" if panel.random_weights else ""
    return f"{panel.codec} {rate_point_text(panel.rate_point)}{suffix}"


def panel_label(panel: Panel, metrics: Sequence[str]) -> Label:
    values = " · ".join(f"{m} {value_text(m, panel.metrics[m])}" for m in metrics if m in panel.metrics)
    return Label((f"{panel.codec} {rate_point_text(panel.rate_point)}", f"{panel.kbps:.2f} kbps", values),
                 (RANDOM_LABEL,) if panel.random_weights else ())


def grid_rows(count: int, reference: JobFrames, metric: str, lower_is_better: bool,
              reference_title: str) -> list[tuple[int, str, str]]:
    """``(frame, name, row title)`` of the first, middle and worst frame (worst by ``metric`` of the
    reference; the last frame when the reference has no per-frame values)."""
    rows = [(0, "first", "frame 0 (first)"), (count // 2, "middle", f"frame {count // 2} (middle)")]
    per_frame = reference.per_frame
    if per_frame is not None and metric in per_frame and len(per_frame) == count:
        values = per_frame[metric].to_numpy()
        worst = int(np.nanargmax(values) if lower_is_better else np.nanargmin(values))
        rows.append((worst, "worst", f"frame {worst} (worst {metric} of {reference_title}: "
                                     f"{value_text(metric, float(values[worst]))})"))
    else:
        rows.append((count - 1, "last", f"frame {count - 1} (last)"))
    return rows


def make_showcase(report: Any, run_dir: Path, out_dir: Path, settings: Mapping[str, Any],
                  video: Mapping[str, Any], grid: Mapping[str, Any], plot: Mapping[str, Any]) -> Showcase:
    """Choose and draw the comparisons of ``report`` (a :class:`ctc.report.Report` of ``run_dir``)."""
    points = report.rate_points
    codecs = list(dict.fromkeys(points["codec"]))
    under_test = report.info.get("provenance", {}).get("codec")
    if under_test not in codecs or under_test == report.anchor:
        under_test = None
    preferred = settings.get("reference") or under_test
    reference = reference_codec(preferred, codecs, report.anchor)
    metric = quality_metric(str(settings["quality_metric"]), report.metrics)
    plot_metric = settings.get("plot_metric") or metric
    notes = []
    if metric != settings["quality_metric"]:
        notes.append(f"similar quality by {metric}: the run has no {settings['quality_metric']}")
    if plot_metric not in report.metrics:
        notes.append(f"per-frame plots by {metric}: the run has no {plot_metric}")
        plot_metric = metric
    order = list(dict.fromkeys(points["sequence"]))
    classes = dict(zip(points["sequence"], points["seq_class"], strict=True))
    sequences = choose_sequences(order, classes, settings.get("sequences"), int(settings["max_sequences"]))
    comparisons = build_comparisons(points, report.anchor, reference, metric, sequences, report.metrics,
                                    settings.get("rate_points"))
    frames = RunFrames(run_dir, str(settings.get("device", "cpu")))
    shutil.rmtree(out_dir / VISUALS_DIR, ignore_errors=True)  # no picture of an earlier report stays
    shown: list[Shown] = []
    for sequence in sequences:
        rows = points[points["sequence"] == sequence]
        todo = [c for c in comparisons if c.sequence == sequence]
        shown += _show_sequence(todo, rows, frames, out_dir, report, plot_metric, video, grid, plot)
    return Showcase(shown, metric, plot_metric, reference, notes)


def _show_sequence(comparisons: Sequence[Comparison], rows: pd.DataFrame, run_frames: RunFrames,
                   out_dir: Path, report: Any, metric: str, video: Mapping[str, Any], grid: Mapping[str, Any],
                   plot: Mapping[str, Any]) -> list[Shown]:
    """Decode each job of one sequence once, then draw its comparisons (identical ones share files)."""
    if not comparisons:
        return []
    sequence = comparisons[0].sequence
    count, fps = int(rows["frames"].iloc[0]), float(rows["fps"].iloc[0])
    jobs: dict[tuple[str, str], JobFrames | str] = {}
    try:
        original = run_frames.original(sequence, count)
    except RedecodeError as error:
        return [Shown(c, problem=str(error)) for c in comparisons]
    for panel in {p.job: p for c in comparisons for p in c.panels}.values():
        try:
            jobs[panel.job] = run_frames.job(panel.codec, sequence, panel.rate_point)
        except (RedecodeError, CodecError, OSError) as error:
            jobs[panel.job] = f"{panel_title(panel)}: {error}"
    folder = out_dir / VISUALS_DIR / sequence
    folder.mkdir(parents=True, exist_ok=True)
    made: dict[Any, Shown] = {}
    shown = []
    for comparison in comparisons:
        if comparison.key in made:
            shown.append(Shown(comparison, **{k: getattr(made[comparison.key], k)
                                              for k in ("video", "grid", "plot", "sources", "problem")}))
            continue
        missing = [jobs[p.job] for p in comparison.panels if isinstance(jobs[p.job], str)]
        if missing:
            item = Shown(comparison, problem="; ".join(missing))
        else:
            stem = folder / f"{len(made) + 1:02d}"
            try:
                item = _draw(comparison, original, {p.job: jobs[p.job] for p in comparison.panels}, stem,
                             fps, report, metric, video, grid, plot)
            except VisualError as error:
                item = Shown(comparison, problem=str(error))
        made[comparison.key] = item
        shown.append(item)
    return shown


def _draw(comparison: Comparison, original: np.ndarray, jobs: Mapping[tuple[str, str], JobFrames], stem: Path,
          fps: float, report: Any, metric: str, video: Mapping[str, Any], grid: Mapping[str, Any],
          plot: Mapping[str, Any]) -> Shown:
    panels = comparison.panels
    sequences = [original] + [jobs[p.job].frames for p in panels]
    labels = [Label(("original", comparison.sequence))] + [panel_label(p, report.metrics) for p in panels]
    lower = report.lower_is_better(metric)
    reference = jobs[comparison.reference.job]
    rows = grid_rows(len(original), reference, metric, lower, panel_title(comparison.reference))
    write_video(sequences, labels, fps, stem.with_suffix(".mp4"), video)
    write_grid(sequences, labels, [(index, title) for index, _, title in rows],
               stem.with_name(stem.name + "_grid.png"), grid.get("panel_width") or original.shape[3])
    curves = {panel_title(p): jobs[p.job].per_frame[metric].to_numpy() for p in panels
              if jobs[p.job].per_frame is not None and metric in jobs[p.job].per_frame}
    plot_path = stem.with_name(stem.name + "_frames.png")
    title = f"{comparison.sequence}: {metric} per frame"
    if any(p.random_weights for p in panels):
        title += f" ({RANDOM_LABEL}: untrained model)"
    if curves:
        write_per_frame_plot(curves, metric, lower, [(index, name) for index, name, _ in rows], title,
                             plot_path, plot)
    out_dir = stem.parent.parent.parent
    return Shown(comparison, video=_relative(stem.with_suffix(".mp4"), out_dir),
                 grid=_relative(stem.with_name(stem.name + "_grid.png"), out_dir),
                 plot=_relative(plot_path, out_dir) if curves else None,
                 sources={panel_title(p): jobs[p.job].source for p in panels})


def _relative(path: Path, base: Path) -> str:
    return path.relative_to(base).as_posix()
