"""CFTE (compact feature temporal evolution) as the GFVC common software v2 runs it.

The encoder reduces a frame to a 1 x 4 x 4 compact feature (hourglass on the x0.25 frame, then four
stride-2 5x5 convolutions with GDN). The decoder upsamples the key frame's and the current frame's
features to 64 x 64, estimates an OpenCV Farneback flow between the two 4 x 4 features, warps the
key frame's deep features by it, and predicts a dense flow and occlusion map that drive an
occlusion-aware generator like FOMM's.

Quirks of the common software kept on purpose (the checkpoints were trained with them):
* Farneback runs with ``prev`` = the driving feature and ``next`` = the key frame's feature, each
  min/max-normalised to uint8. Upstream normalises over the whole batch; we normalise each frame
  on its own, which is what the common software computes (it decodes one frame at a time), so a
  batched decode equals the frame-by-frame one.
* ``warp`` normalises pixel positions with the ``align_corners=True`` convention but samples with
  ``align_corners=False`` (``warp_align_corners`` switches this; Goluck-Konuko's copy uses True).
* ``deformed`` resizes the 64 x 64 pixel-unit flow to the frame size without rescaling it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.blocks import (
    GDN,
    AntiAliasInterpolation2d,
    AutoencoderLayers,
    Hourglass,
    UpBlock2d,
    apply_occlusion,
    resize_grid,
)
from models.registry import NetworkModel, register_model

# pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, flags of the common software's call
FARNEBACK_ARGS = (0.5, 2, 15, 3, 5, 1.2, 0)


class KPDetector(nn.Module):
    """Compact-feature extractor: ``{'value': (B, num_kp, H/64, W/64)}``.

    ``temperature`` and ``estimate_jacobian`` come with the checkpoint's yaml and are unused.
    """

    def __init__(
        self,
        block_expansion: int,
        num_kp: int,
        num_channels: int,
        max_features: int,
        num_blocks: int,
        temperature: float = 0.1,
        estimate_jacobian: bool = False,
        scale_factor: float = 1,
    ):
        super().__init__()
        self.predictor = Hourglass(block_expansion, num_channels, num_blocks, max_features)
        self.scale_factor = scale_factor
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor)
        for i in range(1, 5):
            in_channels = self.predictor.out_filters if i == 1 else num_kp
            self.add_module(f"conv{i}", nn.Conv2d(in_channels, num_kp, kernel_size=5, stride=2, padding=2))
            self.add_module(f"gdn{i}", GDN(num_kp))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.scale_factor != 1:
            x = self.down(x)
        out = self.predictor(x)
        for i in range(1, 5):
            out = getattr(self, f"gdn{i}")(getattr(self, f"conv{i}")(out))
        return {"value": out}


def warp(x: torch.Tensor, flow: torch.Tensor, align_corners: bool = False) -> torch.Tensor:
    """Sample ``x`` ``(B, C, H, W)`` at pixel position + ``flow`` ``(B, H, W, 2)`` (pixel units, x first)."""
    _, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    pixels = torch.stack([xs, ys], dim=-1).to(flow.dtype) + flow
    scale = torch.tensor([max(w - 1, 1), max(h - 1, 1)], dtype=flow.dtype, device=flow.device)
    grid = 2.0 * pixels / scale - 1.0
    return F.grid_sample(
        x,
        grid.expand(x.shape[0], h, w, 2),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=align_corners,
    )


def to_uint8(feature: torch.Tensor) -> np.ndarray:
    """One frame's feature ``(C, h, w)`` min/max-normalised to uint8, laid out ``(h, w, C)``.

    Float32 arithmetic in the upstream order; a constant feature (max == min) maps to zeros.
    """
    values = feature.detach().to("cpu", torch.float32).numpy()
    low, high = values.min(), values.max()
    if high == low:
        return np.zeros(values.shape[1:] + values.shape[:1], dtype=np.uint8)
    scaled = np.round((values - low) / (high - low) * np.float32(255.0))
    return scaled.astype(np.uint8).transpose(1, 2, 0)


def farneback_flow(driving_u8: np.ndarray, source_u8: np.ndarray) -> np.ndarray:
    """OpenCV Farneback flow ``(h, w, 2)`` float32 with prev = driving, next = source (upstream's order)."""
    return cv2.calcOpticalFlowFarneback(driving_u8, source_u8, None, *FARNEBACK_ARGS)


class DenseMotionNetwork(AutoencoderLayers):
    """Dense flow and occlusion from the compact features of the key frame and the driving frame."""

    down_name = "motiondown_blocks"
    up_name = "motionup_blocks"

    def __init__(
        self,
        block_expansion: int = 64,
        num_blocks: int = 4,
        num_down_blocks: int = 4,
        max_features: int = 512,
        num_kp: int = 1,
        num_channels: int = 3,
        num_bottleneck_blocks: int = 4,
        estimate_occlusion_map: bool = False,
        scale_factor: float = 1,
        warp_align_corners: bool = False,
    ):
        super().__init__()
        self.hourglass = Hourglass(block_expansion, num_channels + 1, num_blocks, max_features)
        self.flow = nn.Conv2d(self.hourglass.out_filters, 2, kernel_size=7, padding=3)
        self.occlusion = (
            nn.Conv2d(self.hourglass.out_filters, 1, kernel_size=7, padding=3)
            if estimate_occlusion_map
            else None
        )
        self.scale_factor = scale_factor
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor)
        self.up_blocks = nn.ModuleList(UpBlock2d(num_kp, num_kp) for _ in range(num_down_blocks))
        self.add_autoencoder_layers(
            num_channels, block_expansion, max_features, num_down_blocks, num_bottleneck_blocks
        )
        self.warp_align_corners = warp_align_corners

    def upsample_feature(self, feature: torch.Tensor) -> torch.Tensor:
        for block in self.up_blocks:
            feature = block(feature)
        return feature

    def prepare_source(self, source_image: torch.Tensor, source_feature: torch.Tensor) -> dict[str, Any]:
        """Everything that depends on the key frame only (computed once per key frame)."""
        image = self.down(source_image) if self.scale_factor != 1 else source_image
        return {
            "image": image,
            "encoded": self.encode(image),
            "heatmap": self.upsample_feature(source_feature),
            "uint8": [to_uint8(f) for f in source_feature],
        }

    def sparse_motion(self, driving_feature: torch.Tensor, source_uint8: list[np.ndarray]) -> torch.Tensor:
        """Farneback flow per frame ``(B, h, w, 2)``; each frame normalised on its own."""
        flows = [
            farneback_flow(to_uint8(d), source_uint8[i if len(source_uint8) > 1 else 0])
            for i, d in enumerate(driving_feature)
        ]
        return torch.from_numpy(np.stack(flows)).to(driving_feature.device, driving_feature.dtype)

    def forward(
        self,
        source_image: torch.Tensor,
        source_feature: torch.Tensor,
        driving_feature: torch.Tensor,
        prepared: Mapping[str, Any] | None = None,
    ) -> dict[str, torch.Tensor]:
        src = prepared if prepared is not None else self.prepare_source(source_image, source_feature)
        bs = driving_feature.shape[0]
        image = src["image"].expand(bs, *src["image"].shape[1:])
        _, _, h, w = image.shape
        heatmap = self.upsample_feature(driving_feature) - src["heatmap"]

        sparse_motion = self.sparse_motion(driving_feature, src["uint8"])
        out = warp(
            src["encoded"].expand(bs, *src["encoded"].shape[1:]), sparse_motion, self.warp_align_corners
        )
        sparse_deformed = self.decode(out)

        prediction = self.hourglass(torch.cat([heatmap.view(bs, -1, h, w), sparse_deformed], dim=1))
        result = {
            "sparse_motion": sparse_motion,
            "sparse_deformed": sparse_deformed,
            "deformation": self.flow(prediction).permute(0, 2, 3, 1),
        }
        if self.occlusion is not None:
            result["occlusion_map"] = torch.sigmoid(self.occlusion(prediction))
        return result


class OcclusionAwareGenerator(AutoencoderLayers):
    """Key-frame encoder, warp by the dense flow, occlusion, residual bottleneck, decoder."""

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
        warp_align_corners: bool = False,
    ):
        super().__init__()
        self.dense_motion_network = DenseMotionNetwork(
            num_kp=num_kp,
            num_channels=num_channels,
            estimate_occlusion_map=estimate_occlusion_map,
            warp_align_corners=warp_align_corners,
            **(dense_motion_params or {}),
        )
        self.add_autoencoder_layers(
            num_channels, block_expansion, max_features, num_down_blocks, num_bottleneck_blocks
        )
        self.warp_align_corners = warp_align_corners

    def prepare_source(self, source_image: torch.Tensor, source_feature: torch.Tensor) -> dict[str, Any]:
        """The key frame's encoded features and dense-motion inputs, computed once per key frame."""
        return {
            "encoded": self.encode(source_image),
            "motion": self.dense_motion_network.prepare_source(source_image, source_feature),
        }

    def deform_input(self, inp: torch.Tensor, deformation: torch.Tensor) -> torch.Tensor:
        """Warp by the pixel-unit flow resized to ``inp`` without rescaling it (upstream's quirk)."""
        return warp(inp, resize_grid(deformation, inp.shape[2:]), self.warp_align_corners)

    def forward(
        self,
        source_image: torch.Tensor,
        source_feature: torch.Tensor,
        driving_feature: torch.Tensor,
        prepared: Mapping[str, Any] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Animate ``source_image`` (batch 1) with B driving features (positional order as upstream)."""
        src = prepared if prepared is not None else self.prepare_source(source_image, source_feature)
        bs = driving_feature.shape[0]
        out = self.dense_motion_network(source_image, source_feature, driving_feature, src["motion"])
        deformation = out["deformation"]
        out["deformed"] = self.deform_input(source_image.expand(bs, *source_image.shape[1:]), deformation)
        warped = self.deform_input(src["encoded"].expand(bs, *src["encoded"].shape[1:]), deformation)
        warped = apply_occlusion(warped, out.get("occlusion_map"))
        out["prediction"] = torch.sigmoid(self.decode(warped))
        return out


@register_model("cfte")
class CFTE(NetworkModel):
    """CFTE as a GFVC codec model: features are the compact feature, row-major (16 floats at 256x256)."""

    @classmethod
    def build_networks(
        cls, model_params: Mapping[str, Any], warp_align_corners: bool = False
    ) -> dict[str, nn.Module]:
        common = model_params["common_params"]
        return {
            "kp_detector": KPDetector(**model_params["kp_detector_params"], **common),
            "generator": OcclusionAwareGenerator(
                **model_params["generator_params"], **common, warp_align_corners=warp_align_corners
            ),
        }

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.num_kp = self.networks["kp_detector"].conv1.out_channels
        self.feature_size = self.num_kp * 16  # the 4 x 4 feature of a 256 x 256 frame

    @torch.no_grad()
    def extract_features(self, frames: torch.Tensor) -> torch.Tensor:
        return self.networks["kp_detector"](self._input(frames))["value"].flatten(1)

    @torch.no_grad()
    def prepare_reference(self, key_frame: torch.Tensor) -> dict[str, Any]:
        key_frame = self._input(key_frame)
        feature = self.networks["kp_detector"](key_frame)["value"]
        return {"feature": feature, "prepared": self.networks["generator"].prepare_source(key_frame, feature)}

    @torch.no_grad()
    def generate(
        self, key_frame: torch.Tensor, reference: dict[str, Any], features: torch.Tensor
    ) -> torch.Tensor:
        source_feature = reference["feature"]
        driving = self._input(features).reshape(-1, *source_feature.shape[1:])
        out = self.networks["generator"](
            self._input(key_frame), source_feature, driving, reference["prepared"]
        )
        return out["prediction"]
