"""Every device and worker decision: which device a codec's jobs and the scoring tasks run on, how many
frames a forward pass takes there, how many threads a process uses."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from functools import cache
from typing import Any


def resolve_device(device: str) -> str:
    """``auto`` is ``cuda`` when this process has a GPU, else ``cpu``; anything else is kept."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class DeviceError(ValueError):
    """A setting asks for a device this machine does not have; the message names the setting."""


def gpu_count() -> int:
    import torch  # only callers that may use a GPU pay for importing torch

    return torch.cuda.device_count()


def _visible_gpus(setting: str, key: str, gpus: int) -> list[str]:
    """Every visible GPU; the CPU when there is none, unless ``setting`` (``key``'s value) is ``cuda``."""
    if gpus:
        return [f"cuda:{index}" for index in range(gpus)]
    if setting == "cuda":
        raise DeviceError(f"{key}=cuda but no CUDA device is visible (use auto or cpu)")
    return ["cpu"]


def codec_devices(uses_gpu: Mapping[str, bool], device: str) -> dict[str, list[str]]:
    """The devices each role's jobs cycle over (``uses_gpu``: role -> whether its codec runs on a GPU):
    GPU codecs round-robin over the visible GPUs (or the one ``device`` names), the others the CPU."""
    devices: dict[str, list[str]] = {}
    for role, on_gpu in uses_gpu.items():
        if device == "cpu" or not on_gpu:
            devices[role] = ["cpu"]
        elif device.startswith("cuda:"):
            devices[role] = [device]
        else:
            devices[role] = _visible_gpus(device, "device", gpu_count())
    return devices


def scoring_devices(setting: str, sweep_device: str, gpus: int) -> list[str]:
    """The devices scoring tasks take turns on: ``metrics.device`` when set, else (``auto``) every GPU
    present, unless the sweep is held to the CPU (``device=cpu``); the CPU when there is none."""
    if setting not in ("auto", "cuda"):
        return [setting]
    if setting == "auto" and sweep_device == "cpu":
        return ["cpu"]
    if sweep_device.startswith("cuda:") and setting == "auto":
        return [sweep_device]
    return _visible_gpus(setting, "metrics.device", gpus)


def job_scoring_device(setting: str, job_device: str) -> str:
    """Where a job scores its own frames (``scoring=job``): ``metrics.device``, or with ``auto`` the job's
    GPU, else the best device this process has (a CPU codec's job on a GPU machine is scored on the GPU)."""
    if setting != "auto":
        return setting
    return job_device if job_device.startswith("cuda") else resolve_device("auto")


def batch_size_for(config: Mapping[str, object], device: str) -> int:
    """Frames per forward pass on ``device``: the config's ``batch_size`` on a GPU, ``cpu_batch_size`` on
    the CPU, where the networks are compute-bound and big batches only cost memory (see ``make bench``)."""
    on_gpu = resolve_device(device).startswith("cuda")
    size = int(config["batch_size"] if on_gpu else config.get("cpu_batch_size", config["batch_size"]))
    if size < 1:
        raise ValueError(f"batch size {size}: expected a positive number of frames")
    return size


_thread_limit: int | None = None


def limit_threads(threads: int) -> None:
    """Use at most ``threads`` CPU threads in this process (torch's pools, libvmaf), so that a sweep's
    workers together never run more threads than the cores given to the sweep."""
    global _thread_limit
    _thread_limit = max(1, int(threads))
    torch = sys.modules.get("torch")
    if torch is None:
        # Not imported yet (a conventional codec's task never needs it): torch sizes its pools from these
        # when it is imported, so the limit holds without paying torch's import (seconds per SLURM task).
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(_thread_limit)
    elif torch.get_num_threads() != _thread_limit:
        torch.set_num_threads(_thread_limit)


def cpu_threads() -> int:
    """The CPU threads this process may use: its limit, else every core it may run on."""
    return _thread_limit or len(os.sched_getaffinity(0))


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_malloc_tuned = False


def reuse_freed_memory() -> None:
    """Have glibc's malloc keep freed blocks (up to its 32 MiB limit) for the next allocation instead of
    handing them back to the system. The networks allocate and free maps of 16-32 MiB for every layer of
    every frame; handed back, each one is page-faulted in again, about 50,000 faults per scored frame at
    256x256 and several percent of the metric stage's time (``make bench``). Other C libraries: no-op."""
    global _malloc_tuned
    if _malloc_tuned:
        return
    _malloc_tuned = True
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
        libc.mallopt(_M_TOP_PAD, 64 << 20)


def release_freed_memory() -> None:
    """Hand the freed blocks that :func:`reuse_freed_memory` keeps back to the system, once a task is done
    (a worker holding them looks like a leak to joblib's workers, which then restart, models and all)."""
    libc = _glibc() if _malloc_tuned else None
    if libc is not None:
        libc.malloc_trim(0)


@cache
def _glibc() -> Any:
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None
