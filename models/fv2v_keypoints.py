"""FV2V's canonical keypoints (``KPDetector``, the upstream "beta" revision's layout) and their
transform by a head pose into a frame's keypoints (:mod:`models.fv2v`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.blocks import (
    AntiAliasInterpolation2d,
    DownBlock2d,
    make_coordinate_grid,
)
from models.blocks3d import UpBlock3d, Variant

Keypoints = dict[str, torch.Tensor]


def no_jacobian(estimate_jacobian: bool) -> None:
    if estimate_jacobian:
        raise ValueError(
            "FV2V with estimate_jacobian: true is not supported; the GFVC FV2V "
            "checkpoint and config have no keypoint Jacobians (estimate_jacobian: false)"
        )


class KPHourglass(nn.Module):
    """2-D encoder, 1x1 conv to ``reshape_features`` channels, reshape to depth, 3-D decoder (no skips)."""

    def __init__(
        self,
        block_expansion: int,
        in_features: int,
        reshape_features: int,
        reshape_depth: int,
        num_blocks: int,
        max_features: int,
        variant: Variant = "beta",
    ):
        super().__init__()

        def width(level: int) -> int:
            return min(max_features, block_expansion * 2**level)

        self.down_blocks = nn.Sequential()
        for i in range(num_blocks):
            self.down_blocks.add_module(
                f"down{i}", DownBlock2d(in_features if i == 0 else width(i), width(i + 1))
            )
        self.conv = nn.Conv2d(width(num_blocks), reshape_features, kernel_size=1)
        self.up_blocks = nn.Sequential()
        for i in range(num_blocks):
            self.up_blocks.add_module(
                f"up{i}", UpBlock3d(width(num_blocks - i), width(num_blocks - i - 1), variant)
            )
        self.reshape_depth = reshape_depth
        self.out_filters = width(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(self.down_blocks(x))
        b, c, h, w = out.shape
        return self.up_blocks(out.view(b, c // self.reshape_depth, self.reshape_depth, h, w))


class KPDetector(nn.Module):
    """Canonical keypoints: the expected (x, y, z) of a softmax heatmap over a 3-D volume."""

    def __init__(
        self,
        block_expansion: int,
        feature_channel: int,
        num_kp: int,
        image_channel: int,
        max_features: int,
        reshape_channel: int,
        reshape_depth: int,
        num_blocks: int,
        temperature: float,
        estimate_jacobian: bool = False,
        scale_factor: float = 1,
        variant: Variant = "beta",
    ):
        super().__init__()
        no_jacobian(estimate_jacobian)
        self.predictor = KPHourglass(
            block_expansion, image_channel, reshape_channel, reshape_depth, num_blocks, max_features, variant
        )
        self.kp = nn.Conv3d(self.predictor.out_filters, num_kp, kernel_size=3, padding=1)
        self.temperature = temperature
        self.scale_factor = scale_factor
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(image_channel, scale_factor)

    def forward(self, x: torch.Tensor) -> Keypoints:
        if self.scale_factor != 1:
            x = self.down(x)
        prediction = self.kp(self.predictor(x))
        b, k, *volume = prediction.shape
        heatmap = F.softmax(prediction.view(b, k, -1) / self.temperature, dim=2).view(b, k, *volume)
        grid = make_coordinate_grid(volume, heatmap.dtype, heatmap.device)
        return {"value": (heatmap.unsqueeze(-1) * grid).sum(dim=(2, 3, 4))}


def transform_keypoints(
    kp_canonical: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor, expression: torch.Tensor
) -> Keypoints:
    """``R kp + t + exp`` for canonical keypoints ``(B, K, 3)``; ``t`` ``(B, 3)``, ``exp`` ``(B, 3K)``."""
    rotated = torch.einsum("bmp,bkp->bkm", rotation, kp_canonical)
    return {"value": rotated + translation.unsqueeze(1) + expression.view(expression.shape[0], -1, 3)}
