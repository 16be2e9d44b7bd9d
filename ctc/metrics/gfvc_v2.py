"""The GFVC common software's own metric definitions (GFVC_Software_v2), by name, so that its tables
can be reproduced next to ours.

- ``psnr_gfvc``: ``evaluate/metrics.py`` with ``eval_utils/metrics.py``'s ``PSNR``: RGB scaled to [0, 1]
  and rounded to 8 bits, BT.709 luma ``0.2126 R + 0.7152 G + 0.0722 B`` in float32, clamped and rounded
  to 8 bits again; the PSNR of that luma alone, peak 255 (100 dB for identical frames).
- ``psnr_yuv420_gfvc`` and ``ssim_yuv420_gfvc``: ``evaluate/multiMetric_yuv420.py`` on the YUV 4:2:0
  files its ``rgb444_to_yuv420.py`` writes (OpenCV's ``RGB2YUV_I420``, as the harness converts). PSNR:
  the planes shifted from 8 to 10 bits, peak 1020, weighted MSE ``(4·Y + U + V) / 6`` per frame, and a
  sequence's value is the PSNR of the mean weighted MSE (not the mean of the frames' PSNRs). SSIM: the
  I420 frame back to RGB (``YUV2RGB_I420``), then to YUV 4:4:4 (``RGB2YUV``), SSIM of each plane (11×11
  Gaussian window, σ 1.5, valid region, L = 255, float64), ``(4·Y + U + V) / 6``.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytorch_msssim
import torch

from ctc.frames import yuv420_to_rgb
from ctc.metrics import FrameBatch, Metric, MetricError, register_metric
from ctc.metrics.psnr import plane_mse, psnr_from_mse

BT709_LUMA = (0.2126, 0.7152, 0.0722)
TEN_BIT_PEAK = 1020.0  # 8-bit samples shifted left by 2, as multiMetric_yuv420.py reads them
YUV_WEIGHTS = (4.0, 1.0, 1.0)  # Y, U, V; divided by their sum, 6
# The 11-tap Gaussian (sigma 1.5) in float64: pytorch-msssim's own is float32, 1e-6 off the script's SSIM
_TAPS = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
GAUSSIAN_WINDOW = torch.from_numpy(_TAPS / _TAPS.sum()).reshape(1, 1, 1, 11)


def bt709_luma_8bit(frames: np.ndarray) -> np.ndarray:
    """``(B, H, W)`` 8-bit BT.709 luma of uint8 RGB ``(B, 3, H, W)``, rounded as GFVC_Software_v2's
    ``load_image_array`` rounds it (float32 arithmetic, half to even)."""
    scaled = frames.astype(np.float32) / np.float32(255)
    red, green, blue = (np.round(scaled[:, c] * np.float32(255)) / np.float32(255) for c in range(3))
    a, b, c = (np.float32(weight) for weight in BT709_LUMA)
    luma = np.clip(a * red + b * green + c * blue, np.float32(0), np.float32(1))
    return np.round(luma * np.float32(255))


@register_metric("psnr_gfvc")
class GfvcPsnr(Metric):
    unit = "dB"
    description = (
        "GFVC_Software_v2's psnr: PSNR of the 8-bit BT.709 luma of the RGB frames "
        "(evaluate/eval_utils/metrics.py), peak 255, 100 dB for identical frames"
    )

    def score_batch(self, batch: FrameBatch) -> np.ndarray:
        return psnr_from_mse(plane_mse(bt709_luma_8bit(batch.reference), bt709_luma_8bit(batch.distorted)))


def _weighted(values: np.ndarray) -> np.ndarray:
    """``(4·Y + U + V) / 6`` of ``(3, B)`` per-plane values."""
    weights = np.asarray(YUV_WEIGHTS)[:, None]
    return (weights * values).sum(axis=0) / weights.sum()


def _checked_even(metric: Metric, batch: FrameBatch) -> None:
    height, width = batch.reference.shape[2:]
    if height % 2 or width % 2:
        raise MetricError(f"{metric.name} needs even frame sizes for YUV 4:2:0, got {width}x{height}")


@register_metric("psnr_yuv420_gfvc")
class GfvcYuv420Psnr(Metric):
    unit = "dB"
    description = (
        "GFVC_Software_v2's YUV 4:2:0 PSNR (evaluate/multiMetric_yuv420.py): 8-bit planes shifted "
        "to 10 bits, peak 1020, MSE weighted (4·Y + U + V) / 6; a sequence's value is the PSNR "
        "of the mean weighted MSE"
    )

    def score_batch(self, batch: FrameBatch) -> np.ndarray:
        _checked_even(self, batch)
        ref, dist = batch.yuv
        ten_bit = [[getattr(yuv, p).astype(np.uint16) << 2 for p in "yuv"] for yuv in (ref, dist)]
        mses = np.stack([plane_mse(a, b) for a, b in zip(*ten_bit, strict=True)])
        return psnr_from_mse(_weighted(mses), TEN_BIT_PEAK)

    @classmethod
    def sequence_value(cls, per_frame: np.ndarray) -> float:
        mse = TEN_BIT_PEAK**2 / 10.0 ** (np.asarray(per_frame, np.float64) / 10.0)
        return float(psnr_from_mse(mse.mean(), TEN_BIT_PEAK))


def yuv444_after_420(batch_yuv: object) -> np.ndarray:
    """``(B, 3, H, W)`` YUV 4:4:4 (OpenCV ``RGB2YUV``) of I420 frames decoded to RGB (``YUV2RGB_I420``)."""
    rgb = yuv420_to_rgb(batch_yuv)
    return np.stack(
        [
            cv2.cvtColor(np.ascontiguousarray(frame.transpose(1, 2, 0)), cv2.COLOR_RGB2YUV).transpose(2, 0, 1)
            for frame in rgb
        ]
    )


@register_metric("ssim_yuv420_gfvc")
class GfvcYuv420Ssim(Metric):
    description = (
        "GFVC_Software_v2's YUV 4:2:0 SSIM (evaluate/multiMetric_yuv420.py): I420 to RGB to YUV "
        "4:4:4 (OpenCV), SSIM per plane (11x11 Gaussian, sigma 1.5, valid, L 255, float64), "
        "weighted (4·Y + U + V) / 6"
    )

    def score_batch(self, batch: FrameBatch) -> np.ndarray:
        _checked_even(self, batch)
        planes = [torch.from_numpy(yuv444_after_420(yuv).astype(np.float64)) for yuv in batch.yuv]
        count, _, height, width = planes[0].shape
        flat = [plane.reshape(count * 3, 1, height, width) for plane in planes]
        with torch.inference_mode():
            values = pytorch_msssim.ssim(
                *flat, data_range=255.0, size_average=False, win=GAUSSIAN_WINDOW, K=(0.01, 0.03)
            )
        return _weighted(values.reshape(count, 3).T.numpy())
