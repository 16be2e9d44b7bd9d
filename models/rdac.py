"""RDAC (Konuko et al., ICIP 2023): DAC's animation as the predictor, the residual coded by a learned
codec, as Goluck-Konuko/GFVC packages it.

The generator is DAC's plus two residual coders (:mod:`models.residual_coder`): ``sdc`` codes the
first inter frame's residual ``frame - animation`` after a key frame, ``tdc`` later ones as
``(frame - animation - warped previous residual) / 2``, the previous decoded residual being warped
by the dense motion from the previous keypoints to the current ones on the previous output frame
(:meth:`GeneratorRDAC.deform_residual`). The sequential coding itself is ``models/rdac_codec.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from models.dac import KPD, GeneratorDAC, KeypointModel, Keypoints, deform_input
from models.registry import register_model
from models.residual_coder import ResidualCoder


class GeneratorRDAC(GeneratorDAC):
    """DAC's generator followed by the spatial (``sdc``) and temporal (``tdc``) residual coders."""

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
        residual_coder_params: Mapping[str, Any] | None = None,
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
        )
        params = dict(residual_coder_params or {})
        if not params.get("variable_bitrate", True):
            raise ValueError("RDAC without variable_bitrate is not supported (the public model has it)")
        n = int(params["residual_features"])
        for name in ("sdc", "tdc"):
            coder = ResidualCoder(
                num_channels,
                num_channels,
                n,
                int(1.5 * n),
                int(params["levels"]),
                int(params["num_intermediate_layers"]),
            )
            setattr(self, name, coder)

    def deform_residual(
        self,
        previous_frame: torch.Tensor,
        kp_previous: Keypoints,
        kp_current: Keypoints,
        previous_residual: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The previous decoded residual warped to the current frame, and the deformation used."""
        motion = self.dense_motion_network(previous_frame, kp_current, kp_previous)
        return deform_input(previous_residual, motion["deformation"]), motion["deformation"]


@register_model("rdac")
class RDAC(KeypointModel):
    """RDAC as a GFVC codec model: keypoints as DAC (the animation), plus the residual coders that
    ``models/rdac_codec.py`` drives. The CDF tables are rebuilt from the weights after loading, in
    float32 before any cast (upstream's loader order)."""

    @classmethod
    def build_networks(cls, model_params: Mapping[str, Any]) -> dict[str, nn.Module]:
        common = model_params["common_params"]
        return {
            "kp_detector": KPD(**model_params["kp_detector_params"], **common),
            "generator": GeneratorRDAC(**model_params["generator_params"], **common),
        }

    def __init__(self, networks: Mapping[str, nn.Module], *args: Any, **kwargs: Any):
        for coder in (networks["generator"].sdc, networks["generator"].tdc):
            coder.float().update_tables()
        super().__init__(networks, *args, **kwargs)

    @property
    def generator(self) -> GeneratorRDAC:
        return self.networks["generator"]

    @torch.no_grad()
    def generate(
        self, key_frame: torch.Tensor, reference: dict[str, Any], features: torch.Tensor
    ) -> torch.Tensor:
        """The animation alone (the prediction the residual corrects)."""
        kp_target = self.features_to_kp(features)
        out = self.generator(
            self._input(key_frame), reference["kp"], kp_target, reference_features=reference["features"]
        )
        return out["prediction"]

    @torch.no_grad()
    def decoder_pass(
        self, key_frame: torch.Tensor, reference: dict[str, Any], features: torch.Tensor, frame: torch.Tensor
    ) -> torch.Tensor:
        """A temporal frame: animation, residual warp, and the residual's hyper-synthesis and synthesis."""
        coder = self.generator.tdc
        animation = self.generate(key_frame, reference, features)
        kp = self.features_to_kp(features)
        warped, _ = self.generator.deform_residual(animation, kp, kp, animation)
        height, width = frame.shape[2:]
        z_hat = frame.new_zeros(1, coder.entropy_bottleneck.channels, height // 128, width // 128)
        y_hat = coder.h_s(self._input(z_hat)).chunk(2, 1)[1]
        return animation + warped + coder.g_s(y_hat)

    @torch.no_grad()
    def encoder_pass(self, frame: torch.Tensor) -> torch.Tensor:
        """Features, the decoder's work (closed loop), and the residual's analysis and hyper-analysis."""
        features = self.extract_features(frame)
        reference = self.prepare_reference(frame)
        decoded = self.decoder_pass(frame, reference, features, frame)
        return self.generator.tdc.h_a(self.generator.tdc.analysis(self._input(frame) - decoded))
