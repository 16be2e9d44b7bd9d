"""Decoder speed of the GFVC models: frames per second batched versus one frame at a time.

The common software generates one frame per call; our decoder knows all features once they are
decoded and generates many frames per call. Both run side by side on the same features, on CPU and,
where there is one, on the GPU, where half precision (bf16, fp16 under autocast) is measured too
with what it does to the pictures (max abs difference and PSNR of the difference to float32).
Weights are random (labelled): speed does not depend on them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from models.registry import create_model

HALF_PRECISIONS = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _smooth_frames(count: int, size: int, seed: int = 0) -> torch.Tensor:
    """Deterministic smooth test pictures in [0, 1] (low-frequency noise upsampled)."""
    coarse = torch.rand(count, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


def _timed(fn: Callable[[], torch.Tensor], device: torch.device) -> tuple[torch.Tensor, float]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - start


def _difference(approx: torch.Tensor, exact: torch.Tensor) -> tuple[float, float]:
    diff = approx.float() - exact.float()
    mse = diff.pow(2).mean().item()
    return diff.abs().max().item(), (math.inf if mse == 0 else 10 * math.log10(1 / mse))


def bench_model(
    name: str, device: str = "cpu", frames: int = 8, batch_size: int = 8, size: int = 256
) -> list[dict]:
    """Rows for one model on one device: per-frame and batched decoding (and half precision on GPU)."""
    model = create_model(name, weights="random", device=device)
    dev = model.device
    pictures = _smooth_frames(frames + 1, size).to(dev)
    key_frame = pictures[:1]
    features = model.extract_features(pictures[1:])
    reference = model.prepare_reference(key_frame)

    driving = pictures[1:]  # also the per-frame pictures a model may take (HDAC's base layer)

    def per_frame() -> torch.Tensor:
        return torch.cat(
            [
                model.decoder_pass(key_frame, reference, features[i : i + 1], driving[i : i + 1])
                for i in range(frames)
            ]
        )

    def batched() -> torch.Tensor:
        starts = range(0, frames, batch_size)
        return torch.cat(
            [
                model.decoder_pass(
                    key_frame, reference, features[i : i + batch_size], driving[i : i + batch_size]
                )
                for i in starts
            ]
        )

    batched()  # warm-up (allocations, kernel selection)
    label = f"{name} ({model.weights} weights) {dev.type}"
    rows = []
    exact, seconds = _timed(per_frame, dev)
    rows.append(_speed(f"{label} one frame per call", frames, seconds))
    out, seconds = _timed(batched, dev)
    max_diff, _ = _difference(out, exact)
    note = f"max abs diff to one frame per call {max_diff:.2g}"
    rows.append(_speed(f"{label} batched x{batch_size}", frames, seconds, note))
    if dev.type == "cuda":
        for precision, dtype in HALF_PRECISIONS.items():
            with torch.autocast("cuda", dtype=dtype):
                out, seconds = _timed(batched, dev)
            max_diff, psnr = _difference(out, exact)
            note = f"vs float32: max abs diff {max_diff:.3g}, PSNR {psnr:.1f} dB"
            rows.append(_speed(f"{label} batched x{batch_size} {precision} autocast", frames, seconds, note))
    return rows


def _speed(case: str, frames: int, seconds: float, note: str | None = None) -> dict[str, Any]:
    """A row of frames per second (with its ``note`` where one is given)."""
    row: dict[str, Any] = {"case": case, "value": frames / seconds, "unit": "frames/s"}
    return row if note is None else {**row, "note": note}


def bench_models(
    models: Sequence[str] = ("fomm", "cfte"),
    frames: int = 8,
    batch_size: int = 8,
    size: int = 256,
    devices: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Rows ``{"case", "value", "unit", "note"?}`` for ``ctc-bench``, on CPU and CUDA if present."""
    devices = (
        list(devices) if devices is not None else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    )
    return [
        row
        for name in models
        for device in devices
        for row in bench_model(name, device, frames, batch_size, size)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=["fomm", "cfte"])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", action="append", help="cpu, cuda (default: cpu, and cuda when present)")
    args = parser.parse_args(argv)
    for row in bench_models(args.models, args.frames, args.batch_size, devices=args.device):
        print(f"{row['case']:<70} {row['value']:>9.2f} {row['unit']}  {row.get('note', '')}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
