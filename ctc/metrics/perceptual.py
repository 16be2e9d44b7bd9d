"""DISTS and LPIPS: the reference packages' models with their own weights and the resolved backbones.

``lpips`` and ``DISTS-pytorch`` ask ``torchvision.models`` for an ImageNet VGG16 / AlexNet (a download).
While they build, :func:`_reference_model` hands them a stand-in for ``torchvision.models`` whose networks
already hold the weights from :mod:`ctc.metrics.weights`, built on the meta device first so that nothing
is ever randomly initialised or downloaded. Every parameter of the finished model is then loaded strictly
from a named source (backbone, LPIPS linear layers, DISTS alpha/beta); a parameter without one is an error.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace
from unittest import mock

import DISTS_pytorch
import DISTS_pytorch.DISTS_pt
import lpips
import lpips.pretrained_networks
import numpy as np
import torch
import torchvision
from torch import nn

from ctc.metrics import FrameBatch, Metric, register_metric
from ctc.metrics.weights import BACKBONES, WeightsError, backbone_state_dict

Features = list[torch.Tensor]  # a backbone's feature maps of a batch, one tensor per layer
DISTS_WEIGHTS = Path(DISTS_pytorch.__file__).parent / "weights.pt"
LPIPS_BACKBONES = {"vgg": "vgg16", "alex": "alexnet"}


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
    where = {index: f"{prefix}{slice_name}.{index}"
             for slice_name, part in root.named_children() for index, _ in part.named_children()}
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
        raise WeightsError(f"{type(model).__name__}: parameters without weights {sorted(missing)}, "
                           f"weights without parameter {sorted(unexpected)}")
    model.load_state_dict({**model.state_dict(), **learned}, strict=True)


def _reference_model(package_module: ModuleType, attribute: str, build: Callable[[], nn.Module]) -> nn.Module:
    with mock.patch.object(package_module, attribute, _ResolvedTorchvisionModels()):
        return build()


def build_lpips(net: str) -> lpips.LPIPS:
    """LPIPS version 0.1 (``net`` = ``vgg`` or ``alex``) with its linear layers and ImageNet backbone."""
    backbone = LPIPS_BACKBONES[net]
    model = _reference_model(lpips.pretrained_networks, "tv", lambda: lpips.LPIPS(
        net=net, version="0.1", pretrained=True, pnet_rand=True,
        model_path=str(lpips_linear_weights_file(net)), verbose=False))
    linear = torch.load(lpips_linear_weights_file(net), map_location="cpu", weights_only=True)
    _load_strictly(model, {**_sliced_backbone(model, "net", backbone), **linear})
    return model.eval()


def build_dists() -> DISTS_pytorch.DISTS:
    """DISTS with the ``DISTS-pytorch`` package's alpha/beta (``weights.pt``) and the ImageNet VGG16."""
    model = _reference_model(DISTS_pytorch.DISTS_pt, "models",
                             lambda: DISTS_pytorch.DISTS(load_weights=False))
    alpha_beta = torch.load(DISTS_WEIGHTS, map_location="cpu", weights_only=True)
    _load_strictly(model, {**_sliced_backbone(model, "", "vgg16"), **alpha_beta})
    return model.eval()


class PerceptualMetric(Metric):
    """A VGG/AlexNet metric. It runs channels-last (NHWC): oneDNN on the CPU and cuDNN then skip the layout
    conversions around every convolution, which with batches of frames is what makes batching pay.

    Besides the reference package's own forward (:meth:`distance`), the metric splits into the backbone
    pass of one image (:meth:`features`) and the distance between two images' features
    (:meth:`distance_from_features`), the same operations in the same order, so that a reference frame's
    features serve every decoded version of it (:mod:`ctc.metrics.shared`)."""

    lower_is_better = True
    shares_reference = True

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device)
        self.model = self.build().to(device, memory_format=torch.channels_last)
        self.backbone_frames = 0  # frames through the backbone so far (make bench counts the passes)

    def build(self) -> nn.Module:
        raise NotImplementedError

    def distance(self, reference: torch.Tensor, distorted: torch.Tensor) -> torch.Tensor:
        """Per-frame distances of float32 batches in [0, 1]."""
        raise NotImplementedError

    def features(self, frames: torch.Tensor) -> Features:
        """The backbone features of float32 frames in [0, 1] the distance needs, as the package makes them."""
        raise NotImplementedError

    def distance_from_features(self, reference: Features, distorted: Features) -> torch.Tensor:
        """Per-frame distances from both images' :meth:`features`."""
        raise NotImplementedError

    def _channels_last(self, batch: FrameBatch) -> tuple[torch.Tensor, torch.Tensor]:
        reference, distorted = batch.tensors(self.device)
        return (reference.contiguous(memory_format=torch.channels_last),
                distorted.contiguous(memory_format=torch.channels_last))

    def score_batch(self, batch: FrameBatch) -> np.ndarray:
        reference, distorted = self._channels_last(batch)
        with torch.inference_mode():
            values = self.distance(reference, distorted)
        self.backbone_frames += 2 * len(batch)
        return values.reshape(-1).double().cpu().numpy()

    def reference_features(self, batch: FrameBatch) -> Features:
        """The features of ``batch``'s reference frames, to score several decoded versions against."""
        with torch.inference_mode():
            features = self.features(self._channels_last(batch)[0])
        self.backbone_frames += len(batch)
        return features

    def score_against(self, reference: Features, batch: FrameBatch) -> np.ndarray:
        """Per-frame values of ``batch``'s decoded frames against :meth:`reference_features`."""
        with torch.inference_mode():
            values = self.distance_from_features(reference, self.features(self._channels_last(batch)[1]))
        self.backbone_frames += len(batch)
        return values.reshape(-1).double().cpu().numpy()


class Lpips(PerceptualMetric):
    net: str

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.backbones = (LPIPS_BACKBONES[cls.net],)
        cls.description = (f"LPIPS v0.1 with {cls.net.upper() if cls.net == 'vgg' else 'AlexNet'} "
                           "(lpips package), RGB scaled to [-1, 1], spatial average; lower is better")

    def build(self) -> nn.Module:
        return build_lpips(self.net)

    def distance(self, reference: torch.Tensor, distorted: torch.Tensor) -> torch.Tensor:
        return self.model(reference, distorted, normalize=True)  # normalize: [0, 1] -> [-1, 1]

    def features(self, frames: torch.Tensor) -> Features:
        # lpips.LPIPS.forward(normalize=True): [0, 1] -> [-1, 1], its scaling layer, the backbone, and each
        # layer's unit-normalised channels
        outputs = self.model.net.forward(self.model.scaling_layer(2 * frames - 1))
        return [lpips.normalize_tensor(outputs[layer]) for layer in range(self.model.L)]

    def distance_from_features(self, reference: Features, distorted: Features) -> torch.Tensor:
        # lpips.LPIPS.forward with lpips=True, spatial=False: the per-layer linear layers on the squared
        # differences, spatially averaged, summed over layers in order
        value = 0
        for layer, linear in enumerate(self.model.lins):
            difference = (reference[layer] - distorted[layer]) ** 2
            value += lpips.lpips.spatial_average(linear(difference), keepdim=True)
        return value


@register_metric("lpips")
class LpipsVgg(Lpips):
    net = "vgg"


@register_metric("lpips_alex")
class LpipsAlex(Lpips):
    net = "alex"


@register_metric("dists")
class Dists(PerceptualMetric):
    description = "DISTS (DISTS-pytorch 0.1 weights), RGB in [0, 1], full resolution; lower is better"
    backbones = ("vgg16",)

    def build(self) -> nn.Module:
        return build_dists()

    def distance(self, reference: torch.Tensor, distorted: torch.Tensor) -> torch.Tensor:
        return self.model(reference, distorted)

    def features(self, frames: torch.Tensor) -> Features:
        return self.model.forward_once(frames)  # the image and the five VGG stages' maps

    def distance_from_features(self, reference: Features, distorted: Features) -> torch.Tensor:
        # DISTS.forward of DISTS-pytorch after its two forward_once calls; the covariance needs both maps
        model, c1, c2 = self.model, 1e-6, 1e-6
        structure, texture = 0, 0
        weight_sum = model.alpha.sum() + model.beta.sum()
        alpha = torch.split(model.alpha / weight_sum, model.chns, dim=1)
        beta = torch.split(model.beta / weight_sum, model.chns, dim=1)
        for k in range(len(model.chns)):
            x_mean = reference[k].mean([2, 3], keepdim=True)
            y_mean = distorted[k].mean([2, 3], keepdim=True)
            s1 = (2 * x_mean * y_mean + c1) / (x_mean**2 + y_mean**2 + c1)
            structure = structure + (alpha[k] * s1).sum(1, keepdim=True)
            x_var = ((reference[k] - x_mean) ** 2).mean([2, 3], keepdim=True)
            y_var = ((distorted[k] - y_mean) ** 2).mean([2, 3], keepdim=True)
            xy_cov = (reference[k] * distorted[k]).mean([2, 3], keepdim=True) - x_mean * y_mean
            s2 = (2 * xy_cov + c2) / (x_var + y_var + c2)
            texture = texture + (beta[k] * s2).sum(1, keepdim=True)
        return 1 - (structure + texture).squeeze()
