"""SSIM and MS-SSIM through ``pytorch-msssim``, batched on the job's device in float32.

``pytorch-msssim`` computes exactly the standard definitions (Wang et al. 2004 / 2003): an 11×11 Gaussian
window with σ = 1.5 over the valid region, K1 = 0.01, K2 = 0.03, per channel then the mean of channels;
MS-SSIM over five scales with the weights 0.0448, 0.2856, 0.3001, 0.2363, 0.1333 and 2×2 mean
downsampling (as Wang's MATLAB code for even sizes; the CTC's 256×256 stays even down to the fifth
scale). In float64 it equals scikit-image's SSIM to 1e-12; in float32, which we run for speed on both
CPU and GPU, it is within 1e-5 (``tests/test_metrics.py`` checks the float32 run against scikit-image).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytorch_msssim
import torch

from ctc.metrics import FrameBatch, Metric, MetricError, register_metric

WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5
K1_K2 = (0.01, 0.03)
MSSSIM_SCALES = 5


class StructuralMetric(Metric):
    function: Callable[..., torch.Tensor]
    smallest_side: int

    def score_batch(self, batch: FrameBatch) -> np.ndarray:
        height, width = batch.reference.shape[2:]
        if min(height, width) < self.smallest_side:
            side = self.smallest_side
            raise MetricError(f"{self.name} needs frames of at least {side}x{side}, got {width}x{height}")
        with torch.inference_mode():
            values = type(self).function(
                *batch.tensors(self.device),
                data_range=1.0,
                size_average=False,
                win_size=WINDOW_SIZE,
                win_sigma=WINDOW_SIGMA,
                K=K1_K2,
            )
        return values.double().cpu().numpy()


@register_metric("ssim")
class Ssim(StructuralMetric):
    description = (
        "SSIM (11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03) per RGB channel, mean of channels"
    )
    function = pytorch_msssim.ssim
    smallest_side = WINDOW_SIZE


@register_metric("msssim")
class MsSsim(StructuralMetric):
    description = (
        "MS-SSIM (5 scales, weights 0.0448 0.2856 0.3001 0.2363 0.1333, 11x11 Gaussian window, "
        "sigma 1.5) per RGB channel, mean of channels"
    )
    function = pytorch_msssim.ms_ssim
    # pytorch-msssim needs the side to exceed (window - 1) * 2^(scales - 1)
    smallest_side = (WINDOW_SIZE - 1) * 2 ** (MSSSIM_SCALES - 1) + 1
