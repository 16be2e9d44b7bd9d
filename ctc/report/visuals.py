"""Pictures of decoded sequences side by side: labelled panels, H.264 videos, frame grids, per-frame plots.

Every panel carries a banner with what it shows (codec, rate point, kbps, the sequence's metric
values) and, for a model run on random weights, a red RANDOM WEIGHTS line, so no picture of an
untrained model can be taken for a result. Videos are coded with the FFmpeg of ``imageio-ffmpeg``
(its libx264: H.264 in MP4 plays in every browser); frames, grids and plots are small PNGs.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageDraw, ImageFont

from ctc.tools import ffmpeg_exe, log_tail

TEXT, WARNING, BACKGROUND = (235, 235, 235), (255, 80, 80), (24, 24, 24)
RANDOM_LABEL = "RANDOM WEIGHTS"
MARGIN = 4  # pixels around a banner's text


class VisualError(RuntimeError):
    """A picture or video could not be made; the message says which and why."""


@dataclass(frozen=True)
class Label:
    """A banner's lines; ``warning`` lines are drawn in red."""

    lines: tuple[str, ...]
    warning: tuple[str, ...] = ()


@cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    from matplotlib import font_manager  # matplotlib ships DejaVu Sans: the same font on every machine

    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)


def font_size(width: int) -> int:
    """Text size for a panel ``width`` pixels wide (legible from 128 pixels up)."""
    return max(10, min(16, width // 17))


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """``text`` in lines that fit ``width`` pixels, broken at " · " separators and then at spaces."""
    lines: list[str] = []
    for word in text.replace(" · ", " ·\0").split("\0"):
        if lines and font.getlength(lines[-1] + " " + word) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return [line.rstrip(" ·") for line in lines]


def banner_lines(label: Label, width: int) -> list[tuple[str, tuple[int, int, int]]]:
    font = _font(font_size(width))
    room = width - 2 * MARGIN
    lines = [(line, TEXT) for text in label.lines for line in _wrap(text, font, room)]
    return lines + [(line, WARNING) for text in label.warning for line in _wrap(text, font, room)]


def banner_height(labels: Iterable[Label], width: int) -> int:
    """The height that fits the longest of ``labels`` at ``width``, so a row's banners line up."""
    line = round(font_size(width) * 1.3)
    return 2 * MARGIN + line * max((len(banner_lines(label, width)) for label in labels), default=1)


def banner(label: Label, width: int, height: int) -> np.ndarray:
    """``label`` drawn as an ``(height, width, 3)`` uint8 picture."""
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    size = font_size(width)
    for index, (line, colour) in enumerate(banner_lines(label, width)):
        draw.text((MARGIN, MARGIN + index * round(size * 1.3)), line, fill=colour, font=_font(size))
    return np.asarray(image)


def to_hwc(frame: np.ndarray) -> np.ndarray:
    """A ``(3, H, W)`` planar frame as ``(H, W, 3)``."""
    return np.ascontiguousarray(frame.transpose(1, 2, 0))


@cache
def _stamp(text: str, width: int) -> np.ndarray:
    """``text`` in red on a dark strip, to lay over the bottom-left corner of a picture ``width`` wide."""
    font = _font(font_size(width))
    size = (round(font.getlength(text)) + 2 * MARGIN, round(font_size(width) * 1.3) + MARGIN)
    image = Image.new("RGB", size, BACKGROUND)
    ImageDraw.Draw(image).text((MARGIN, MARGIN // 2), text, fill=WARNING, font=font)
    return np.asarray(image)


def stamped(picture: np.ndarray, label: Label) -> np.ndarray:
    """An ``(H, W, 3)`` picture with ``label``'s warning lines stamped in its corner, so that the
    picture itself, cut out of its grid or video, still says it comes from random weights."""
    if not label.warning:
        return picture
    stamp = _stamp(" ".join(label.warning), picture.shape[1])
    height, width = min(stamp.shape[0], picture.shape[0]), min(stamp.shape[1], picture.shape[1])
    picture = picture.copy()
    picture[-height:, :width] = stamp[:height, :width]
    return picture


def side_by_side(pictures: Sequence[np.ndarray]) -> np.ndarray:
    """``(H, W, 3)`` pictures of one height in a row, 2 px apart."""
    gap = np.zeros((pictures[0].shape[0], 2, 3), np.uint8)
    return np.concatenate([part for picture in pictures for part in (picture, gap)][:-1], axis=1)


def _even(picture: np.ndarray) -> np.ndarray:
    """Pad to even width and height (4:2:0 video needs them)."""
    height, width = picture.shape[:2]
    return np.pad(picture, ((0, height % 2), (0, width % 2), (0, 0)))


def write_video(
    sequences: Sequence[np.ndarray],
    labels: Sequence[Label],
    fps: float,
    path: Path,
    settings: Mapping[str, Any],
) -> None:
    """The ``(N, 3, H, W)`` ``sequences`` played side by side under their banners, as an MP4 at ``path``.

    ``settings``: ``encoder`` (an FFmpeg video encoder), ``crf``, ``preset``, ``max_frames``.
    """
    count = min(len(frames) for frames in sequences)
    count = min(count, int(settings["max_frames"])) if settings.get("max_frames") else count
    width = sequences[0].shape[3]
    height = banner_height(labels, width)
    banners = [banner(label, width, height) for label in labels]

    def row(index: int) -> np.ndarray:
        return _even(
            side_by_side(
                [
                    np.concatenate([top, stamped(to_hwc(frames[index]), label)])
                    for top, frames, label in zip(banners, sequences, labels, strict=True)
                ]
            )
        )

    size = row(0).shape
    command = [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{size[1]}x{size[0]}",
        "-r",
        f"{fps:g}",
        "-i",
        "-",
        "-c:v",
        str(settings["encoder"]),
        "-preset",
        str(settings["preset"]),
        "-crf",
        str(settings["crf"]),
        "-vf",
        "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p",
        "-colorspace",
        "bt709",
        "-color_primaries",
        "bt709",
        "-color_trc",
        "bt709",
        "-color_range",
        "tv",
        "-movflags",
        "+faststart",
        str(path),
    ]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for index in range(count):
            process.stdin.write(row(index).tobytes())
        process.stdin.close()
    except BrokenPipeError:
        pass  # FFmpeg stopped early: its message comes below
    errors = process.stderr.read().decode(errors="replace")
    if process.wait() != 0 or not path.is_file():
        raise VisualError(f"ffmpeg could not write {path}:\n{log_tail(errors)}")


def write_grid(
    sequences: Sequence[np.ndarray],
    labels: Sequence[Label],
    rows: Sequence[tuple[int, str]],
    path: Path,
    panel_width: int,
) -> None:
    """A PNG grid: one row per ``(frame index, row title)``, one column per sequence, scaled to
    ``panel_width`` pixels a panel; the column banners on top, each row's title above it."""
    height = banner_height(labels, panel_width)
    parts = [side_by_side([banner(label, panel_width, height) for label in labels])]
    width = parts[0].shape[1]
    for index, title in rows:
        title_label = Label((title,))
        parts.append(banner(title_label, width, banner_height([title_label], width)))
        parts.append(
            side_by_side(
                [
                    stamped(_scaled(frames[index], panel_width), label)
                    for frames, label in zip(sequences, labels, strict=True)
                ]
            )
        )
    # zlib level 6 (Pillow's default): 2 % larger than level 9 on the demo's grids, 3 times faster
    Image.fromarray(np.concatenate(parts)).save(path, compress_level=6)


def _scaled(frame: np.ndarray, width: int) -> np.ndarray:
    picture = Image.fromarray(to_hwc(frame))
    if picture.width != width:
        height = round(picture.height * width / picture.width)
        picture = picture.resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(picture)


def write_per_frame_plot(
    curves: Mapping[str, Sequence[float]],
    metric: str,
    lower_is_better: bool,
    marks: Sequence[tuple[int, str]],
    title: str,
    path: Path,
    settings: Mapping[str, Any],
) -> None:
    """A PNG of ``metric`` over the frames, one line per label in ``curves``; ``marks`` are the
    frames the grid shows (dotted, titled)."""
    figure = Figure(figsize=(float(settings["width_in"]), float(settings["height_in"])), layout="constrained")
    axes = figure.add_subplot()
    for label, values in curves.items():
        axes.plot(np.arange(len(values)), values, label=label, linewidth=1.2)
    for index, name in marks:
        axes.axvline(index, color="grey", linestyle=":", linewidth=1)
        axes.annotate(
            f" {name}",
            (index, 1),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            color="grey",
            ha="left",
            va="top",
        )
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("frame")
    axes.set_ylabel(f"{metric} ({'lower' if lower_is_better else 'higher'} is better)")
    axes.set_title(title, fontsize=9)
    axes.grid(True, alpha=0.3)
    if curves:
        axes.legend(fontsize=7)
    figure.savefig(path, dpi=int(settings["dpi"]))
