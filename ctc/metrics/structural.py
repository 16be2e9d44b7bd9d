"""SSIM and MS-SSIM through ``pytorch-msssim``, batched on the job's device.

``pytorch-msssim`` computes exactly the standard definitions (Wang et al. 2004 / 2003): an 11×11 Gaussian
window with σ = 1.5 over the valid region, K1 = 0.01, K2 = 0.03, per channel then the mean of channels;
MS-SSIM over five scales (2×2 average-pool downsampling) with the weights 0.0448, 0.2856, 0.3001,
0.2363, 0.1333. ``tests/test_metrics_structural.py`` checks it against scikit-image and against the
definition written out in numpy.
"""

from __future__ import annotations

import numpy as np
import pytorch_msssim
import torch

from ctc.metrics import FrameBatch, Metric, MetricError, register_metric

WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5
K1_K2 = (0.01, 0.03)
MSSSIM_SCALES = 5


class StructuralMetric(Metric):
    def tensors(self, batch: FrameBatch) -> tuple[torch.Tensor, torch.Tensor]:
        # float64 on the CPU: the local variances subtract nearly equal moments; float32 on a GPU is
        # within 1e-5 of it and far faster there.
        reference, distorted = batch.tensors(self.device)
        if reference.device.type == "cpu":
            return reference.double(), distorted.double()
        return reference, distorted


@register_metric("ssim")
class Ssim(StructuralMetric):
    description = "SSIM (11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03) per RGB channel, mean of channels"

    def score_batch(self, batch: FrameBatch) -> np.ndarray:
        height, width = batch.reference.shape[2:]
        if min(height, width) < WINDOW_SIZE:
            raise MetricError(f"ssim needs frames of at least {WINDOW_SIZE}x{WINDOW_SIZE}, got {width}x{height}")
        with torch.inference_mode():
            values = pytorch_msssim.ssim(*self.tensors(batch), data_range=1.0, size_average=False,
                                         win_size=WINDOW_SIZE, win_sigma=WINDOW_SIGMA, K=K1_K2)
        return values.double().cpu().numpy()


@register_metric("msssim")
class MsSsim(StructuralMetric):
    description = ("MS-SSIM (5 scales, weights 0.0448 0.2856 0.3001 0.2363 0.1333, 11x11 Gaussian window, "
                   "sigma 1.5) per RGB channel, mean of channels")

    def score_batch(self, batch: FrameBatch) -> np.ndarray:
        height, width = batch.reference.shape[2:]
        smallest = (WINDOW_SIZE - 1) * 2 ** (MSSSIM_SCALES - 1) + 1
        if min(height, width) < smallest:
            raise MetricError(f"msssim needs frames of at least {smallest}x{smallest} for its "
                              f"{MSSSIM_SCALES} scales, got {width}x{height}")
        with torch.inference_mode():
            values = pytorch_msssim.ms_ssim(*self.tensors(batch), data_range=1.0, size_average=False,
                                            win_size=WINDOW_SIZE, win_sigma=WINDOW_SIGMA, K=K1_K2)
        return values.double().cpu().numpy()
