"""3-D building blocks of face-vid2vid (FV2V): volumetric features of shape ``(B, C, D, H, W)``.

Names follow the public face-vid2vid re-implementation (zhanglonghao1992), which the GFVC common
software ships, so that state-dict keys match its checkpoints. Down- and up-sampling act on H and W
only; the depth D is kept. Two revisions of that code compute these blocks differently with the same
weights (see ``../shared/golden/README.md`` 5.3): ``beta`` (the GFVC default) samples up trilinearly
and down with a stride-(1, 2, 2) convolution; ``head`` samples up by nearest neighbour and down by a
stride-1 convolution followed by (1, 2, 2) average pooling.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Variant = Literal["beta", "head"]
VARIANTS: tuple[str, ...] = ("beta", "head")


def check_variant(variant: str) -> Variant:
    """``variant`` itself, or a ValueError naming the accepted values."""
    if variant not in VARIANTS:
        raise ValueError(f"FV2V variant {variant!r} is unknown; expected one of {', '.join(VARIANTS)}")
    return variant  # type: ignore[return-value]


class ResBlock3d(nn.Module):
    """Pre-activation residual block: BN, ReLU, conv, BN, ReLU, conv, plus the input."""

    def __init__(self, in_features: int, kernel_size: int = 3, padding: int = 1):
        super().__init__()
        self.conv1 = nn.Conv3d(in_features, in_features, kernel_size, padding=padding)
        self.conv2 = nn.Conv3d(in_features, in_features, kernel_size, padding=padding)
        self.norm1 = nn.BatchNorm3d(in_features, affine=True)
        self.norm2 = nn.BatchNorm3d(in_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


class UpBlock3d(nn.Module):
    """x2 upsampling of H and W (trilinear for ``beta``, nearest for ``head``), conv, BN, ReLU."""

    def __init__(self, in_features: int, out_features: int, variant: Variant = "beta"):
        super().__init__()
        self.conv = nn.Conv3d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(out_features, affine=True)
        self.mode = "trilinear" if check_variant(variant) == "beta" else "nearest"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.interpolate(x, scale_factor=(1, 2, 2), mode=self.mode)
        return F.relu(self.norm(self.conv(out)))


class DownBlock3d(nn.Module):
    """Halves H and W: stride-(1, 2, 2) conv, BN, ReLU (``beta``); or conv, BN, ReLU, pooling (``head``)."""

    def __init__(self, in_features: int, out_features: int, variant: Variant = "beta"):
        super().__init__()
        self.pool_after = check_variant(variant) == "head"
        stride = 1 if self.pool_after else (1, 2, 2)
        self.conv = nn.Conv3d(in_features, out_features, kernel_size=3, padding=1, stride=stride)
        self.norm = nn.BatchNorm3d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm(self.conv(x)))
        return F.avg_pool3d(out, (1, 2, 2)) if self.pool_after else out


def _width(block_expansion: int, max_features: int, level: int) -> int:
    return min(max_features, block_expansion * 2**level)


class Encoder3d(nn.Module):
    """Hourglass encoder: ``num_blocks`` DownBlock3d; returns the input and every block's output."""

    def __init__(
        self,
        block_expansion: int,
        in_features: int,
        num_blocks: int,
        max_features: int,
        variant: Variant = "beta",
    ):
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock3d(
                in_features if i == 0 else _width(block_expansion, max_features, i),
                _width(block_expansion, max_features, i + 1),
                variant,
            )
            for i in range(num_blocks)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class Decoder3d(nn.Module):
    """Hourglass decoder: UpBlock3d with skip concatenation, then a final conv, BN, ReLU."""

    def __init__(
        self,
        block_expansion: int,
        in_features: int,
        num_blocks: int,
        max_features: int,
        variant: Variant = "beta",
    ):
        super().__init__()
        self.up_blocks = nn.ModuleList(
            UpBlock3d(
                (1 if i == num_blocks - 1 else 2) * _width(block_expansion, max_features, i + 1),
                _width(block_expansion, max_features, i),
                variant,
            )
            for i in reversed(range(num_blocks))
        )
        self.out_filters = block_expansion + in_features
        self.conv = nn.Conv3d(self.out_filters, self.out_filters, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(self.out_filters, affine=True)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        out = features[-1]
        for block, skip in zip(self.up_blocks, reversed(features[:-1]), strict=True):
            out = torch.cat([block(out), skip], dim=1)
        return F.relu(self.norm(self.conv(out)))


class Hourglass3d(nn.Module):
    """3-D U-Net hourglass; output has ``out_filters = block_expansion + in_features`` channels."""

    def __init__(
        self,
        block_expansion: int,
        in_features: int,
        num_blocks: int,
        max_features: int,
        variant: Variant = "beta",
    ):
        super().__init__()
        self.encoder = Encoder3d(block_expansion, in_features, num_blocks, max_features, variant)
        self.decoder = Decoder3d(block_expansion, in_features, num_blocks, max_features, variant)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
