"""The visual comparisons of a report: choose them (:mod:`ctc.report.comparisons`), get the frames
(:mod:`ctc.report.redecode`) and draw them (:mod:`ctc.report.visuals`) under ``<run>/report/visuals/``.

A comparison that cannot be shown (bitstream gone, codec configuration changed, decoder error)
is listed with its reason; the others are still made.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ctc.codec import CodecError
from ctc.report.comparisons import (
    Comparison,
    Panel,
    build_comparisons,
    choose_sequences,
    quality_metric,
    reference_codec,
)
from ctc.report.redecode import DECODED_AGAIN, JobFrames, RedecodeError, RunFrames
from ctc.report.visuals import RANDOM_LABEL, Label, VisualError, write_grid, write_per_frame_plot, write_video

if TYPE_CHECKING:
    from ctc.report.tables import Report

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


def panel_title(panel: Panel, flag_random: bool = True) -> str:
    suffix = f" [{RANDOM_LABEL}]" if panel.random_weights and flag_random else ""
    return f"{panel.codec} {rate_point_text(panel.rate_point)}{suffix}"


def panel_label(panel: Panel, metrics: Sequence[str]) -> Label:
    values = " · ".join(f"{m} {value_text(m, panel.metrics[m])}" for m in metrics if m in panel.metrics)
    return Label(
        (f"{panel.codec} {rate_point_text(panel.rate_point)}", f"{panel.kbps:.2f} kbps", values),
        (RANDOM_LABEL,) if panel.random_weights else (),
    )


def grid_rows(
    count: int, reference: JobFrames, metric: str, lower_is_better: bool, reference_title: str
) -> list[tuple[int, str, str]]:
    """``(frame, name, row title)`` of the first, middle and worst frame (worst by ``metric`` of the
    reference; the last frame when the reference has no per-frame values)."""
    rows = [(0, "first", "frame 0 (first)"), (count // 2, "middle", f"frame {count // 2} (middle)")]
    per_frame = reference.per_frame
    if per_frame is not None and metric in per_frame and len(per_frame) == count:
        values = per_frame[metric].to_numpy()
        worst = int(np.nanargmax(values) if lower_is_better else np.nanargmin(values))
        rows.append(
            (
                worst,
                "worst",
                f"frame {worst} (worst {metric} of {reference_title}: "
                f"{value_text(metric, float(values[worst]))})",
            )
        )
    else:
        rows.append((count - 1, "last", f"frame {count - 1} (last)"))
    return rows


def make_showcase(report: Report, run_dir: Path, out_dir: Path, settings: Mapping[str, Any]) -> Showcase:
    """Choose and draw the comparisons of ``report`` (the report of ``run_dir``) into ``out_dir/visuals``;
    ``settings`` are the page settings (``comparisons``, ``video``, ``grid``, ``plot``)."""
    chosen = settings["comparisons"]
    points = report.rate_points
    codecs = list(dict.fromkeys(points["codec"]))
    under_test = report.info.get("provenance", {}).get("codec")
    if under_test not in codecs or under_test == report.anchor:
        under_test = None
    reference = reference_codec(chosen.get("reference") or under_test, codecs, report.anchor)
    metric = quality_metric(str(chosen["quality_metric"]), report.metrics)
    plot_metric = chosen.get("plot_metric") or metric
    notes = []
    if metric != chosen["quality_metric"]:
        notes.append(f"similar quality by {metric}: the run has no {chosen['quality_metric']}")
    if plot_metric not in report.metrics:
        notes.append(f"per-frame plots by {metric}: the run has no {plot_metric}")
        plot_metric = metric
    order = list(dict.fromkeys(points["sequence"]))
    classes = dict(zip(points["sequence"], points["seq_class"], strict=True))
    sequences = choose_sequences(order, classes, chosen.get("sequences"), int(chosen["max_sequences"]))
    comparisons = build_comparisons(
        points, report.anchor, reference, metric, sequences, report.metrics, chosen.get("rate_points")
    )
    shutil.rmtree(out_dir / VISUALS_DIR, ignore_errors=True)  # no picture of an earlier report stays
    drawer = _Drawer(report, RunFrames(run_dir, str(chosen["device"])), out_dir, plot_metric, settings)
    shown: list[Shown] = []
    for sequence in sequences:
        shown += drawer.sequence(
            [c for c in comparisons if c.sequence == sequence], points[points["sequence"] == sequence]
        )
    again = decoded_again(shown)
    if again:
        note = (
            f"decoded again from the bitstream (no decoded file was kept), {len(again)} version(s): "
            f"{', '.join(again)}"
        )
        print(f"ctc-report: {note}", file=sys.stderr)
        notes.append(note)
    return Showcase(shown, metric, plot_metric, reference, notes)


def decoded_again(shown: Sequence[Shown]) -> list[str]:
    """The versions (``sequence: panel``) whose frames the page decoded again from their bitstreams."""
    return sorted(
        {
            f"{item.comparison.sequence}: {label}"
            for item in shown
            for label, source in item.sources.items()
            if source == DECODED_AGAIN
        }
    )


@dataclass
class _Drawer:
    report: Report
    frames: RunFrames
    out_dir: Path
    metric: str  # of the per-frame plots and the worst frame
    settings: Mapping[str, Any]

    def sequence(self, comparisons: Sequence[Comparison], rows: pd.DataFrame) -> list[Shown]:
        """Decode each job of one sequence once, then draw its comparisons (identical ones share files)."""
        if not comparisons:
            return []
        sequence = comparisons[0].sequence
        count, fps = int(rows["frames"].iloc[0]), float(rows["fps"].iloc[0])
        try:
            original = self.frames.original(sequence, count)
        except RedecodeError as error:
            return [Shown(c, problem=str(error)) for c in comparisons]
        jobs: dict[tuple[str, str], JobFrames | str] = {}
        for panel in {p.job: p for c in comparisons for p in c.panels}.values():
            try:
                jobs[panel.job] = self.frames.job(panel.codec, sequence, panel.rate_point)
            except (RedecodeError, CodecError, OSError) as error:
                jobs[panel.job] = f"{panel_title(panel)}: {error}"
        folder = self.out_dir / VISUALS_DIR / sequence
        folder.mkdir(parents=True, exist_ok=True)
        made: dict[Any, Shown] = {}
        shown = []
        for comparison in comparisons:
            if comparison.key in made:
                same = made[comparison.key]
                shown.append(Shown(comparison, same.video, same.grid, same.plot, same.sources, same.problem))
                continue
            missing = [jobs[p.job] for p in comparison.panels if isinstance(jobs[p.job], str)]
            if missing:
                item = Shown(comparison, problem="; ".join(missing))
            else:
                try:
                    item = self.draw(comparison, original, jobs, folder / f"{len(made) + 1:02d}", fps)
                except (VisualError, OSError) as error:
                    item = Shown(comparison, problem=str(error))
            made[comparison.key] = item
            shown.append(item)
        return shown

    def draw(
        self,
        comparison: Comparison,
        original: np.ndarray,
        jobs: Mapping[tuple[str, str], Any],
        stem: Path,
        fps: float,
    ) -> Shown:
        """The video, frame grid and per-frame plot of one comparison, as ``<stem>.mp4``,
        ``<stem>_grid.png`` and ``<stem>_frames.png``."""
        panels, metric = comparison.panels, self.metric
        sequences = [original] + [jobs[p.job].frames for p in panels]
        labels = [
            Label(("original", comparison.sequence)),
            *(panel_label(p, self.report.metrics) for p in panels),
        ]
        lower = self.report.lower_is_better(metric)
        rows = grid_rows(
            len(original), jobs[comparison.reference.job], metric, lower, panel_title(comparison.reference)
        )
        video, grid, plot = (stem.with_name(stem.name + end) for end in (".mp4", "_grid.png", "_frames.png"))
        curves = {
            panel_title(p): jobs[p.job].per_frame[metric].to_numpy()
            for p in panels
            if jobs[p.job].per_frame is not None and metric in jobs[p.job].per_frame
        }
        title = f"{comparison.sequence}: {metric} per frame"
        if any(p.random_weights for p in panels):
            title += f" ({RANDOM_LABEL}: untrained model)"
        # FFmpeg encodes the video in its own process while this one draws the grid and the plot
        with ThreadPoolExecutor(max_workers=1) as background:
            encoding = background.submit(write_video, sequences, labels, fps, video, self.settings["video"])
            write_grid(
                sequences,
                labels,
                [(index, heading) for index, _, heading in rows],
                grid,
                self.settings["grid"].get("panel_width") or original.shape[3],
            )
            if curves:
                marks = [(index, name) for index, name, _ in rows]
                write_per_frame_plot(curves, metric, lower, marks, title, plot, self.settings["plot"])
            encoding.result()
        return Shown(
            comparison,
            video=self._relative(video),
            grid=self._relative(grid),
            plot=self._relative(plot) if curves else None,
            sources={panel_title(p): jobs[p.job].source for p in panels},
        )

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.out_dir).as_posix()
