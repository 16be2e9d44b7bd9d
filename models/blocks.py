"""2-D building blocks shared by the GFVC models (FOMM, CFTE, and FV2V's 2-D parts).

Module and attribute names follow first-order-model's ``modules/util.py`` so that state-dict keys
match the public checkpoints (``conv``/``norm`` inside each block, ``down_blocks``/``up_blocks`` in the
hourglass). The code is our own; only the layer names and the arithmetic are the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def make_coordinate_grid(
    spatial_size: Sequence[int], dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """Grid of normalised coordinates in [-1, 1], shape ``(*spatial_size, n)``.

    The last axis holds the coordinates in reversed axis order, ``(x, y)`` for ``(h, w)`` and
    ``(x, y, z)`` for ``(d, h, w)``, the convention of ``F.grid_sample``. Each coordinate is
    ``2 * (i / (n - 1)) - 1``, computed in ``dtype`` exactly as upstream does.
    """
    axes = [2 * (torch.arange(n, dtype=dtype, device=device) / (n - 1)) - 1 for n in spatial_size]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack(mesh[::-1], dim=-1)


def kp2gaussian(kp_value: torch.Tensor, spatial_size: Sequence[int], kp_variance: float) -> torch.Tensor:
    """Gaussian blobs centred on keypoints ``(..., n)``: returns ``(..., *spatial_size)``."""
    grid = make_coordinate_grid(spatial_size, kp_value.dtype, kp_value.device)
    lead = kp_value.shape[:-1]
    mean = kp_value.reshape(*lead, *([1] * len(spatial_size)), kp_value.shape[-1])
    diff = grid - mean
    return torch.exp(-0.5 * (diff**2).sum(-1) / kp_variance)


class ResBlock2d(nn.Module):
    """Pre-activation residual block: BN, ReLU, conv, BN, ReLU, conv, plus the input."""

    def __init__(self, in_features: int, kernel_size: int | tuple[int, int] = 3, padding: int | tuple = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_features, in_features, kernel_size, padding=padding)
        self.conv2 = nn.Conv2d(in_features, in_features, kernel_size, padding=padding)
        self.norm1 = nn.BatchNorm2d(in_features, affine=True)
        self.norm2 = nn.BatchNorm2d(in_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


class _ConvNormBlock(nn.Module):
    """A conv followed by batch norm (keys ``conv.*``, ``norm.*``); subclasses say what wraps them."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | tuple = 3,
        padding: int | tuple = 1,
        groups: int = 1,
    ):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding, groups=groups)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def conv_norm_relu(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class UpBlock2d(_ConvNormBlock):
    """x2 upsampling, conv, BN, ReLU. Nearest (first-order-model), or bilinear with
    ``align_corners=True`` (``bilinear=True``, the DAC family)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | tuple = 3,
        padding: int | tuple = 1,
        groups: int = 1,
        bilinear: bool = False,
    ):
        super().__init__(in_features, out_features, kernel_size, padding, groups)
        self.bilinear = bilinear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bilinear:
            return self.conv_norm_relu(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True))
        return self.conv_norm_relu(F.interpolate(x, scale_factor=2))


class DownBlock2d(_ConvNormBlock):
    """Conv, BN, ReLU, 2x2 average pooling."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv_norm_relu(x), 2)


class SameBlock2d(_ConvNormBlock):
    """Conv, BN, ReLU at the same resolution."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        groups: int = 1,
        kernel_size: int | tuple = 3,
        padding: int | tuple = 1,
    ):
        super().__init__(in_features, out_features, kernel_size, padding, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_norm_relu(x)


def _width(block_expansion: int, max_features: int, level: int) -> int:
    return min(max_features, block_expansion * 2**level)


class Encoder(nn.Module):
    """Hourglass encoder: ``num_blocks`` DownBlock2d; returns the input and every block's output."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256):
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock2d(
                in_features if i == 0 else _width(block_expansion, max_features, i),
                _width(block_expansion, max_features, i + 1),
            )
            for i in range(num_blocks)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class Decoder(nn.Module):
    """Hourglass decoder: UpBlock2d from the deepest level, concatenating each skip connection."""

    def __init__(
        self,
        block_expansion: int,
        in_features: int,
        num_blocks: int = 3,
        max_features: int = 256,
        bilinear: bool = False,
    ):
        super().__init__()
        self.up_blocks = nn.ModuleList(
            UpBlock2d(
                (1 if i == num_blocks - 1 else 2) * _width(block_expansion, max_features, i + 1),
                _width(block_expansion, max_features, i),
                bilinear=bilinear,
            )
            for i in reversed(range(num_blocks))
        )
        self.out_filters = block_expansion + in_features

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        out = features[-1]
        for block, skip in zip(self.up_blocks, reversed(features[:-1]), strict=True):
            out = torch.cat([block(out), skip], dim=1)
        return out


class Hourglass(nn.Module):
    """U-Net style hourglass; output has ``out_filters = block_expansion + in_features`` channels.
    ``bilinear``: the decoder upsamples bilinearly (the DAC family), else nearest."""

    def __init__(
        self,
        block_expansion: int,
        in_features: int,
        num_blocks: int = 3,
        max_features: int = 256,
        bilinear: bool = False,
    ):
        super().__init__()
        self.encoder = Encoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = Decoder(block_expansion, in_features, num_blocks, max_features, bilinear)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class AntiAliasInterpolation2d(nn.Module):
    """Gaussian blur then nearest downsampling by ``scale`` (identity at scale 1); ``bilinear``:
    bilinear downsampling with ``align_corners=True`` instead (HDAC's copy).

    The blur kernel is the buffer ``weight`` ``(channels, 1, k, k)``, part of the checkpoints.
    """

    def __init__(self, channels: int, scale: float, bilinear: bool = False):
        super().__init__()
        sigma = (1 / scale - 1) / 2
        size = 2 * round(sigma * 4) + 1
        self.ka = size // 2
        self.kb = self.ka - 1 if size % 2 == 0 else self.ka
        taps = torch.arange(size, dtype=torch.float32)
        gauss = torch.exp(-((taps - (size - 1) / 2) ** 2) / (2 * sigma**2))
        kernel = gauss[:, None] * gauss[None, :]
        kernel = kernel / kernel.sum()
        self.register_buffer("weight", kernel.expand(channels, 1, size, size).clone())
        self.groups = channels
        self.scale = scale
        self.bilinear = bilinear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 1.0:
            return x
        out = F.conv2d(F.pad(x, (self.ka, self.kb, self.ka, self.kb)), self.weight, groups=self.groups)
        if self.bilinear:
            return F.interpolate(out, scale_factor=self.scale, mode="bilinear", align_corners=True)
        return F.interpolate(out, scale_factor=(self.scale, self.scale))


class GDN(nn.Module):
    """Generalised divisive normalisation (Ballé et al.), with the reparametrised ``beta``/``gamma``.

    ``y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)``, where the stored parameters are square roots
    offset by a small pedestal and bounded below, as in the GDN layer CFTE was trained with.
    """

    def __init__(
        self,
        channels: int,
        inverse: bool = False,
        beta_min: float = 1e-6,
        gamma_init: float = 0.1,
        reparam_offset: float = 2**-18,
    ):
        super().__init__()
        self.inverse = inverse
        self.pedestal = reparam_offset**2
        self.beta_bound = math.sqrt(beta_min + self.pedestal)
        self.gamma_bound = reparam_offset
        self.beta = nn.Parameter(torch.sqrt(torch.ones(channels) + self.pedestal))
        self.gamma = nn.Parameter(torch.sqrt(gamma_init * torch.eye(channels) + self.pedestal))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        beta = self.beta.clamp_min(self.beta_bound) ** 2 - self.pedestal
        gamma = self.gamma.clamp_min(self.gamma_bound) ** 2 - self.pedestal
        norm = torch.sqrt(F.conv2d(x**2, gamma.view(channels, channels, 1, 1), beta))
        return x * norm if self.inverse else x / norm


def resize_grid(grid: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """A ``(B, h, w, 2)`` sampling grid or flow resized bilinearly (align_corners False) to ``size``;
    values are kept as they are (upstream's generators warp full-size images with them so)."""
    if tuple(grid.shape[1:3]) == tuple(size):
        return grid
    resized = F.interpolate(grid.permute(0, 3, 1, 2), size=tuple(size), mode="bilinear", align_corners=False)
    return resized.permute(0, 2, 3, 1)


def apply_occlusion(features: torch.Tensor, occlusion: torch.Tensor | None) -> torch.Tensor:
    """Multiply warped features by the occlusion map (resized bilinearly to them); None: unchanged."""
    if occlusion is None:
        return features
    if occlusion.shape[2:] != features.shape[2:]:
        occlusion = F.interpolate(occlusion, size=features.shape[2:], mode="bilinear", align_corners=False)
    return features * occlusion


class AutoencoderLayers(nn.Module):
    """Base of the generators' image path: ``first`` (7x7 SameBlock2d), DownBlock2d's, a ResBlock2d
    bottleneck (``r0``, ``r1``...), UpBlock2d's and a 7x7 ``final`` conv, as upstream names them.

    Subclasses call ``add_autoencoder_layers`` where upstream registers them (state-dict order) and
    may rename the down/up lists through ``down_name``/``up_name``.
    """

    down_name = "down_blocks"
    up_name = "up_blocks"

    def add_autoencoder_layers(
        self,
        num_channels: int,
        block_expansion: int,
        max_features: int,
        num_down_blocks: int,
        num_bottleneck_blocks: int,
        bilinear: bool = False,
    ) -> None:
        """``bilinear``: the up blocks upsample bilinearly (the DAC family), else nearest."""
        width = [_width(block_expansion, max_features, i) for i in range(num_down_blocks + 1)]
        self.first = SameBlock2d(num_channels, block_expansion, kernel_size=7, padding=3)
        downs = nn.ModuleList(DownBlock2d(width[i], width[i + 1]) for i in range(num_down_blocks))
        setattr(self, self.down_name, downs)
        ups = nn.ModuleList(
            UpBlock2d(width[i + 1], width[i], bilinear=bilinear) for i in reversed(range(num_down_blocks))
        )
        setattr(self, self.up_name, ups)
        self.bottleneck = nn.Sequential()
        for i in range(num_bottleneck_blocks):
            self.bottleneck.add_module(f"r{i}", ResBlock2d(width[-1], kernel_size=3, padding=1))
        self.final = nn.Conv2d(block_expansion, num_channels, kernel_size=7, padding=3)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``first`` then the down blocks."""
        out = self.first(x)
        for block in getattr(self, self.down_name):
            out = block(out)
        return out

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Bottleneck, up blocks, ``final`` (no output activation)."""
        out = self.bottleneck(x)
        for block in getattr(self, self.up_name):
            out = block(out)
        return self.final(out)
