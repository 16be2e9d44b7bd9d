"""DAC (Konuko et al., ICASSP 2021) as the GFVC common software packages it, and its building blocks.

DAC is FOMM without Jacobians ("zero-order" motion): ten keypoints per frame from an hourglass
detector, a dense-motion network that turns them into a warp field and an occlusion map, and an
encoder-decoder generator that warps the key frame's features. HDAC and RDAC (``models/hdac.py``,
``models/rdac.py``) reuse the detector and the dense-motion network. Where the DAC family differs
from FOMM (golden README-dac-family 4.1): every up block is bilinear with ``align_corners=True``,
every ``grid_sample`` aligns corners, the heads are wrapped (``kp.conv``, ``mask.conv``,
``occlusion.conv``, ``final.conv``) and the generator ends in a sigmoid inside ``final``.

Keypoint dicts hold ``value`` ``(B, K, 2)`` ((x, y) in [-1, 1]) and ``heatmap`` ``(B, K, h, w)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.blocks import (
    AntiAliasInterpolation2d,
    AutoencoderLayers,
    Hourglass,
    kp2gaussian,
    make_coordinate_grid,
)
from models.registry import NetworkModel, register_model

Keypoints = dict[str, torch.Tensor]


class ConvHead(nn.Module):
    """A 7x7 convolution under the key ``conv`` followed by ``activation`` (none, sigmoid, softmax)."""

    def __init__(self, in_features: int, out_features: int, activation: str = "none"):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=7, padding=3)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.activation == "sigmoid":
            return torch.sigmoid(out)
        return F.softmax(out, dim=1) if self.activation == "softmax" else out


class KPD(nn.Module):
    """Keypoints as the expected position of a softmax heatmap over the hourglass's full output size."""

    def __init__(
        self,
        block_expansion: int,
        num_kp: int,
        num_channels: int,
        max_features: int,
        num_blocks: int,
        temperature: float,
        scale_factor: float = 1,
        bilinear_downscale: bool = False,
        **_unused: Any,
    ):
        super().__init__()
        self.predictor = Hourglass(block_expansion, num_channels, num_blocks, max_features, bilinear=True)
        self.kp = ConvHead(self.predictor.out_filters, num_kp)
        self.temperature = temperature
        self.scale_factor = scale_factor
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor, bilinear=bilinear_downscale)

    def downscale(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(x) if self.scale_factor != 1 else x

    def forward(self, x: torch.Tensor) -> Keypoints:
        prediction = self.kp(self.predictor(self.downscale(x)))
        b, k, h, w = prediction.shape
        heatmap = F.softmax(prediction.view(b, k, -1) / self.temperature, dim=2).view(b, k, h, w)
        grid = make_coordinate_grid((h, w), heatmap.dtype, heatmap.device)
        return {"value": (heatmap.unsqueeze(-1) * grid[None, None]).sum(dim=(2, 3)), "heatmap": heatmap}


class DenseMotionGenerator(nn.Module):
    """Dense warp field and occlusion map from K zero-order keypoint motions plus the identity."""

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
        bilinear_downscale: bool = False,
        **_unused: Any,
    ):
        super().__init__()
        in_features = (num_kp + 1) * (num_channels + 1)
        self.hourglass = Hourglass(block_expansion, in_features, num_blocks, max_features, bilinear=True)
        self.mask = ConvHead(self.hourglass.out_filters, num_kp + 1, "softmax")
        self.occlusion = (
            ConvHead(self.hourglass.out_filters, 1, "sigmoid") if estimate_occlusion_map else None
        )
        self.num_kp = num_kp
        self.scale_factor = scale_factor
        self.kp_variance = kp_variance
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor, bilinear=bilinear_downscale)

    def forward(
        self, reference_frame: torch.Tensor, kp_target: Keypoints, kp_reference: Keypoints
    ) -> dict[str, torch.Tensor]:
        """``reference_frame`` may have batch 1 against B target keypoints (it is broadcast).

        Returns the mask, deformation and occlusion map, plus what upstream reports: the channel
        sums of the heatmaps and sparse motions, the sparsely deformed references and the
        downscaled reference.
        """
        reference = self.down(reference_frame) if self.scale_factor != 1 else reference_frame
        target = kp_target["value"]
        bs, k1 = target.shape[0], self.num_kp + 1
        _, c, h, w = reference.shape
        size = (h, w)
        gaussians = kp2gaussian(target, size, self.kp_variance) - kp2gaussian(
            kp_reference["value"].expand_as(target), size, self.kp_variance
        )
        heatmap = torch.cat([gaussians.new_zeros(bs, 1, h, w), gaussians], dim=1).unsqueeze(2)
        identity = make_coordinate_grid(size, target.dtype, target.device).view(1, 1, h, w, 2)
        to_reference = (
            identity
            - target.view(bs, self.num_kp, 1, 1, 2)
            + kp_reference["value"].view(-1, self.num_kp, 1, 1, 2)
        )
        sparse_motion = torch.cat([identity.expand(bs, 1, h, w, 2), to_reference], dim=1)
        repeated = reference.unsqueeze(1).expand(bs, k1, c, h, w).reshape(bs * k1, c, h, w)
        sparse_deformed = F.grid_sample(
            repeated, sparse_motion.reshape(bs * k1, h, w, 2), align_corners=True
        ).view(bs, k1, c, h, w)
        prediction = self.hourglass(torch.cat([heatmap, sparse_deformed], dim=2).view(bs, -1, h, w))
        mask = self.mask(prediction)
        weighted = sparse_motion.permute(0, 1, 4, 2, 3) * mask.unsqueeze(2)
        deformation = weighted.sum(dim=1).permute(0, 2, 3, 1)
        out = {
            "heatmap_sum": heatmap.sum(dim=1),
            "sparse_motion_sum": sparse_motion.sum(dim=1).permute(0, 3, 1, 2),
            "sparse_deformed": sparse_deformed,
            "mask": mask,
            "deformation": deformation,
            "downsampled_reference": reference,
        }
        if self.occlusion is not None:
            out["occlusion_map"] = self.occlusion(prediction)
        return out


def deform_input(inp: torch.Tensor, deformation: torch.Tensor) -> torch.Tensor:
    """Warp ``inp`` by a sampling grid ``(B, h, w, 2)``, resized bilinearly (corners aligned) to ``inp``."""
    if tuple(deformation.shape[1:3]) != tuple(inp.shape[2:]):
        deformation = F.interpolate(
            deformation.permute(0, 3, 1, 2), size=inp.shape[2:], mode="bilinear", align_corners=True
        ).permute(0, 2, 3, 1)
    return F.grid_sample(inp, deformation, align_corners=True)


class GeneratorDAC(AutoencoderLayers):
    """Encoder, warp by the dense motion, occlusion, residual bottleneck, decoder with a sigmoid."""

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
        bilinear_downscale: bool = False,
        autoencoder: bool = True,
        **_unused: Any,
    ):
        super().__init__()
        self.dense_motion_network = DenseMotionGenerator(
            num_kp=num_kp,
            num_channels=num_channels,
            estimate_occlusion_map=estimate_occlusion_map,
            bilinear_downscale=bilinear_downscale,
            **(dense_motion_params or {}),
        )
        if autoencoder:
            self.add_autoencoder_layers(
                num_channels,
                block_expansion,
                max_features,
                num_down_blocks,
                num_bottleneck_blocks,
                bilinear=True,
            )
            self.final = ConvHead(block_expansion, num_channels, "sigmoid")

    def motion_compensation(
        self,
        reference_frame: torch.Tensor,
        reference_features: torch.Tensor,
        kp_target: Keypoints,
        kp_reference: Keypoints,
    ) -> tuple[torch.Tensor, dict]:
        """The reference features warped to the targets and multiplied by the occlusion map."""
        motion = self.dense_motion_network(reference_frame, kp_target, kp_reference)
        bs = kp_target["value"].shape[0]
        features = reference_features.expand(bs, *reference_features.shape[1:])
        warped = deform_input(features, motion["deformation"])
        occlusion = motion["occlusion_map"]
        if occlusion.shape[2:] != warped.shape[2:]:
            occlusion = F.interpolate(occlusion, size=warped.shape[2:], mode="bilinear", align_corners=True)
        return warped * occlusion, motion

    def animated_frame_decoder(self, x: torch.Tensor) -> torch.Tensor:
        """Up blocks, then ``final`` (conv and sigmoid)."""
        for block in self.up_blocks:
            x = block(x)
        return self.final(x)

    def forward(
        self,
        reference_frame: torch.Tensor,
        kp_reference: Keypoints,
        kp_target: Keypoints,
        reference_features: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``animate`` of upstream, with its intermediates: the frames ``prediction`` in [0, 1]."""
        ref_fts = self.encode(reference_frame) if reference_features is None else reference_features
        def_ref_fts, motion = self.motion_compensation(reference_frame, ref_fts, kp_target, kp_reference)
        bottleneck_out = self.bottleneck(def_ref_fts)
        return {
            **motion,
            "ref_fts": ref_fts,
            "def_ref_fts": def_ref_fts,
            "bottleneck_out": bottleneck_out,
            "prediction": self.animated_frame_decoder(bottleneck_out),
        }


class KeypointModel(NetworkModel):
    """A DAC-family model: features are the keypoint values, (x, y) per keypoint, row-major
    (``2 * num_kp`` floats), the order the common software codes them."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        head = self.networks["kp_detector"].kp  # a ConvHead, or a plain conv (MRDAC)
        self.num_kp = getattr(head, "conv", head).out_channels
        self.feature_size = 2 * self.num_kp

    def features_to_kp(self, features: torch.Tensor) -> Keypoints:
        return {"value": self._input(features).reshape(-1, self.num_kp, 2)}

    @torch.no_grad()
    def extract_features(self, frames: torch.Tensor) -> torch.Tensor:
        return self.networks["kp_detector"](self._input(frames))["value"].flatten(1)

    @torch.no_grad()
    def prepare_reference(self, key_frame: torch.Tensor) -> dict[str, Any]:
        key_frame = self._input(key_frame)
        return {
            "kp": self.networks["kp_detector"](key_frame),
            "features": self.networks["generator"].encode(key_frame),
        }


@register_model("dac")
class DAC(KeypointModel):
    """DAC as a GFVC codec model (``num_kp`` 10, 20 or 40 keypoints: ``DAC-<num_kp>-checkpoint.pth.tar``)."""

    @classmethod
    def build_networks(cls, model_params: Mapping[str, Any]) -> dict[str, nn.Module]:
        common = model_params["common_params"]
        return {
            "kp_detector": KPD(**model_params["kp_detector_params"], **common),
            "generator": GeneratorDAC(**model_params["generator_params"], **common),
        }

    @torch.no_grad()
    def generate(
        self, key_frame: torch.Tensor, reference: dict[str, Any], features: torch.Tensor
    ) -> torch.Tensor:
        kp_target = self.features_to_kp(features)
        out = self.networks["generator"](
            self._input(key_frame), reference["kp"], kp_target, reference_features=reference["features"]
        )
        return out["prediction"]
