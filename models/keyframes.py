"""Where a GFVC codec codes key frames: every ``gop_size`` frames, and (adaptive refresh, off by
default) where the encoder sees the quality of its animated frames fall below a threshold.

Adaptive refresh follows the DAC family's encoders: the running mean of a metric over the animated
frames of the current GOP is compared with the threshold after each frame; the first frame where it
falls below (above, for a lower-is-better metric) is coded as a key frame instead. Upstream's mean
runs over the whole sequence and is never reset; ours restarts at every key frame, so that a
refresh answers the quality of the GOP it ends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


def psnr(original: np.ndarray, decoded: np.ndarray) -> float:
    """PSNR in dB of two uint8 pictures (100 dB when identical), as upstream's encoders measure it."""
    mse = np.mean((original.astype(np.float64) - decoded.astype(np.float64)) ** 2)
    return 100.0 if mse == 0 else float(10 * np.log10(255.0**2 / mse))


# name -> (function, lower_is_better)
REFRESH_METRICS: dict[str, tuple[Callable[[np.ndarray, np.ndarray], float], bool]] = {"psnr": (psnr, False)}


@dataclass(frozen=True)
class KeyFramePolicy:
    """A GFVC codec config's ``gop_size`` and ``refresh`` (their defaults: ``ctc/conf/gfvc/base.yaml``)."""

    gop_size: int | None  # None: one key frame per sequence (as the CTC runs GFVC codecs)
    refresh_metric: str
    refresh_threshold: float | None  # None: no adaptive refresh

    @classmethod
    def from_config(cls, config: Mapping[str, Any], owner: str) -> KeyFramePolicy:
        gop = config["gop_size"]
        if gop is not None and int(gop) < 1:
            raise ValueError(f"{owner}: gop_size {gop}: expected a positive number of frames or null")
        refresh = config["refresh"]
        metric = str(refresh["metric"])
        if metric not in REFRESH_METRICS:
            raise ValueError(f"{owner}: refresh.metric {metric!r}: expected one of {sorted(REFRESH_METRICS)}")
        threshold = refresh["threshold"]
        return cls(None if gop is None else int(gop), metric, None if threshold is None else float(threshold))

    def gop_end(self, start: int, frame_count: int) -> int:
        """The frame after the last one of the GOP starting at ``start`` (before any adaptive refresh)."""
        return frame_count if self.gop_size is None else min(frame_count, start + self.gop_size)

    def refresh_at(self, originals: np.ndarray, decoded: np.ndarray) -> int | None:
        """The first frame of a GOP (index in it, >= 1) to code as a key frame instead, or None."""
        if self.refresh_threshold is None:
            return None
        measure, lower_is_better = REFRESH_METRICS[self.refresh_metric]
        total = 0.0
        for index in range(1, len(originals)):
            total += measure(originals[index], decoded[index])
            mean = total / index
            if (mean > self.refresh_threshold) if lower_is_better else (mean < self.refresh_threshold):
                return index
        return None
