"""Which device a stage runs on, and how many frames it takes per forward pass there."""

from __future__ import annotations

from collections.abc import Mapping


def resolve_device(device: str) -> str:
    """``auto`` is ``cuda`` when this process has a GPU, else ``cpu``; anything else is kept."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def batch_size_for(config: Mapping[str, object], device: str) -> int:
    """Frames per forward pass on ``device``: the config's ``batch_size`` on a GPU, ``cpu_batch_size`` on
    the CPU, where the networks are compute-bound and big batches only cost memory (see ``make bench``)."""
    on_gpu = resolve_device(device).startswith("cuda")
    size = int(config["batch_size"] if on_gpu else config.get("cpu_batch_size", config["batch_size"]))
    if size < 1:
        raise ValueError(f"batch size {size}: expected a positive number of frames")
    return size
