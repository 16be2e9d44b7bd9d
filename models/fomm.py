"""FOMM (first-order motion model, vox-256) as first-order-model and the GFVC common software run it.

Ten keypoints with 2x2 Jacobians from an hourglass keypoint detector; a dense-motion network turns
them into a warp field and an occlusion map; an encoder-decoder generator warps the key frame's
features. Keypoint dicts hold ``value`` ``(B, K, 2)`` ((x, y) in [-1, 1]) and ``jacobian``
``(B, K, 2, 2)``.

Default behaviour is GFVC_Software_v2's: the final warp of ``deform_input`` samples with
``align_corners=True``; ``deform_align_corners=False`` gives upstream first-order-model's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import ConvexHull
from torch import nn

from models.blocks import (
    AntiAliasInterpolation2d,
    AutoencoderLayers,
    Hourglass,
    apply_occlusion,
    kp2gaussian,
    make_coordinate_grid,
    resize_grid,
)
from models.registry import NetworkModel, register_model

Keypoints = dict[str, torch.Tensor]


class KPDetector(nn.Module):
    """Keypoints as the expected position of a softmax heatmap; Jacobians weighted by the heatmap."""

    def __init__(
        self,
        block_expansion: int,
        num_kp: int,
        num_channels: int,
        max_features: int,
        num_blocks: int,
        temperature: float,
        estimate_jacobian: bool = False,
        scale_factor: float = 1,
        single_jacobian_map: bool = False,
        pad: int = 0,
    ):
        super().__init__()
        self.predictor = Hourglass(block_expansion, num_channels, num_blocks, max_features)
        self.kp = nn.Conv2d(self.predictor.out_filters, num_kp, kernel_size=7, padding=pad)
        self.num_jacobian_maps = 1 if single_jacobian_map else num_kp
        if estimate_jacobian:
            self.jacobian = nn.Conv2d(
                self.predictor.out_filters, 4 * self.num_jacobian_maps, kernel_size=7, padding=pad
            )
            nn.init.zeros_(self.jacobian.weight)
            with torch.no_grad():
                self.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0] * self.num_jacobian_maps))
        else:
            self.jacobian = None
        self.temperature = temperature
        self.scale_factor = scale_factor
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor)

    def forward(self, x: torch.Tensor) -> Keypoints:
        if self.scale_factor != 1:
            x = self.down(x)
        feature_map = self.predictor(x)
        prediction = self.kp(feature_map)
        b, k, h, w = prediction.shape
        heatmap = F.softmax(prediction.view(b, k, -1) / self.temperature, dim=2).view(b, k, h, w)
        grid = make_coordinate_grid((h, w), heatmap.dtype, heatmap.device)
        out = {"value": (heatmap.unsqueeze(-1) * grid[None, None]).sum(dim=(2, 3))}
        if self.jacobian is not None:
            jacobian_map = self.jacobian(feature_map).reshape(b, self.num_jacobian_maps, 4, h, w)
            jacobian = (heatmap.unsqueeze(2) * jacobian_map).view(b, k, 4, -1).sum(dim=-1)
            out["jacobian"] = jacobian.view(b, k, 2, 2)
        return out


class DenseMotionNetwork(nn.Module):
    """Dense warp field (and occlusion) from the K sparse first-order motions plus the identity."""

    def __init__(
        self,
        block_expansion: int,
        num_blocks: int,
        max_features: int,
        num_kp: int,
        num_channels: int,
        estimate_occlusion_map: bool = False,
        scale_factor: float = 1,
        kp_variance: float = 0.01,
    ):
        super().__init__()
        self.hourglass = Hourglass(
            block_expansion, (num_kp + 1) * (num_channels + 1), num_blocks, max_features
        )
        self.mask = nn.Conv2d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.occlusion = (
            nn.Conv2d(self.hourglass.out_filters, 1, kernel_size=7, padding=3)
            if estimate_occlusion_map
            else None
        )
        self.num_kp = num_kp
        self.scale_factor = scale_factor
        self.kp_variance = kp_variance
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor)

    def downscale(self, source_image: torch.Tensor) -> torch.Tensor:
        return self.down(source_image) if self.scale_factor != 1 else source_image

    def sparse_motions(
        self, shape: tuple[int, int], kp_driving: Keypoints, kp_source: Keypoints
    ) -> torch.Tensor:
        """For each keypoint (and the identity first): driving -> source coordinates ``(B, K+1, h, w, 2)``."""
        h, w = shape
        value_d = kp_driving["value"]
        bs = value_d.shape[0]
        identity = make_coordinate_grid((h, w), value_d.dtype, value_d.device).view(1, 1, h, w, 2)
        grid = identity - value_d.view(bs, self.num_kp, 1, 1, 2)
        if "jacobian" in kp_driving:
            jacobian = torch.matmul(kp_source["jacobian"], torch.inverse(kp_driving["jacobian"]))
            grid = torch.matmul(jacobian[:, :, None, None], grid.unsqueeze(-1)).squeeze(-1)
        driving_to_source = grid + kp_source["value"].view(-1, self.num_kp, 1, 1, 2)
        return torch.cat([identity.expand(bs, 1, h, w, 2), driving_to_source], dim=1)

    def forward(
        self,
        source_image: torch.Tensor,
        kp_driving: Keypoints,
        kp_source: Keypoints,
        downscaled: bool = False,
    ) -> dict[str, torch.Tensor]:
        """``source_image`` may have batch 1 against B driving keypoints (it is broadcast)."""
        source = source_image if downscaled else self.downscale(source_image)
        bs = kp_driving["value"].shape[0]
        _, c, h, w = source.shape
        gaussians = kp2gaussian(kp_driving["value"], (h, w), self.kp_variance) - kp2gaussian(
            kp_source["value"], (h, w), self.kp_variance
        )
        heatmap = torch.cat([gaussians.new_zeros(bs, 1, h, w), gaussians], dim=1).unsqueeze(2)

        sparse_motion = self.sparse_motions((h, w), kp_driving, kp_source)
        k1 = self.num_kp + 1
        repeated = source.unsqueeze(1).expand(bs, k1, c, h, w).reshape(bs * k1, c, h, w)
        sparse_deformed = F.grid_sample(
            repeated, sparse_motion.reshape(bs * k1, h, w, 2), align_corners=False
        )
        sparse_deformed = sparse_deformed.view(bs, k1, c, h, w)

        prediction = self.hourglass(torch.cat([heatmap, sparse_deformed], dim=2).view(bs, -1, h, w))
        mask = F.softmax(self.mask(prediction), dim=1)
        deformation = (
            (sparse_motion.permute(0, 1, 4, 2, 3) * mask.unsqueeze(2)).sum(dim=1).permute(0, 2, 3, 1)
        )
        out = {"sparse_deformed": sparse_deformed, "mask": mask, "deformation": deformation}
        if self.occlusion is not None:
            out["occlusion_map"] = torch.sigmoid(self.occlusion(prediction))
        return out


def deform_input(inp: torch.Tensor, deformation: torch.Tensor, align_corners: bool) -> torch.Tensor:
    """Warp ``inp`` by a sampling grid ``(B, h, w, 2)``, resized bilinearly to ``inp``'s size."""
    return F.grid_sample(inp, resize_grid(deformation, inp.shape[2:]), align_corners=align_corners)


class OcclusionAwareGenerator(AutoencoderLayers):
    """Encoder, warp by the dense motion, occlusion, residual bottleneck, decoder."""

    def __init__(
        self,
        num_channels: int,
        num_kp: int,
        block_expansion: int,
        max_features: int,
        num_down_blocks: int,
        num_bottleneck_blocks: int,
        estimate_occlusion_map: bool = False,
        dense_motion_params: Mapping[str, Any] | None = None,
        estimate_jacobian: bool = False,
        deform_align_corners: bool = True,
    ):
        super().__init__()
        self.dense_motion_network = (
            DenseMotionNetwork(
                num_kp=num_kp,
                num_channels=num_channels,
                estimate_occlusion_map=estimate_occlusion_map,
                **dense_motion_params,
            )
            if dense_motion_params
            else None
        )
        self.add_autoencoder_layers(
            num_channels, block_expansion, max_features, num_down_blocks, num_bottleneck_blocks
        )
        self.deform_align_corners = deform_align_corners

    def forward(
        self,
        source_image: torch.Tensor,
        kp_driving: Keypoints,
        kp_source: Keypoints,
        source_features: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Animate ``source_image`` (batch 1 or B) to the B driving keypoints."""
        bs = kp_driving["value"].shape[0]
        features = self.encode(source_image) if source_features is None else source_features
        features = features.expand(bs, *features.shape[1:])
        out: dict[str, torch.Tensor] = {}
        if self.dense_motion_network is None:
            out["prediction"] = torch.sigmoid(self.decode(features))
            return out
        motion = self.dense_motion_network(source_image, kp_driving, kp_source)
        out.update(motion)
        warped = deform_input(features, motion["deformation"], self.deform_align_corners)
        warped = apply_occlusion(warped, motion.get("occlusion_map"))
        out["deformed"] = deform_input(
            source_image.expand(bs, *source_image.shape[1:]), motion["deformation"], self.deform_align_corners
        )
        out["prediction"] = torch.sigmoid(self.decode(warped))
        return out


def normalize_kp(
    kp_source: Keypoints,
    kp_driving: Keypoints,
    kp_driving_initial: Keypoints,
    adapt_movement_scale: bool = False,
    use_relative_movement: bool = False,
    use_relative_jacobian: bool = False,
) -> Keypoints:
    """first-order-model's relative animation: move the source keypoints by the driving motion.

    The movement scale is sqrt(area of the source keypoints' convex hull) / sqrt(that of the initial
    driving frame) (first item of the batch). With everything off, returns the driving keypoints.
    """
    scale = 1.0
    if adapt_movement_scale:
        source_area = ConvexHull(kp_source["value"][0].detach().cpu().numpy()).volume
        driving_area = ConvexHull(kp_driving_initial["value"][0].detach().cpu().numpy()).volume
        scale = float(np.sqrt(source_area) / np.sqrt(driving_area))
    kp_new = dict(kp_driving)
    if use_relative_movement:
        kp_new["value"] = (kp_driving["value"] - kp_driving_initial["value"]) * scale + kp_source["value"]
        if use_relative_jacobian:
            jacobian_diff = torch.matmul(
                kp_driving["jacobian"], torch.inverse(kp_driving_initial["jacobian"])
            )
            kp_new["jacobian"] = torch.matmul(jacobian_diff, kp_source["jacobian"])
    return kp_new


@register_model("fomm")
class FOMM(NetworkModel):
    """FOMM as a GFVC codec model: features are the keypoint values then the Jacobians, row-major
    (``num_kp * 2 + num_kp * 4`` = 60 floats for vox-256), the order the common software codes them."""

    @classmethod
    def build_networks(
        cls, model_params: Mapping[str, Any], deform_align_corners: bool = True
    ) -> dict[str, nn.Module]:
        common = model_params["common_params"]
        return {
            "kp_detector": KPDetector(**model_params["kp_detector_params"], **common),
            "generator": OcclusionAwareGenerator(
                **model_params["generator_params"], **common, deform_align_corners=deform_align_corners
            ),
        }

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        detector = self.networks["kp_detector"]
        self.num_kp = detector.kp.out_channels
        self.with_jacobian = detector.jacobian is not None
        self.feature_size = self.num_kp * (6 if self.with_jacobian else 2)

    def features_to_kp(self, features: torch.Tensor) -> Keypoints:
        features = self._input(features)
        kp = {"value": features[:, : 2 * self.num_kp].reshape(-1, self.num_kp, 2)}
        if self.with_jacobian:
            kp["jacobian"] = features[:, 2 * self.num_kp :].reshape(-1, self.num_kp, 2, 2)
        return kp

    @torch.no_grad()
    def extract_features(self, frames: torch.Tensor) -> torch.Tensor:
        kp = self.networks["kp_detector"](self._input(frames))
        return torch.cat([v.flatten(1) for v in kp.values()], dim=1)

    @torch.no_grad()
    def prepare_reference(self, key_frame: torch.Tensor) -> dict[str, Any]:
        key_frame = self._input(key_frame)
        return {
            "kp": self.networks["kp_detector"](key_frame),
            "features": self.networks["generator"].encode(key_frame),
        }

    @torch.no_grad()
    def generate(
        self, key_frame: torch.Tensor, reference: dict[str, Any], features: torch.Tensor
    ) -> torch.Tensor:
        out = self.networks["generator"](
            self._input(key_frame),
            self.features_to_kp(features),
            reference["kp"],
            source_features=reference["features"],
        )
        return out["prediction"]
