"""The metric stage: a registry of frame metrics and the scoring of a decoded sequence.

Every metric scores batches of 8-bit RGB frames ``(B, 3, H, W)`` against the originals and
returns one value per frame; a sequence's value is the mean over all its frames, the first
(key) frame included, as in the GFVC common software.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import ClassVar

import numpy as np
import pandas as pd

# Modules that register metrics; imported on first use so that cheap metrics stay cheap.
METRIC_MODULES = ("ctc.metrics.psnr",)


class MetricError(ValueError):
    """Bad input to a metric (mismatched sizes, out-of-range values, unknown name)."""


class Metric(ABC):
    name: ClassVar[str]
    lower_is_better: ClassVar[bool] = False
    unit: ClassVar[str] = ""

    def __init__(self, device: str = "cpu") -> None:
        self.device = device

    @abstractmethod
    def score(self, reference: np.ndarray, distorted: np.ndarray) -> np.ndarray:
        """Per-frame values, float64 ``(B,)``, for uint8 batches ``(B, 3, H, W)``."""


METRICS: dict[str, type[Metric]] = {}


def register_metric(name: str) -> Callable[[type[Metric]], type[Metric]]:
    def decorator(cls: type[Metric]) -> type[Metric]:
        cls.name = name
        METRICS[name] = cls
        return cls

    return decorator


def _load_metric_modules() -> None:
    for module in METRIC_MODULES:
        importlib.import_module(module)


@lru_cache(maxsize=None)
def get_metric(name: str, device: str = "cpu") -> Metric:
    """The metric ``name`` on ``device``, built once per process (backbones are not rebuilt per job)."""
    _load_metric_modules()
    if name not in METRICS:
        raise MetricError(f"unknown metric {name!r}; available: {', '.join(sorted(METRICS))}")
    return METRICS[name](device=device)


def score_frames(reference: np.ndarray, distorted: np.ndarray, metrics: Sequence[str],
                 device: str = "cpu", batch_size: int = 16) -> pd.DataFrame:
    """Score two ``(N, 3, H, W)`` uint8 sequences frame by frame; one column per metric."""
    if reference.shape != distorted.shape:
        raise MetricError(f"reference {reference.shape} and decoded {distorted.shape} differ in shape")
    scorers = [get_metric(name, device) for name in metrics]
    columns: dict[str, list[np.ndarray]] = {m.name: [] for m in scorers}
    for start in range(0, reference.shape[0], batch_size):
        ref = np.asarray(reference[start:start + batch_size])
        dist = np.asarray(distorted[start:start + batch_size])
        for metric in scorers:
            columns[metric.name].append(metric.score(ref, dist))
    table = pd.DataFrame({name: np.concatenate(parts) for name, parts in columns.items()})
    table.index.name = "frame"
    return table
