"""PSNR as the GFVC common software computes it: per RGB channel, capped, mean of channels."""

from __future__ import annotations

import numpy as np

from ctc.metrics import Metric, register_metric

PSNR_CAP_DB = 100.0


def psnr_from_mse(mse: np.ndarray, peak: float = 255.0) -> np.ndarray:
    """10·log10(peak² / MSE), capped at 100 dB (identical planes give the cap, not infinity)."""
    with np.errstate(divide="ignore"):
        value = 10.0 * np.log10(peak**2 / np.asarray(mse, np.float64))
    return np.minimum(value, PSNR_CAP_DB)


@register_metric("psnr")
class RgbPsnr(Metric):
    unit = "dB"

    def score(self, reference: np.ndarray, distorted: np.ndarray) -> np.ndarray:
        diff = reference.astype(np.float64) - distorted.astype(np.float64)
        mse = (diff**2).mean(axis=(2, 3))  # (B, 3): one MSE per channel
        return psnr_from_mse(mse).mean(axis=1)
