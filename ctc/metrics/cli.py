"""``ctc-score REF DIST``: score two images or two raw RGB 4:4:4 sequences outside a sweep; prints JSON."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ctc.cli import finish
from ctc.devices import batch_size_for
from ctc.frames import read_rgb444, rgb444_frame_bytes
from ctc.metrics import (
    METRICS,
    MetricError,
    describe_metrics,
    metric_class,
    metric_config,
    metric_set,
    score_frames,
    sequence_values,
)
from ctc.metrics.weights import WeightsError

IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".ppm", ".webp"}


def load_image(path: Path) -> np.ndarray:
    """An 8-bit image as one RGB frame ``(1, 3, H, W)``, read as ``lpips.load_image`` reads it (OpenCV)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise MetricError(f"{path}: not a readable image")
    return np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1))[None]


def load_sequence(path: Path, width: int | None, height: int | None, frames: int | None) -> np.ndarray:
    """A raw planar 8-bit RGB 4:4:4 file, memory-mapped as ``(N, 3, H, W)``."""
    if width is None or height is None:
        raise MetricError(f"{path}: a raw RGB 4:4:4 sequence needs --width and --height")
    size, frame_bytes = path.stat().st_size, rgb444_frame_bytes(width, height)
    if size == 0 or size % frame_bytes:
        raise MetricError(
            f"{path}: {size} bytes is not a whole number of {width}x{height} 8-bit RGB 4:4:4 "
            f"frames ({frame_bytes} bytes each)"
        )
    if frames is not None and size // frame_bytes < frames:
        raise MetricError(f"{path}: holds {size // frame_bytes} frames, --frames asked for {frames}")
    return read_rgb444(path, width, height, frames)


def expand_metric_names(tokens: Sequence[str]) -> list[str]:
    """Metric names, where a token that names no metric but a set (``ctc``, ``all``) stands for its names."""
    names: list[str] = []
    for token in (t for item in tokens for t in item.split(",") if t):
        try:
            metric_class(token)
            expanded = [token]
        except MetricError:
            try:
                expanded = metric_set(token)
            except MetricError:
                raise MetricError(
                    f"unknown metric or metric set {token!r}; metrics: "
                    f"{', '.join(sorted(METRICS))}; sets: ctc, all"
                ) from None
        names += [name for name in expanded if name not in names]
    return names


def score_files(
    reference: Path,
    decoded: Path,
    metrics: Sequence[str],
    width: int | None = None,
    height: int | None = None,
    frames: int | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    per_frame: bool = False,
) -> dict[str, object]:
    """The JSON report of ``ctc-score`` as a dict."""
    for path in (reference, decoded):
        if not path.is_file():
            raise MetricError(f"{path}: no such file")
    images = all(p.suffix.lower() in IMAGE_SUFFIXES for p in (reference, decoded))
    if images:
        ref, dist = load_image(reference), load_image(decoded)
    else:
        ref, dist = (load_sequence(p, width, height, frames) for p in (reference, decoded))
    batch_size = batch_size or batch_size_for(metric_config("ctc"), device)
    table = score_frames(ref, dist, metrics, device, batch_size, label=f"{reference} vs {decoded}")
    values = sequence_values(table)
    report: dict[str, object] = {
        "reference": str(reference),
        "decoded": str(decoded),
        "kind": "image" if images else "rgb444 sequence",
        "width": ref.shape[3],
        "height": ref.shape[2],
        "frames": ref.shape[0],
        "metrics": {
            name: {"value": values[name], **about} for name, about in describe_metrics(metrics).items()
        },
    }
    if per_frame and not images:
        report["per_frame"] = {name: table[name].tolist() for name in metrics}
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ctc-score",
        description="Score a decoded image or raw RGB 4:4:4 sequence against its original "
        "and print JSON: each metric's value (the mean over frames), its direction and definition.",
    )
    parser.add_argument("reference", type=Path, help="original: an image (PNG, BMP, ...) or a raw .rgb file")
    parser.add_argument("decoded", type=Path, help="decoded: same kind and size as the reference")
    parser.add_argument(
        "--metrics",
        nargs="+",
        default=["ctc"],
        help="metric names or sets (ctc = dists lpips psnr; all); default: ctc",
    )
    parser.add_argument("--width", type=int, help="frame width of raw sequences")
    parser.add_argument("--height", type=int, help="frame height of raw sequences")
    parser.add_argument("--frames", type=int, help="score only the first N frames of raw sequences")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    parser.add_argument(
        "--batch-size",
        type=int,
        help="frames per forward pass (default: ctc/conf/metrics/ctc.yaml's for the device)",
    )
    parser.add_argument("--per-frame", action="store_true", help="also print each frame's values (sequences)")
    args = parser.parse_args(argv)
    return finish(
        "ctc-score",
        lambda: score_files(
            args.reference,
            args.decoded,
            expand_metric_names(args.metrics),
            args.width,
            args.height,
            args.frames,
            args.device,
            args.batch_size,
            args.per_frame,
        ),
        (MetricError, WeightsError, OSError),
        print_json=True,
        label="",
    )


if __name__ == "__main__":
    sys.exit(main())
