"""SSIM and MS-SSIM through ``pytorch-msssim``, batched on the job's device.

``pytorch-msssim`` computes exactly the standard definitions (Wang et al. 2004 / 2003): an 11×11 Gaussian
window with σ = 1.5 over the valid region, K1 = 0.01, K2 = 0.03, per channel then the mean of channels;
MS-SSIM over five scales (2×2 average-pool downsampling) with the weights 0.0448, 0.2856, 0.3001,
0.2363, 0.1333 (a plain 2×2 mean for even sizes, as in Wang's MATLAB code; the CTC's 256×256 stays even
down to the fifth scale). ``tests/test_metrics_structural.py`` checks it against scikit-image and against
the definition written out in numpy.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import pytorch_msssim
import scipy.signal
import torch

from ctc.metrics import FrameBatch, Metric, MetricError, register_metric

WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5
K1_K2 = (0.01, 0.03)
MSSSIM_SCALES = 5


@cache
def gaussian_window(channels: int = 3) -> torch.Tensor:
    """The separable window as ``pytorch-msssim`` takes it, ``(C, 1, 1, 11)``, in float64.

    ``pytorch-msssim`` would build it in float32; the local variances E[x²] - E[x]² subtract nearly equal
    moments, so that rounding alone moves SSIM by ~3e-6. In float64 we equal scikit-image to 1e-12.
    """
    window = scipy.signal.windows.gaussian(WINDOW_SIZE, WINDOW_SIGMA)
    return torch.from_numpy(window / window.sum()).reshape(1, 1, 1, -1).repeat(channels, 1, 1, 1)


class StructuralMetric(Metric):
    def compute(self, function: Callable[..., torch.Tensor], batch: FrameBatch) -> np.ndarray:
        """``function`` (``pytorch_msssim.ssim`` or ``ms_ssim``) per frame: float64 on the CPU, float32 on a GPU."""
        reference, distorted = batch.tensors(self.device)
        if reference.device.type == "cpu":
            reference, distorted = reference.double(), distorted.double()
        with torch.inference_mode():
            values = function(reference, distorted, data_range=1.0, size_average=False, win=gaussian_window(),
                              K=K1_K2)
        return values.double().cpu().numpy()


@register_metric("ssim")
class Ssim(StructuralMetric):
    description = "SSIM (11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03) per RGB channel, mean of channels"

    def score_batch(self, batch: FrameBatch) -> np.ndarray:
        height, width = batch.reference.shape[2:]
        if min(height, width) < WINDOW_SIZE:
            raise MetricError(f"ssim needs frames of at least {WINDOW_SIZE}x{WINDOW_SIZE}, got {width}x{height}")
        return self.compute(pytorch_msssim.ssim, batch)


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
        return self.compute(pytorch_msssim.ms_ssim, batch)
