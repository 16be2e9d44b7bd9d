"""Speed of the metric stage, side by side with a frame-at-a-time loop like the GFVC common software's.

The loop (``evaluate/multiMetric_rgb444.py`` there) reads one frame of each file per step and runs
LPIPS and DISTS on it alone (one frame per forward pass), with the networks built again for each
sequence. Ours scores memory-mapped files in batches with networks built once per process. Both run
the same models and weights, in one process, on the same frames; ``ctc-bench`` prints the rows.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ctc.devices import batch_size_for, resolve_device
from ctc.frames import read_rgb444, write_rgb444
from ctc.metrics import get_metric, metric_config, metric_set, score_frames
from ctc.metrics.perceptual import build_dists, build_lpips
from ctc.metrics.psnr import plane_mse, psnr_from_mse


def synthetic_pair(frames: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth moving pattern and a noisy copy (the networks' cost does not depend on the content)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    phases = np.arange(frames)[:, None, None, None] / 10 + np.array([0.0, 2.0, 4.0])[None, :, None, None]
    reference = (127.5 + 100 * np.sin(6 * x + phases) * np.cos(5 * y - phases)).astype(np.uint8)
    noise = rng.normal(0, 6, reference.shape)
    return reference, np.clip(reference + noise, 0, 255).astype(np.uint8)


def frame_at_a_time(reference: Path, decoded: Path, frames: int, size: int, device: str) -> np.ndarray:
    """The GFVC-style loop for the CTC set: networks built per sequence, one frame per forward pass."""
    lpips_vgg, dists = build_lpips("vgg").to(device), build_dists().to(device)
    values = np.empty((frames, 3))
    frame_samples = 3 * size * size
    with open(reference, "rb") as original, open(decoded, "rb") as test, torch.inference_mode():
        for index in range(frames):
            ref = np.fromfile(original, np.uint8, frame_samples).reshape(1, 3, size, size)
            dist = np.fromfile(test, np.uint8, frame_samples).reshape(1, 3, size, size)
            psnr = psnr_from_mse(plane_mse(ref, dist)).mean()
            ref_tensor = torch.tensor(ref.astype(np.float32) / 255, device=device)
            dist_tensor = torch.tensor(dist.astype(np.float32) / 255, device=device)
            values[index] = (
                dists(ref_tensor, dist_tensor).item(),
                lpips_vgg(ref_tensor, dist_tensor, normalize=True).item(),
                psnr,
            )
    return values


def _timed(function: Callable[..., Any], *args: object) -> tuple[Any, float]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = function(*args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def bench_metrics(
    frames: int = 16, sequences: int = 2, size: int = 256, device: str = "auto", batch_size: int | None = None
) -> list[dict[str, object]]:
    """Frames per second of the CTC metric set, batched vs the frame-at-a-time loop.

    ``batch_size`` defaults to the CTC metrics config's for ``device`` (``ctc/conf/metrics/ctc.yaml``).
    ``sequences`` sequences of ``frames`` frames at ``size``×``size`` are scored by each method in turn.
    Rows for ``ctc-bench`` (``name``, ``value``, ``unit``, ``target``, ``note``): both speeds, their ratio and
    the largest difference between the two methods' per-frame values.
    """
    device = resolve_device(device)
    batch_size = batch_size or batch_size_for(metric_config("ctc"), device)
    names = metric_set("ctc")
    if names != ["dists", "lpips", "psnr"]:
        raise ValueError(f"the frame-at-a-time loop scores dists, lpips, psnr; the CTC set is now {names}")
    with tempfile.TemporaryDirectory() as tmp:
        pairs = []
        for index in range(sequences):
            reference, decoded = Path(tmp, f"ref{index}.rgb"), Path(tmp, f"dec{index}.rgb")
            for path, array in zip((reference, decoded), synthetic_pair(frames, size, index), strict=True):
                write_rgb444(path, array)
            pairs.append((reference, decoded))

        _, build_seconds = _timed(lambda: [get_metric(name, device) for name in names])
        batched, looped, batched_seconds, loop_seconds = [], [], 0.0, 0.0
        for ref, dist in pairs:  # alternating, so that a busy machine slows both alike
            table, seconds = _timed(
                score_frames,
                read_rgb444(ref, size, size),
                read_rgb444(dist, size, size),
                names,
                device,
                batch_size,
            )
            batched.append(table)
            batched_seconds += seconds
            values, seconds = _timed(frame_at_a_time, ref, dist, frames, size, device)
            looped.append(values)
            loop_seconds += seconds

    total = frames * sequences
    batched_fps, loop_fps = total / batched_seconds, total / loop_seconds
    difference = max(
        float(np.abs(table[names].to_numpy() - values).max())
        for table, values in zip(batched, looped, strict=True)
    )
    setting = (
        f"{', '.join(names)}; {sequences}x{frames} frames {size}x{size}; {device}, "
        f"{torch.get_num_threads()} threads"
    )
    target = ">= 1000 frames/s (GPU)" if device.startswith("cuda") else ""
    return [
        {
            "name": f"metrics batched ({batch_size} frames per pass)",
            "value": batched_fps,
            "unit": "frames/s",
            "target": target,
            "note": f"{setting}; networks built once ({build_seconds:.2f} s, not counted)",
        },
        {
            "name": "metrics frame at a time (GFVC script)",
            "value": loop_fps,
            "unit": "frames/s",
            "note": f"{setting}; networks built per sequence, counted",
        },
        {
            "name": "metrics speed-up, batched / frame at a time",
            "value": batched_fps / loop_fps,
            "unit": "x",
            "target": ">= 5",
            "note": setting,
        },
        {
            "name": "metrics largest difference, batched vs frame at a time",
            "value": difference,
            "unit": "",
            "target": "< 1e-4",
            "note": "max over frames and metrics of |batched - loop|",
        },
    ]
