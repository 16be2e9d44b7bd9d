"""RDAC's learned residual coder: a scale hyperprior with means and per-level gains, on CompressAI.

The analysis/synthesis transforms and gains are RDAC's (``sdc`` and ``tdc`` in its generator, the
spatial and temporal coders); the entropy models (``EntropyBottleneck`` for the hyper-latent z,
``GaussianConditional`` for the latent y) and the rANS coder are CompressAI's, so the strings are
byte-identical to upstream's with the same CompressAI version (the golden's: 1.2.4).

Rate control: the latent is multiplied by a gain interpolated between levels ``rate_idx`` and
``rate_idx + 1`` (``q_value`` in [0, 1]; ``rate_idx`` at most ``levels - 2``), its inverse after
decoding; the hyper-latent's inverse gain is applied at decoding only (upstream's forward gain on z
is commented out). The CDF buffers are empty in the checkpoints and rebuilt with
:meth:`update_tables` after loading, as upstream's loader does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models import CompressionModel
from torch import nn


class ConvBlock(nn.Module):
    """Strided convolution (key ``conv``), ReLU unless ``act`` is False."""

    def __init__(
        self, in_features: int, out_features: int, kernel_size: int = 5, stride: int = 2, act: bool = True
    ):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, stride=stride, padding=kernel_size // 2)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return torch.relu(x) if self.act else x


class DeconvBlock(nn.Module):
    """Strided transposed convolution (key ``deconv``), ReLU unless ``act`` is False."""

    def __init__(
        self, in_features: int, out_features: int, kernel_size: int = 5, stride: int = 2, act: bool = True
    ):
        super().__init__()
        self.deconv = nn.ConvTranspose2d(
            in_features,
            out_features,
            kernel_size,
            stride=stride,
            output_padding=stride - 1,
            padding=kernel_size // 2,
        )
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.deconv(x)
        return torch.relu(x) if self.act else x


@dataclass
class Coded:
    """One residual as coded: the rANS strings and what the decoder rebuilds from them."""

    y_string: bytes
    z_string: bytes
    x_hat: torch.Tensor  # the decoded residual
    y_hat: torch.Tensor  # the decoded latent after the inverse gain (the next skip test's reference)
    steps: dict[str, torch.Tensor]  # the encoder's intermediates (y, z, symbols, indexes...)


class ResidualCoder(CompressionModel):
    """Upstream's ``ResidualCoder(3, 3, N, M)`` with variable bitrate (``levels`` gain vectors)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        N: int,
        M: int,  # noqa: N803 (upstream's names)
        levels: int,
        num_intermediate_layers: int,
    ):
        super().__init__()
        self.g_a = nn.Sequential()
        self.g_a.add_module("inp", ConvBlock(in_features, N))
        for index in range(num_intermediate_layers):
            self.g_a.add_module(f"conv_{index}", ConvBlock(N, N))
        self.g_a.add_module("out", ConvBlock(N, M, act=False))
        self.g_s = nn.Sequential()
        self.g_s.add_module("inp", DeconvBlock(M, N))
        for index in range(num_intermediate_layers):
            self.g_s.add_module(f"deconv_{index}", DeconvBlock(N, N))
        self.g_s.add_module("out", DeconvBlock(N, out_features, act=False))
        self.h_a = nn.Sequential(
            ConvBlock(M, N, kernel_size=3, stride=1, act=False),
            nn.LeakyReLU(),
            ConvBlock(N, N, act=False),
            nn.LeakyReLU(),
            ConvBlock(N, N, act=False),
        )
        self.h_s = nn.Sequential(
            DeconvBlock(N, M, act=False),
            nn.LeakyReLU(),
            DeconvBlock(M, M * 3 // 2, act=False),
            nn.LeakyReLU(),
            DeconvBlock(M * 3 // 2, M * 2, kernel_size=3, stride=1, act=False),
        )
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(None)
        self.levels = levels
        self.gain = nn.Parameter(torch.ones(levels, M))
        self.inverse_gain = nn.Parameter(torch.ones(levels, M))
        self.hyper_gain = nn.Parameter(torch.ones(levels, N))
        self.inverse_hyper_gain = nn.Parameter(torch.ones(levels, N))

    def update_tables(self) -> None:
        """Build the CDF tables from the learned parameters (in the module's current precision)."""
        self.update(force=True)

    def check_rate(self, rate_idx: int, q_value: float) -> None:
        if not 0 <= rate_idx <= self.levels - 2 or not 0 <= q_value <= 1:
            raise ValueError(
                f"residual rate_idx {rate_idx} and q_value {q_value}: expected 0 <= rate_idx <= "
                f"{self.levels - 2} (levels - 2) and 0 <= q_value <= 1"
            )

    @staticmethod
    def _gain(table: torch.Tensor, rate_idx: int, q_value: float) -> torch.Tensor:
        gain = table[rate_idx].abs() * (1 - q_value) + table[rate_idx + 1].abs() * q_value
        return gain.view(1, -1, 1, 1)

    def analysis(self, residual: torch.Tensor) -> torch.Tensor:
        """The latent y before the gain (what the skip test compares)."""
        return self.g_a(residual)

    def compress(self, y: torch.Tensor, rate_idx: int, q_value: float) -> Coded:
        """Code the latent ``y`` (batch 1) to rANS strings, and decode them as the decoder will."""
        y_gained = y * self._gain(self.gain, rate_idx, q_value)
        z = self.h_a(y_gained)
        z_string = self.entropy_bottleneck.compress(z)[0]
        hyper = self._hyper_decode(z_string, z.shape[-2:], rate_idx, q_value)
        z_hat_decoded, z_hat, scales, means, indexes = hyper
        y_string = self.gaussian_conditional.compress(y_gained, indexes, means=means)[0]
        x_hat, y_hat, y_hat_decoded = self._decode_latent(y_string, indexes, means, rate_idx, q_value)
        medians = self.entropy_bottleneck._get_medians().detach().view(1, -1, 1, 1)
        steps = {
            "y": y,
            "y_gained": y_gained,
            "z": z,
            "z_symbols": torch.round(z - medians).int(),
            "z_hat_decoded": z_hat_decoded,
            "z_hat": z_hat,
            "scales_hat": scales,
            "means_hat": means,
            "indexes": indexes,
            "y_symbols": torch.round(y_gained - means).int(),
            "y_hat_decoded": y_hat_decoded,
            "y_hat": y_hat,
        }
        return Coded(y_string, z_string, x_hat, y_hat, steps)

    def decompress(
        self, y_string: bytes, z_string: bytes, latent_size: tuple[int, int], rate_idx: int, q_value: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The residual ``x_hat`` and the latent ``y_hat`` from the strings; z is ``latent_size`` / 4."""
        z_size = (latent_size[0] // 4, latent_size[1] // 4)
        *_, means, indexes = self._hyper_decode(z_string, z_size, rate_idx, q_value)
        x_hat, y_hat, _ = self._decode_latent(y_string, indexes, means, rate_idx, q_value)
        return x_hat, y_hat

    def _hyper_decode(self, z_string: bytes, size: tuple[int, int], rate_idx: int, q_value: float):
        z_hat_decoded = self.entropy_bottleneck.decompress([z_string], size)
        z_hat = z_hat_decoded * self._gain(self.inverse_hyper_gain, rate_idx, q_value)
        scales, means = self.h_s(z_hat).chunk(2, 1)
        return z_hat_decoded, z_hat, scales, means, self.gaussian_conditional.build_indexes(scales)

    def _decode_latent(
        self, y_string: bytes, indexes: torch.Tensor, means: torch.Tensor, rate_idx: int, q_value: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y_hat_decoded = self.gaussian_conditional.decompress([y_string], indexes, means=means)
        y_hat = y_hat_decoded * self._gain(self.inverse_gain, rate_idx, q_value)
        return self.g_s(y_hat), y_hat, y_hat_decoded


def latent_similarity(previous: torch.Tensor, current: torch.Tensor) -> float:
    """Mean over batch and positions of the channel-wise cosine similarity (upstream's skip test)."""
    return torch.mean(nn.functional.cosine_similarity(previous, current, dim=1, eps=1e-6)).item()
