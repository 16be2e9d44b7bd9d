"""A metric of the example's own: PSNR of the frames' edges, which a warped key frame keeps or loses."""

from __future__ import annotations

import numpy as np

from ctc.metrics import FrameBatch, Metric, register_metric
from ctc.metrics.psnr import psnr_from_mse


def _edges(frames: np.ndarray) -> np.ndarray:
    """Horizontal and vertical differences of the grey image, ``(B, 2, H - 1, W - 1)``."""
    grey = frames.astype(np.float64).mean(axis=1)
    return np.stack([np.diff(grey, axis=2)[:, 1:, :], np.diff(grey, axis=1)[:, :, 1:]], axis=1)


@register_metric("edge_psnr")
class EdgePsnr(Metric):
    unit = "dB"
    description = "PSNR of the grey image's horizontal and vertical differences (edges), capped at 100 dB"

    def score_batch(self, batch: FrameBatch) -> np.ndarray:
        error = _edges(batch.reference) - _edges(batch.distorted)
        return psnr_from_mse((error**2).mean(axis=(1, 2, 3)))
