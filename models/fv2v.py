"""FV2V (face-vid2vid) as the GFVC common software runs it: zhanglonghao1992's "beta" revision.

Networks (state-dict layout of the public ``FV2V-checkpoint.pth.tar``):

* ``KPDetector`` (:mod:`models.fv2v_keypoints`): 15 canonical 3-D keypoints ``(B, 15, 3)``
  ((x, y, z) in [-1, 1]) as the expected position of a softmax heatmap over a ``(D, H, W)`` volume
  (2-D encoder, reshape, 3-D decoder).
* ``HEEstimator`` (:mod:`models.fv2v_pose`): a ResNet-50-like head-pose estimator: yaw, pitch and
  roll as 66-bin logits, translation ``t`` (3) and expression deltas ``exp`` (45).
* ``OcclusionAwareGenerator`` (:mod:`models.fv2v_generator`): the key frame's 2-D features reshaped
  to a 3-D volume, warped by a dense 3-D motion field that a 3-D hourglass predicts from the source
  and driving keypoints, then projected back to 2-D and decoded.

The keypoints of a frame are ``R kp_canonical + t + exp``; the GFVC encoder codes per frame the 57
floats ``[R row-major (9), t (3), exp (45)]``. Upstream quirks kept because the checkpoint was
trained with them (``../shared/golden/README.md`` 5.3): ``yaw`` comes from layer ``fc_roll`` and
``roll`` from ``fc_yaw``; degrees become radians with ``3.14``; the beta rotation is
``R = Rx(roll) Ry(pitch) Rz(yaw)``. ``variant: head`` gives the code of zhanglonghao's HEAD instead
(``R = Rx(pitch) Ry(yaw) Rz(roll)``, nearest 3-D upsampling, pooled 3-D downsampling).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.blocks3d import check_variant
from models.fv2v_generator import OcclusionAwareGenerator
from models.fv2v_keypoints import KPDetector, transform_keypoints
from models.fv2v_pose import HEEstimator, head_pose_rotation
from models.registry import NetworkModel, load_model_config, register_model

FEATURE_SIZE = 57  # rotation matrix (9), translation (3), expression (45)


@dataclass
class Fv2vReference:
    """What the decoder computes once from the decoded key frame."""

    kp_canonical: torch.Tensor  # (1, K, 3)
    kp_source: torch.Tensor  # (1, K, 3): the key frame's own transformed keypoints
    source_features: torch.Tensor  # (1, C, D, h, w): the generator's feature volume of the key frame


def split_features(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(B, 57)`` -> rotation ``(B, 3, 3)``, translation ``(B, 3)``, expression ``(B, 45)``."""
    if features.ndim != 2 or features.shape[1] != FEATURE_SIZE:
        raise ValueError(f"FV2V features must be (B, {FEATURE_SIZE}), got {tuple(features.shape)}")
    return features[:, :9].reshape(-1, 3, 3), features[:, 9:12], features[:, 12:]


@register_model("fv2v")
class FV2V(NetworkModel):
    """FV2V as a GFVC codec model: features are ``[R row-major (9), t (3), exp (45)]`` per frame.

    The config's ``variant`` (``beta``, the GFVC default, or ``head``) picks the code revision.
    """

    feature_size = FEATURE_SIZE

    @classmethod
    def build_networks(cls, model_params: Mapping[str, Any], variant: str = "beta") -> dict[str, nn.Module]:
        """Each network as upstream builds it: ``Class(**<sub>_params, **common_params)``."""
        variant = check_variant(variant)
        common = model_params["common_params"]
        return {
            "kp_detector": KPDetector(**model_params["kp_detector_params"], **common, variant=variant),
            "he_estimator": HEEstimator(**model_params["he_estimator_params"], **common),
            "generator": OcclusionAwareGenerator(
                **model_params["generator_params"], **common, variant=variant
            ),
        }

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any] | None = None,
        weights: str | Path | None = None,
        device: str | torch.device = "cpu",
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        **options: Any,
    ) -> FV2V:
        """As ``NetworkModel.from_config``; the variant comes from the config unless given."""
        config = dict(config) if config is not None else load_model_config(cls.name)
        options.setdefault("variant", config.get("variant", "beta"))
        return super().from_config(config, weights, device, seed, dtype, **options)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.variant = self.networks["generator"].variant

    @torch.no_grad()
    def extract_features(self, frames: torch.Tensor) -> torch.Tensor:
        he = self.networks["he_estimator"](self._input(frames))
        return torch.cat([head_pose_rotation(he, self.variant).flatten(1), he["t"], he["exp"]], dim=1)

    @torch.no_grad()
    def prepare_reference(self, key_frame: torch.Tensor) -> Fv2vReference:
        key_frame = self._input(key_frame)
        kp_canonical = self.networks["kp_detector"](key_frame)["value"]
        kp_source = transform_keypoints(kp_canonical, *split_features(self.extract_features(key_frame)))
        return Fv2vReference(
            kp_canonical, kp_source["value"], self.networks["generator"].encode_source(key_frame)
        )

    @torch.no_grad()
    def generate(
        self, key_frame: torch.Tensor, reference: Fv2vReference, features: torch.Tensor
    ) -> torch.Tensor:
        """``key_frame`` is not needed again: ``reference`` holds its feature volume."""
        bs = features.shape[0]
        kp_driving = transform_keypoints(
            reference.kp_canonical.expand(bs, -1, -1), *split_features(self._input(features))
        )
        out = self.networks["generator"](
            None, kp_driving, {"value": reference.kp_source}, source_features=reference.source_features
        )
        return out["prediction"]
