"""PSNR: on RGB as the GFVC common software computes it, and on YUV 4:2:0 as JVET reports it."""

from __future__ import annotations

import numpy as np

from ctc.metrics import FrameBatch, Metric, MetricError, register_metric

PSNR_CAP_DB = 100.0
# JVET's combined YUV PSNR weights the planes' MSEs 6:1:1 (Y:U:V).
YUV_MSE_WEIGHTS = (6.0, 1.0, 1.0)


def psnr_from_mse(mse: np.ndarray, peak: float = 255.0) -> np.ndarray:
    """10·log10(peak² / MSE), capped at 100 dB (identical planes give the cap, not infinity)."""
    with np.errstate(divide="ignore"):
        value = 10.0 * np.log10(peak**2 / np.asarray(mse, np.float64))
    return np.minimum(value, PSNR_CAP_DB)


def plane_mse(reference: np.ndarray, distorted: np.ndarray) -> np.ndarray:
    """Per-frame MSE of ``(B, H, W)`` planes (or per frame and channel of ``(B, C, H, W)``)."""
    diff = reference.astype(np.float64) - distorted.astype(np.float64)
    return (diff**2).mean(axis=(-2, -1))


@register_metric("psnr")
class RgbPsnr(Metric):
    unit = "dB"
    description = "PSNR on 8-bit RGB 4:4:4: mean of the R, G and B PSNRs, each capped at 100 dB"

    def score_batch(self, batch: FrameBatch) -> np.ndarray:
        return psnr_from_mse(plane_mse(batch.reference, batch.distorted)).mean(axis=1)


class YuvPsnr(Metric):
    """PSNR on YUV 4:2:0 converted from RGB as the harness converts (``ctc.frames.rgb_to_yuv420``)."""

    unit = "dB"

    def plane_mses(self, batch: FrameBatch) -> np.ndarray:
        """``(3, B)`` MSEs of Y, U and V."""
        height, width = batch.reference.shape[2:]
        if height % 2 or width % 2:
            raise MetricError(f"{self.name} needs even frame sizes for YUV 4:2:0, got {width}x{height}")
        ref, dist = batch.yuv
        return np.stack([plane_mse(getattr(ref, p), getattr(dist, p)) for p in "yuv"])


class PlanePsnr(YuvPsnr):
    plane: str

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.description = (
            f"PSNR of the {cls.plane.upper()} plane of YUV 4:2:0 "
            "(BT.601 as OpenCV's RGB2YUV_I420 converts), capped at 100 dB"
        )

    def score_batch(self, batch: FrameBatch) -> np.ndarray:
        return psnr_from_mse(self.plane_mses(batch)["yuv".index(self.plane)])


@register_metric("psnr_y")
class YPsnr(PlanePsnr):
    plane = "y"


@register_metric("psnr_u")
class UPsnr(PlanePsnr):
    plane = "u"


@register_metric("psnr_v")
class VPsnr(PlanePsnr):
    plane = "v"


@register_metric("psnr_yuv")
class CombinedYuvPsnr(YuvPsnr):
    description = (
        "PSNR of YUV 4:2:0 as JVET reports it: 10·log10(255² / ((6·MSE_Y + MSE_U + MSE_V) / 8)), "
        "capped at 100 dB"
    )

    def score_batch(self, batch: FrameBatch) -> np.ndarray:
        weights = np.asarray(YUV_MSE_WEIGHTS)[:, None]
        return psnr_from_mse((weights * self.plane_mses(batch)).sum(axis=0) / weights.sum())
