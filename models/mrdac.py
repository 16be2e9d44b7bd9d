"""MRDAC (Konuko et al., "Multi-Reference Generative Face Video Compression with Contrastive
Learning", MMSP 2024): DAC's networks animating several decoded reference frames at once.

Each reference's features are warped to the target keypoints by DAC's dense motion (bilinear
anti-aliased downscaling, HDAC's variant), multiplied by the occlusion map, passed through two
residual blocks (``aggregation``), optionally weighted by the reference's distance to the target,
then fused by an element-wise maximum over the references; the bottleneck ends in a SameBlock2d and
``final`` is a plain 7x7 conv followed by a sigmoid (golden README-dac-family section 9; upstream:
Goluck-Konuko/animation-based-codecs ``models/mrdac/``). The reference policy and the keypoint
coder are :mod:`models.mrdac_policy` and :mod:`models.mrdac_kp`; the codec ``models/mrdac_codec.py``.

Upstream's generator also holds its transformer reference coder (TIC, ``ref_coder.*``); ours codes
references with the harness's picture codec, so those checkpoint entries are skipped by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from models.blocks import ResBlock2d, SameBlock2d
from models.dac import KPD, GeneratorDAC, KeypointModel, Keypoints
from models.registry import register_model


class KpdMRDAC(KPD):
    """DAC's keypoint detector whose head ``kp`` is a plain conv (key ``kp.weight``) and whose
    downscaling is bilinear."""

    def __init__(
        self,
        block_expansion: int,
        num_kp: int,
        num_channels: int,
        max_features: int,
        num_blocks: int,
        temperature: float,
        scale_factor: float = 1,
        **_unused: Any,
    ):
        super().__init__(
            block_expansion,
            num_kp,
            num_channels,
            max_features,
            num_blocks,
            temperature,
            scale_factor,
            bilinear_downscale=True,
        )
        self.kp = nn.Conv2d(self.predictor.out_filters, num_kp, kernel_size=7, padding=3)


def reference_weights(reference_indices: Sequence[int], target_index: int) -> torch.Tensor:
    """Distance weights ``(K,)`` float32: ``d = |r - t|``, ``w = 1 - d / max d + 0.5``, ``w / max w``
    (the nearest reference gets 1, a single one 1.0), in upstream's float32 arithmetic."""
    indices = torch.tensor([*reference_indices, target_index], dtype=torch.int64)
    distance = torch.abs(indices[:-1] - indices[-1])
    weights = (1 - distance / torch.max(distance)) + 0.5
    return weights / torch.max(weights)


class GeneratorMRDAC(GeneratorDAC):
    """DAC's dense motion and autoencoder, the ``aggregation`` blocks and the max fusion."""

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
        self.add_autoencoder_layers(
            num_channels, block_expansion, max_features, num_down_blocks, num_bottleneck_blocks, bilinear=True
        )
        width = block_expansion * 2**num_down_blocks
        self.bottleneck.add_module("out", SameBlock2d(width, width, kernel_size=3, padding=1))
        self.aggregation = nn.Sequential()
        for name in ("r_1", "r_2"):
            self.aggregation.add_module(name, ResBlock2d(width, kernel_size=3, padding=1))

    def animated_frame_decoder(self, x: torch.Tensor) -> torch.Tensor:
        """Up blocks, ``final`` conv, sigmoid."""
        for block in self.up_blocks:
            x = block(x)
        return torch.sigmoid(self.final(x))

    def deform_reference(self, reference: Mapping[str, Any], kp_target: Keypoints) -> dict[str, torch.Tensor]:
        """One reference's features warped to the target, occluded and aggregated, with the motion."""
        deformed, motion = self.motion_compensation(
            reference["frame"], reference["features"], kp_target, reference["kp"]
        )
        return {**motion, "deformed_features": deformed, "aggregation_out": self.aggregation(deformed)}

    def fuse(
        self,
        references: Sequence[Mapping[str, Any]],
        kp_target: Keypoints,
        weights: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """The frame animated from every reference (upstream ``generate_animation``), with its
        intermediates; ``weights`` ``(B, K)`` multiply each reference's aggregated features.

        Upstream casts the running maximum to float32 (``.float()``), which fails in float64 with
        two or more references; the cast is a no-op in float32, so it is left out.
        """
        per_reference = [self.deform_reference(reference, kp_target) for reference in references]
        return self.combine(per_reference, weights)

    def combine(
        self, per_reference: Sequence[Mapping[str, torch.Tensor]], weights: torch.Tensor | None = None
    ) -> dict[str, Any]:
        """The weighted maximum of the references' aggregated features, bottleneck and decoder."""
        fused = None
        for index, out in enumerate(per_reference):
            features = out["aggregation_out"]
            if weights is not None:
                features = features * weights[:, index].to(features.dtype).view(-1, 1, 1, 1)
            fused = features if fused is None else torch.max(fused, features)
        bottleneck_out = self.bottleneck(fused)
        return {
            "references": per_reference,
            "max_aggregated": fused,
            "bottleneck_out": bottleneck_out,
            "prediction": self.animated_frame_decoder(bottleneck_out),
        }


@register_model("mrdac")
class MRDAC(KeypointModel):
    """MRDAC as a GFVC codec model. A reference (:meth:`prepare_reference`) is the decoded frame, its
    features and its keypoints; :meth:`animate` fuses any number of them."""

    unused_checkpoint_prefixes: ClassVar[dict[str, tuple[str, ...]]] = {"generator": ("ref_coder.",)}

    @classmethod
    def build_networks(cls, model_params: Mapping[str, Any]) -> dict[str, nn.Module]:
        common = model_params["common_params"]
        return {
            "kp_detector": KpdMRDAC(**model_params["kp_detector_params"], **common),
            "generator": GeneratorMRDAC(**model_params["generator_params"], **common),
        }

    @property
    def generator(self) -> GeneratorMRDAC:
        return self.networks["generator"]

    @torch.no_grad()
    def prepare_reference(self, key_frame: torch.Tensor) -> dict[str, Any]:
        """A decoded reference frame with its features and keypoints (from the decoded frame)."""
        frame = self._input(key_frame)
        return {
            "frame": frame,
            "kp": self.networks["kp_detector"](frame),
            "features": self.generator.encode(frame),
        }

    @torch.no_grad()
    def animate(
        self,
        references: Sequence[Mapping[str, Any]],
        features: torch.Tensor,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Frames ``(B, 3, H, W)`` from the references and the targets' keypoint features ``(B, D)``."""
        return self.generator.fuse(references, self.features_to_kp(features), weights)["prediction"]

    def generate(
        self, key_frame: torch.Tensor, reference: Mapping[str, Any], features: torch.Tensor
    ) -> torch.Tensor:
        """One reference (weight 1, as upstream gives a single reference)."""
        return self.animate([reference], features)

    def complexity_cases(
        self, frame: torch.Tensor, reference: Mapping[str, Any], features: torch.Tensor
    ) -> dict[str, Callable[[], Any]]:
        """The decoder's work for one inter frame with 2, 3 and 4 references (``ctc-complexity``; its
        ``decoder`` is one reference)."""
        return {
            f"decoder, {count} references": (
                lambda count=count: self.animate(
                    [reference] * count, features, reference_weights(range(count), count)[None]
                )
            )
            for count in (2, 3, 4)
        }
