"""FV2V's head pose: the ``HEEstimator`` network (yaw, pitch and roll as 66-bin logits, translation,
expression) and the rotation matrix of its angles, upstream's quirks kept (:mod:`models.fv2v`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.blocks3d import Variant, check_variant

HeadPose = dict[str, torch.Tensor]


class ResBottleneck(nn.Module):
    """ResNet bottleneck (1x1, 3x3 with ``stride``, 1x1, each BN); strided ones project the skip."""

    def __init__(self, in_features: int, stride: int):
        super().__init__()
        inner = in_features // 4
        self.conv1 = nn.Conv2d(in_features, inner, kernel_size=1)
        self.conv2 = nn.Conv2d(inner, inner, kernel_size=3, padding=1, stride=stride)
        self.conv3 = nn.Conv2d(inner, in_features, kernel_size=1)
        self.norm1 = nn.BatchNorm2d(inner, affine=True)
        self.norm2 = nn.BatchNorm2d(inner, affine=True)
        self.norm3 = nn.BatchNorm2d(in_features, affine=True)
        if stride != 1:
            self.skip = nn.Conv2d(in_features, in_features, kernel_size=1, stride=stride)
            self.norm4 = nn.BatchNorm2d(in_features, affine=True)
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = F.relu(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        skip = self.norm4(self.skip(x)) if self.stride != 1 else x
        return F.relu(out + skip)


class HEEstimator(nn.Module):
    """Head pose (66-bin logits each) and expression from one image.

    Widths 256/512/1024/2048 are fixed upstream (``max_features`` is ignored). Each stage is a 1x1
    conv + BN + ReLU (``conv{n}``/``norm{n}``), a strided bottleneck (``block{2n-4}``, not in the
    first stage) and plain bottlenecks (``block{2n-3}``, named ``b{2n-3}_{i}``).
    """

    STAGES = ((256, 3), (512, 3), (1024, 5), (2048, 2))

    def __init__(
        self,
        block_expansion: int,
        feature_channel: int,
        num_kp: int,
        image_channel: int,
        max_features: int,
        num_bins: int = 66,
        estimate_jacobian: bool = True,
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(image_channel, block_expansion, kernel_size=7, padding=3, stride=2)
        self.norm1 = nn.BatchNorm2d(block_expansion, affine=True)
        self.stages: list[tuple[nn.Module, ...]] = []
        in_features = block_expansion
        for stage, (width, repeats) in enumerate(self.STAGES):
            conv, norm = nn.Conv2d(in_features, width, kernel_size=1), nn.BatchNorm2d(width, affine=True)
            self.add_module(f"conv{stage + 2}", conv)
            self.add_module(f"norm{stage + 2}", norm)
            layers: list[nn.Module] = [conv, norm]
            if stage > 0:
                layers.append(ResBottleneck(width, stride=2))
                self.add_module(f"block{2 * stage}", layers[-1])
            blocks = nn.Sequential()
            for i in range(repeats):
                blocks.add_module(f"b{2 * stage + 1}_{i}", ResBottleneck(width, stride=1))
            self.add_module(f"block{2 * stage + 1}", blocks)
            self.stages.append((*layers, blocks))
            in_features = width
        self.fc_roll = nn.Linear(in_features, num_bins)
        self.fc_pitch = nn.Linear(in_features, num_bins)
        self.fc_yaw = nn.Linear(in_features, num_bins)
        self.fc_t = nn.Linear(in_features, 3)
        self.fc_exp = nn.Linear(in_features, 3 * num_kp)

    def forward(self, x: torch.Tensor) -> HeadPose:
        out = F.max_pool2d(F.relu(self.norm1(self.conv1(x))), kernel_size=3, stride=2, padding=1)
        for conv, norm, *blocks in self.stages:
            out = F.relu(norm(conv(out)))
            for block in blocks:
                out = block(out)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        # Upstream's naming, kept: yaw from fc_roll, roll from fc_yaw.
        return {
            "yaw": self.fc_roll(out),
            "pitch": self.fc_pitch(out),
            "roll": self.fc_yaw(out),
            "t": self.fc_t(out),
            "exp": self.fc_exp(out),
        }


def headpose_to_degrees(logits: torch.Tensor) -> torch.Tensor:
    """Expected angle of 66 bins of 3 degrees from -99: ``(B, bins) -> (B,)``."""
    bins = torch.arange(logits.shape[1], dtype=logits.dtype, device=logits.device)
    return (F.softmax(logits, dim=1) * bins).sum(dim=1) * 3 - 99


def _axis_rotation(angle: torch.Tensor, axis: int) -> torch.Tensor:
    """Right-handed rotations ``(B, 3, 3)`` by ``angle`` (radians, ``(B,)``) about x (0), y (1) or z (2)."""
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    rows = {
        0: ((one, zero, zero), (zero, c, -s), (zero, s, c)),
        1: ((c, zero, s), (zero, one, zero), (-s, zero, c)),
        2: ((c, -s, zero), (s, c, zero), (zero, zero, one)),
    }[axis]
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)


def rotation_matrix(
    yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor, variant: Variant = "beta"
) -> torch.Tensor:
    """Rotation ``(B, 3, 3)`` from angles ``(B,)`` in degrees.

    ``beta``: ``Rx(roll) Ry(pitch) Rz(yaw)``; ``head``: ``Rx(pitch) Ry(yaw) Rz(roll)``.
    """
    yaw, pitch, roll = (angle / 180 * 3.14 for angle in (yaw, pitch, roll))  # 3.14: upstream's pi
    about_x, about_y, about_z = (roll, pitch, yaw) if check_variant(variant) == "beta" else (pitch, yaw, roll)
    return _axis_rotation(about_x, 0) @ _axis_rotation(about_y, 1) @ _axis_rotation(about_z, 2)


def head_pose_rotation(he: HeadPose, variant: Variant = "beta") -> torch.Tensor:
    """Rotation matrix ``(B, 3, 3)`` of the head-pose logits."""
    degrees = [headpose_to_degrees(he[name]) for name in ("yaw", "pitch", "roll")]
    return rotation_matrix(*degrees, variant=variant)
