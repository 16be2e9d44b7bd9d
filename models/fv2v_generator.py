"""FV2V's generator: the key frame's feature volume warped by the dense 3-D motion of the keypoints,
projected back to 2-D and decoded (``OcclusionAwareGenerator``, :mod:`models.fv2v`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.blocks import (
    DownBlock2d,
    ResBlock2d,
    SameBlock2d,
    UpBlock2d,
    kp2gaussian,
    make_coordinate_grid,
)
from models.blocks3d import Hourglass3d, ResBlock3d, Variant
from models.fv2v_keypoints import Keypoints, no_jacobian


class DenseMotionNetwork(nn.Module):
    """Dense 3-D warp field, keypoint masks and occlusion from the source volume and the keypoints."""

    def __init__(
        self,
        block_expansion: int,
        num_blocks: int,
        max_features: int,
        num_kp: int,
        feature_channel: int,
        reshape_depth: int,
        compress: int,
        estimate_occlusion_map: bool = False,
        variant: Variant = "beta",
        kp_variance: float = 0.01,
    ):
        super().__init__()
        self.hourglass = Hourglass3d(
            block_expansion, (num_kp + 1) * (compress + 1), num_blocks, max_features, variant
        )
        self.mask = nn.Conv3d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.compress = nn.Conv3d(feature_channel, compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(compress, affine=True)
        self.occlusion = (
            nn.Conv2d(self.hourglass.out_filters * reshape_depth, 1, kernel_size=7, padding=3)
            if estimate_occlusion_map
            else None
        )
        self.num_kp = num_kp
        self.kp_variance = kp_variance

    def sparse_motions(
        self, volume: tuple[int, int, int], kp_driving: Keypoints, kp_source: Keypoints
    ) -> torch.Tensor:
        """Identity first, then for each keypoint driving -> source coordinates: ``(B, K+1, D, H, W, 3)``."""
        value_d = kp_driving["value"]
        bs = value_d.shape[0]
        identity = make_coordinate_grid(volume, value_d.dtype, value_d.device).view(1, 1, *volume, 3)
        shape = (-1, self.num_kp, 1, 1, 1, 3)
        driving_to_source = identity - value_d.view(shape) + kp_source["value"].view(shape)
        return torch.cat([identity.expand(bs, 1, *volume, 3), driving_to_source], dim=1)

    def forward(
        self, feature: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints
    ) -> dict[str, torch.Tensor]:
        """``feature`` ``(1 or B, C, D, H, W)`` is broadcast against the B driving keypoints."""
        bs = kp_driving["value"].shape[0]
        feature = F.relu(self.norm(self.compress(feature)))
        _, c, *volume = feature.shape
        k1 = self.num_kp + 1
        sparse_motion = self.sparse_motions(tuple(volume), kp_driving, kp_source)
        repeated = feature.unsqueeze(1).expand(bs, k1, c, *volume).reshape(bs * k1, c, *volume)
        deformed = F.grid_sample(repeated, sparse_motion.reshape(bs * k1, *volume, 3), align_corners=False)
        deformed = deformed.view(bs, k1, c, *volume)

        gaussians = kp2gaussian(kp_driving["value"], volume, self.kp_variance) - kp2gaussian(
            kp_source["value"].expand(bs, -1, -1), volume, self.kp_variance
        )
        heatmap = torch.cat([gaussians.new_zeros(bs, 1, *volume), gaussians], dim=1).unsqueeze(2)

        prediction = self.hourglass(torch.cat([heatmap, deformed], dim=2).view(bs, -1, *volume))
        mask = F.softmax(self.mask(prediction), dim=1)
        deformation = (sparse_motion.permute(0, 1, 5, 2, 3, 4) * mask.unsqueeze(2)).sum(dim=1)
        out = {"mask": mask, "deformation": deformation.permute(0, 2, 3, 4, 1)}
        if self.occlusion is not None:
            out["occlusion_map"] = torch.sigmoid(self.occlusion(prediction.flatten(1, 2)))
        return out


class LeakySameBlock2d(SameBlock2d):
    """Conv, BN, LeakyReLU (slope 0.01): the generator's ``third`` block."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.norm(self.conv(x)))


class OcclusionAwareGenerator(nn.Module):
    """2-D encoder -> 3-D volume -> warp by the dense motion -> 2-D projection, occlusion -> decoder."""

    def __init__(
        self,
        image_channel: int,
        feature_channel: int,
        num_kp: int,
        block_expansion: int,
        max_features: int,
        num_down_blocks: int,
        reshape_channel: int,
        reshape_depth: int,
        num_resblocks: int,
        estimate_occlusion_map: bool = False,
        dense_motion_params: Mapping[str, Any] | None = None,
        estimate_jacobian: bool = False,
        variant: Variant = "beta",
    ):
        super().__init__()
        no_jacobian(estimate_jacobian)
        if not dense_motion_params:
            raise ValueError("FV2V generator needs dense_motion_params (the GFVC FV2V config has them)")
        if reshape_channel * reshape_depth != max_features:
            raise ValueError(
                f"FV2V generator: reshape_channel x reshape_depth ({reshape_channel} x "
                f"{reshape_depth}) must equal max_features ({max_features})"
            )
        self.dense_motion_network = DenseMotionNetwork(
            num_kp=num_kp,
            feature_channel=feature_channel,
            estimate_occlusion_map=estimate_occlusion_map,
            variant=variant,
            **dense_motion_params,
        )
        self.first = SameBlock2d(image_channel, block_expansion, kernel_size=7, padding=3)
        width = [min(max_features, block_expansion * 2**i) for i in range(num_down_blocks + 1)]
        self.down_blocks = nn.ModuleList(DownBlock2d(width[i], width[i + 1]) for i in range(num_down_blocks))
        self.second = nn.Conv2d(width[-1], max_features, kernel_size=1)
        self.resblocks_3d = nn.Sequential()
        for i in range(num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(reshape_channel, kernel_size=3, padding=1))
        bottleneck = block_expansion * 2**num_down_blocks
        self.third = LeakySameBlock2d(max_features, bottleneck, kernel_size=3, padding=1)
        self.fourth = nn.Conv2d(bottleneck, bottleneck, kernel_size=1)
        self.resblocks_2d = nn.Sequential()
        for i in range(num_resblocks):
            self.resblocks_2d.add_module(f"2dr{i}", ResBlock2d(bottleneck, kernel_size=3, padding=1))
        self.up_blocks = nn.ModuleList(
            UpBlock2d(
                max(block_expansion, block_expansion * 2 ** (i + 1)),
                max(block_expansion, block_expansion * 2**i),
            )
            for i in reversed(range(num_down_blocks))
        )
        self.final = nn.Conv2d(block_expansion, image_channel, kernel_size=7, padding=3)
        self.reshape_channel = reshape_channel
        self.reshape_depth = reshape_depth
        self.variant = variant

    def encode_source(self, source_image: torch.Tensor) -> torch.Tensor:
        """The key frame's feature volume ``(B, reshape_channel, reshape_depth, h, w)``, before warping."""
        out = self.first(source_image)
        for block in self.down_blocks:
            out = block(out)
        out = self.second(out)
        b, _, h, w = out.shape
        return self.resblocks_3d(out.view(b, self.reshape_channel, self.reshape_depth, h, w))

    def forward(
        self,
        source_image: torch.Tensor | None,
        kp_driving: Keypoints,
        kp_source: Keypoints,
        source_features: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Animate the source (image or ``source_features``, batch 1 or B) to the B driving keypoints.

        Returns ``mask``, ``deformation`` (``(B, D, h, w, 3)``), ``occlusion_map`` (when estimated)
        and ``prediction`` ``(B, 3, H, W)`` in [0, 1].
        """
        bs = kp_driving["value"].shape[0]
        volume = self.encode_source(source_image) if source_features is None else source_features
        motion = self.dense_motion_network(volume, kp_driving, kp_source)
        # The dense motion is computed at the volume's own size, so no resizing is needed here.
        warped = F.grid_sample(
            volume.expand(bs, *volume.shape[1:]), motion["deformation"], align_corners=False
        )
        out = self.fourth(self.third(warped.flatten(1, 2)))
        if "occlusion_map" in motion:
            out = out * motion["occlusion_map"]
        out = self.resblocks_2d(out)
        for block in self.up_blocks:
            out = block(out)
        return {**motion, "prediction": torch.sigmoid(self.final(out))}
