"""DISTS and LPIPS: the reference packages' models with their own weights and the resolved backbones.

``lpips`` and ``DISTS-pytorch`` ask ``torchvision.models`` for an ImageNet VGG16 / AlexNet (a download).
While they build, :func:`_reference_model` hands them a stand-in for ``torchvision.models`` whose networks
already hold the weights from :mod:`ctc.metrics.weights`, built on the meta device first so that nothing
is ever randomly initialised or downloaded. Every parameter of the finished model is then loaded strictly
from a named source (backbone, LPIPS linear layers, DISTS alpha/beta); a parameter without one is an error.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, ClassVar
from unittest import mock

import DISTS_pytorch
import DISTS_pytorch.DISTS_pt
import lpips
import lpips.pretrained_networks
import numpy as np
import torch
import torchvision
from torch import nn

from ctc.devices import reuse_freed_memory
from ctc.metrics import FrameBatch, Metric, register_metric
from ctc.metrics.weights import BACKBONES, WeightsError, backbone_state_dict

Features = list[torch.Tensor]  # a backbone's feature maps of a batch, one tensor per layer
DISTS_WEIGHTS = Path(DISTS_pytorch.__file__).parent / "weights.pt"
LPIPS_BACKBONES = {"vgg": "vgg16", "alex": "alexnet"}
# lpips.normalize_tensor's eps (1e-10), read from the package
NORM_EPS = inspect.signature(lpips.normalize_tensor).parameters["eps"].default


def lpips_linear_weights_file(net: str) -> Path:
    """The ``lpips`` package's version 0.1 linear-layer weights for ``net``."""
    return Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"


def pretrained_features(backbone: str) -> nn.Sequential:
    """torchvision's ``features`` of ``backbone`` holding the resolved ImageNet weights."""
    with torch.device("meta"):
        features = getattr(torchvision.models, backbone)(weights=None).features
    state = {key.removeprefix("features."): value for key, value in backbone_state_dict(backbone).items()}
    features.load_state_dict(state, strict=True, assign=True)
    return features


class _ResolvedTorchvisionModels:
    """Stands in for ``torchvision.models`` inside a reference package while it builds its network."""

    def __getattr__(self, name: str) -> Callable[..., SimpleNamespace]:
        if name not in BACKBONES:
            raise AttributeError(f"the metric packages may only ask for {', '.join(BACKBONES)}, not {name}")
        return lambda *args, **kwargs: SimpleNamespace(features=pretrained_features(name))


def _sliced_backbone(model: nn.Module, container: str, backbone: str) -> dict[str, torch.Tensor]:
    """torchvision's ``features.<i>.*`` keys renamed to where layer ``<i>`` sits in ``container``'s slices.

    Both packages cut ``features`` into ``nn.Sequential`` slices whose children keep their index as name.
    """
    root = model.get_submodule(container) if container else model
    prefix = f"{container}." if container else ""
    where = {
        index: f"{prefix}{slice_name}.{index}"
        for slice_name, part in root.named_children()
        for index, _ in part.named_children()
    }
    renamed = {}
    for key, value in backbone_state_dict(backbone).items():
        _, index, parameter = key.split(".")
        if index not in where:
            raise WeightsError(f"{type(model).__name__} has no layer for {backbone} {key}")
        renamed[f"{where[index]}.{parameter}"] = value
    return renamed


def _load_strictly(model: nn.Module, learned: dict[str, torch.Tensor]) -> None:
    """Load ``learned`` strictly; it must cover every parameter of ``model`` (buffers are fixed constants)."""
    parameters = set(dict(model.named_parameters()))
    missing, unexpected = parameters - set(learned), set(learned) - parameters
    if missing or unexpected:
        raise WeightsError(
            f"{type(model).__name__}: parameters without weights {sorted(missing)}, "
            f"weights without parameter {sorted(unexpected)}"
        )
    model.load_state_dict({**model.state_dict(), **learned}, strict=True)


def _reference_model(package_module: ModuleType, attribute: str, build: Callable[[], nn.Module]) -> nn.Module:
    with mock.patch.object(package_module, attribute, _ResolvedTorchvisionModels()):
        return build()


def build_lpips(net: str) -> lpips.LPIPS:
    """LPIPS version 0.1 (``net`` = ``vgg`` or ``alex``) with its linear layers and ImageNet backbone."""
    backbone = LPIPS_BACKBONES[net]
    model = _reference_model(
        lpips.pretrained_networks,
        "tv",
        lambda: lpips.LPIPS(
            net=net,
            version="0.1",
            pretrained=True,
            pnet_rand=True,
            model_path=str(lpips_linear_weights_file(net)),
            verbose=False,
        ),
    )
    linear = torch.load(lpips_linear_weights_file(net), map_location="cpu", weights_only=True)
    _load_strictly(model, {**_sliced_backbone(model, "net", backbone), **linear})
    return model.eval()


def build_dists() -> DISTS_pytorch.DISTS:
    """DISTS with the ``DISTS-pytorch`` package's alpha/beta (``weights.pt``) and the ImageNet VGG16."""
    model = _reference_model(
        DISTS_pytorch.DISTS_pt, "models", lambda: DISTS_pytorch.DISTS(load_weights=False)
    )
    alpha_beta = torch.load(DISTS_WEIGHTS, map_location="cpu", weights_only=True)
    _load_strictly(model, {**_sliced_backbone(model, "", "vgg16"), **alpha_beta})
    return model.eval()


class PerceptualMetric(Metric):
    """A VGG/AlexNet metric: the backbone pass of each image (:meth:`features`), then the distance between
    two images' features (:meth:`distance_from_features`), the reference package's forward split in two, so
    that a reference frame's features serve every decoded version of it (:func:`ctc.metrics.score_versions`).

    The backbone's first layers are its :meth:`stem`; metrics with the same ``stem_key`` compute the same
    stem from the same frames, so a batch's stem output is made once for all of them (DISTS and LPIPS-VGG
    both begin with ImageNet-normalised VGG16 up to relu1_2, 17 % of a pass at 256x256). It runs
    channels-last (NHWC): oneDNN on the CPU and cuDNN then skip the layout conversions around every
    convolution, which with batches of frames is what makes batching pay."""

    lower_is_better = True
    shares_reference = True
    stem_key: ClassVar[str] = ""  # metrics with the same non-empty key share their stem's output per batch

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device)
        reuse_freed_memory()
        self.model = self.build().to(device, memory_format=torch.channels_last)
        self.backbone_frames = 0  # frames through the backbone so far (make bench counts the passes)

    def build(self) -> nn.Module:
        raise NotImplementedError

    def stem(self, frames: torch.Tensor) -> torch.Tensor:
        """The first layers' output for float32 frames in [0, 1] (the frames themselves by default)."""
        return frames

    def features(self, stem: torch.Tensor, frames: torch.Tensor) -> Features:
        """The backbone features the distance needs, from the :meth:`stem` output of ``frames``."""
        raise NotImplementedError

    def prepare_reference(self, features: Features) -> Any:
        """What :meth:`distance_from_features` needs of a reference's features, made once per reference
        frame for all its decoded versions (the features themselves by default)."""
        return features

    def distance_from_features(self, reference: Any, distorted: Features) -> torch.Tensor:
        """Per-frame distances from the reference's :meth:`prepare_reference` and the decoded frames'
        :meth:`features`."""
        raise NotImplementedError

    def _features(self, batch: FrameBatch, side: int) -> Features:
        """The features of ``batch``'s reference (``side`` 0) or decoded (1) frames."""
        frames = batch.tensors(self.device)[side].contiguous(memory_format=torch.channels_last)
        if self.stem_key:
            stem = batch.shared((self.stem_key, side, self.device), lambda: self.stem(frames))
        else:
            stem = self.stem(frames)
        self.backbone_frames += len(batch)
        return self.features(stem, frames)

    def score_batch(self, batch: FrameBatch) -> np.ndarray:
        return self.score_against(self.reference_features(batch), batch)

    def reference_features(self, batch: FrameBatch) -> Any:
        """``batch``'s reference frames prepared to score several decoded versions against."""
        with torch.inference_mode():
            return self.prepare_reference(self._features(batch, 0))

    def score_against(self, reference: Any, batch: FrameBatch) -> np.ndarray:
        """Per-frame values of ``batch``'s decoded frames against :meth:`reference_features`."""
        with torch.inference_mode():
            values = self.distance_from_features(reference, self._features(batch, 1))
        return values.reshape(-1).double().cpu().numpy()


# ImageNet normalisation and VGG16 features[0:4] (conv1_1, relu, conv1_2, relu): DISTS's stage1 on
# (x - mean) / std, LPIPS's slice1 on its scaling layer's ((2x - 1) - shift) / scale, which is the same
# affine map (shift = 2 mean - 1, scale = 2 std); both are computed as DISTS computes it, which changes
# LPIPS by float32 rounding only (the tests hold both packages' own values within 1e-6).
VGG16_STEM = "imagenet-normalised vgg16 relu1_2"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg16_stem(layers: nn.Module, frames: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, device=frames.device).view(1, -1, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=frames.device).view(1, -1, 1, 1)
    return layers((frames - mean) / std)


class Lpips(PerceptualMetric):
    net: str

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.backbones = (LPIPS_BACKBONES[cls.net],)
        cls.description = (
            f"LPIPS v0.1 with {cls.net.upper() if cls.net == 'vgg' else 'AlexNet'} "
            "(lpips package), RGB scaled to [-1, 1], spatial average; lower is better"
        )

    def build(self) -> nn.Module:
        return build_lpips(self.net)

    def features(self, stem: torch.Tensor, frames: torch.Tensor) -> Features:
        # lpips.LPIPS.forward(normalize=True): [0, 1] -> [-1, 1], its scaling layer, the backbone (its
        # slices in turn, as lpips.pretrained_networks does), and each layer's channels divided by their
        # norm plus 1e-10 (lpips.normalize_tensor, with torch's fused norm: one pass over the map)
        net = self.model.net
        outputs = [stem]
        for index in range(2, self.model.L + 1):
            outputs.append(getattr(net, f"slice{index}")(outputs[-1]))
        return [each / (torch.linalg.vector_norm(each, dim=1, keepdim=True) + NORM_EPS) for each in outputs]

    def distance_from_features(self, reference: Features, distorted: Features) -> torch.Tensor:
        # lpips.LPIPS.forward with lpips=True, spatial=False: each layer's linear layer (a 1x1 convolution
        # to one channel, no bias) on the squared differences, spatially averaged, summed over layers; the
        # average is taken per channel before the weighting (a linear map commutes with the mean), which
        # spares a full-size convolution output per layer
        value = 0
        for layer, linear in enumerate(self.model.lins):
            squared = torch.sub(reference[layer], distorted[layer]).square_().mean([2, 3], keepdim=True)
            value = value + linear(squared)
        return value


@register_metric("lpips")
class LpipsVgg(Lpips):
    net = "vgg"
    stem_key = VGG16_STEM

    def stem(self, frames: torch.Tensor) -> torch.Tensor:
        return vgg16_stem(self.model.net.slice1, frames)


@register_metric("lpips_alex")
class LpipsAlex(Lpips):
    net = "alex"

    def stem(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model.net.slice1(self.model.scaling_layer(2 * frames - 1))


@register_metric("dists")
class Dists(PerceptualMetric):
    description = "DISTS (DISTS-pytorch 0.1 weights), RGB in [0, 1], full resolution; lower is better"
    backbones = ("vgg16",)
    stem_key = VGG16_STEM

    def build(self) -> nn.Module:
        return build_dists()

    def stem(self, frames: torch.Tensor) -> torch.Tensor:
        return vgg16_stem(self.model.stage1, frames)

    def features(self, stem: torch.Tensor, frames: torch.Tensor) -> Features:
        # DISTS.forward_once: the image and the five VGG stages' maps
        outputs = [frames, stem]
        for stage in (self.model.stage2, self.model.stage3, self.model.stage4, self.model.stage5):
            outputs.append(stage(outputs[-1]))
        return outputs

    def prepare_reference(self, features: Features) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Each layer's map with its per-channel mean and variance, computed once per reference frame."""
        prepared = []
        for layer in features:
            mean = layer.mean([2, 3], keepdim=True)
            prepared.append((layer, mean, torch.sub(layer, mean).square_().mean([2, 3], keepdim=True)))
        return prepared

    def distance_from_features(
        self, reference: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], distorted: Features
    ) -> torch.Tensor:
        # DISTS.forward of DISTS-pytorch after its two forward_once calls, with the reference's statistics
        # from prepare_reference; the covariance needs both maps
        model, c1, c2 = self.model, 1e-6, 1e-6
        structure, texture = 0, 0
        weight_sum = model.alpha.sum() + model.beta.sum()
        alpha = torch.split(model.alpha / weight_sum, model.chns, dim=1)
        beta = torch.split(model.beta / weight_sum, model.chns, dim=1)
        for k, ((x, x_mean, x_var), y) in enumerate(zip(reference, distorted, strict=True)):
            y_mean = y.mean([2, 3], keepdim=True)
            s1 = (2 * x_mean * y_mean + c1) / (x_mean**2 + y_mean**2 + c1)
            structure = structure + (alpha[k] * s1).sum(1, keepdim=True)
            y_var = torch.sub(y, y_mean).square_().mean([2, 3], keepdim=True)
            xy_cov = torch.mul(x, y).mean([2, 3], keepdim=True) - x_mean * y_mean
            s2 = (2 * xy_cov + c2) / (x_var + y_var + c2)
            texture = texture + (beta[k] * s2).sum(1, keepdim=True)
        return 1 - (structure + texture).squeeze()
