"""HDAC (Konuko et al., ICIP 2022): DAC's animation fused with a low-quality base layer.

The generator encodes the decoded base-layer frame with its own encoder (``base``,
``base_down_blocks``), concatenates those features after the warped key-frame features, fuses them
in a residual bottleneck of twice the width (``main_bottleneck``), reduces them back
(``bt_output_layer``) and decodes as DAC does. HDAC's anti-aliased downscaling is bilinear with
``align_corners=True`` (its ``train_utils`` copy), not DAC's strided subsampling.

As a GFVC codec model the base-layer frame travels with the features: :meth:`HDAC.generate` takes
``features`` ``(B, 2K)`` and the base-layer frames ``(B, 3, H, W)`` in [0, 1] as ``base_layer``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from models.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d
from models.dac import KPD, ConvHead, GeneratorDAC, KeypointModel, Keypoints
from models.registry import register_model


def _down_blocks(block_expansion: int, max_features: int, count: int) -> nn.ModuleList:
    widths = [min(max_features, block_expansion * 2**i) for i in range(count + 1)]
    return nn.ModuleList(DownBlock2d(widths[i], widths[i + 1]) for i in range(count))


class GeneratorHDAC(GeneratorDAC):
    """DAC's generator with a base-layer encoder and a fusion bottleneck (upstream ``GeneratorHDAC``)."""

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
        **_unused: Any,
    ):
        super().__init__(
            num_channels,
            num_kp,
            block_expansion,
            max_features,
            num_down_blocks,
            num_bottleneck_blocks,
            estimate_occlusion_map,
            dense_motion_params,
            bilinear_downscale=True,
            autoencoder=False,
        )
        # registered in upstream's order, which is the checkpoint's key order
        self.first = SameBlock2d(num_channels, block_expansion, kernel_size=7, padding=3)
        self.down_blocks = _down_blocks(block_expansion, max_features, num_down_blocks)
        self.base = SameBlock2d(num_channels, block_expansion, kernel_size=7, padding=3)
        self.base_down_blocks = _down_blocks(block_expansion, max_features, num_down_blocks)
        fused = 2 * block_expansion * 2**num_down_blocks
        self.main_bottleneck = nn.ModuleList(ResBlock2d(fused) for _ in range(num_bottleneck_blocks))
        self.bt_output_layer = SameBlock2d(fused, fused // 2)
        widths = [min(max_features, block_expansion * 2**i) for i in range(num_down_blocks + 1)]
        self.up_blocks = nn.ModuleList(
            UpBlock2d(widths[i + 1], widths[i], bilinear=True) for i in reversed(range(num_down_blocks))
        )
        self.final = ConvHead(block_expansion, num_channels, "sigmoid")

    def base_layer_features(self, base_layer: torch.Tensor) -> torch.Tensor:
        out = self.base(base_layer)
        for block in self.base_down_blocks:
            out = block(out)
        return out

    def forward(
        self,
        reference_frame: torch.Tensor,
        kp_reference: Keypoints,
        kp_target: Keypoints,
        base_layer: torch.Tensor,
        reference_features: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``predict`` of upstream with its intermediates; ``base_layer`` ``(B, 3, H, W)`` in [0, 1]
        (upstream's decoder passes a zero image when the base layer is off)."""
        ref_fts = self.encode(reference_frame) if reference_features is None else reference_features
        bl_fts = self.base_layer_features(base_layer)
        def_ref_fts, motion = self.motion_compensation(reference_frame, ref_fts, kp_target, kp_reference)
        fused = torch.cat([def_ref_fts, bl_fts], dim=1)
        for block in self.main_bottleneck:
            fused = block(fused)
        bt_output = self.bt_output_layer(fused)
        return {
            **motion,
            "ref_fts": ref_fts,
            "bl_fts": bl_fts,
            "def_ref_fts": def_ref_fts,
            "main_bottleneck_out": fused,
            "bt_output": bt_output,
            "prediction": self.animated_frame_decoder(bt_output),
        }


@register_model("hdac")
class HDAC(KeypointModel):
    """HDAC as a GFVC codec model: DAC's keypoints plus a base-layer frame per generated frame."""

    @classmethod
    def build_networks(cls, model_params: Mapping[str, Any]) -> dict[str, nn.Module]:
        common = model_params["common_params"]
        return {
            "kp_detector": KPD(**model_params["kp_detector_params"], **common, bilinear_downscale=True),
            "generator": GeneratorHDAC(**model_params["generator_params"], **common),
        }

    @torch.no_grad()
    def generate(
        self,
        key_frame: torch.Tensor,
        reference: dict[str, Any],
        features: torch.Tensor,
        base_layer: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if base_layer is None:
            raise ValueError("HDAC animates from keypoints and base-layer frames: base_layer is missing")
        kp_target = self.features_to_kp(features)
        out = self.networks["generator"](
            self._input(key_frame),
            reference["kp"],
            kp_target,
            self._input(base_layer),
            reference_features=reference["features"],
        )
        return out["prediction"]

    def decoder_pass(
        self, key_frame: torch.Tensor, reference: dict[str, Any], features: torch.Tensor, frame: torch.Tensor
    ) -> torch.Tensor:
        return self.generate(key_frame, reference, features, base_layer=frame)
