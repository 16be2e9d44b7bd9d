"""FV2V (face-vid2vid) as the GFVC common software runs it: zhanglonghao1992's "beta" revision.

Networks (state-dict layout of the public ``FV2V-checkpoint.pth.tar``):

* ``KPDetector``: 15 canonical 3-D keypoints ``(B, 15, 3)`` ((x, y, z) in [-1, 1]) as the expected
  position of a softmax heatmap over a ``(D, H, W)`` volume (2-D encoder, reshape, 3-D decoder).
* ``HEEstimator``: a ResNet-50-like head-pose estimator: yaw, pitch and roll as 66-bin logits,
  translation ``t`` (3) and expression deltas ``exp`` (45).
* ``OcclusionAwareGenerator``: the key frame's 2-D features reshaped to a 3-D volume, warped by a
  dense 3-D motion field that a 3-D hourglass predicts from the source and driving keypoints, then
  projected back to 2-D and decoded.

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
import torch.nn.functional as F
from torch import nn

from models.blocks import (
    AntiAliasInterpolation2d,
    DownBlock2d,
    ResBlock2d,
    SameBlock2d,
    UpBlock2d,
    kp2gaussian,
    make_coordinate_grid,
)
from models.blocks3d import Hourglass3d, ResBlock3d, UpBlock3d, Variant, check_variant
from models.registry import NetworkModel, load_model_config, register_model

Keypoints = dict[str, torch.Tensor]
HeadPose = dict[str, torch.Tensor]
FEATURE_SIZE = 57  # rotation matrix (9), translation (3), expression (45)


def _no_jacobian(estimate_jacobian: bool) -> None:
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
        _no_jacobian(estimate_jacobian)
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


def transform_keypoints(
    kp_canonical: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor, expression: torch.Tensor
) -> Keypoints:
    """``R kp + t + exp`` for canonical keypoints ``(B, K, 3)``; ``t`` ``(B, 3)``, ``exp`` ``(B, 3K)``."""
    rotated = torch.einsum("bmp,bkp->bkm", rotation, kp_canonical)
    return {"value": rotated + translation.unsqueeze(1) + expression.view(expression.shape[0], -1, 3)}


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
        _no_jacobian(estimate_jacobian)
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
