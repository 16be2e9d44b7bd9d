"""The reference packages' own LPIPS and DISTS objects, independent of ctc.metrics.perceptual.

Each is built by its package's constructor, which loads the package's own learned weights (lpips's
version 0.1 linear layers, DISTS-pytorch's alpha/beta). The one thing handed to them is the ImageNet
VGG16 they would download (no internet here): torchvision's own ``vgg16().features`` holding the
backbone weights that :mod:`ctc.metrics.weights` resolves, loaded by torchvision's layer names.
"""

from __future__ import annotations

from types import SimpleNamespace
from unittest import mock

import DISTS_pytorch
import lpips
import torchvision
from torch import nn

from ctc.metrics.weights import backbone_state_dict


def imagenet_vgg16_features() -> nn.Sequential:
    features = torchvision.models.vgg16(weights=None).features
    state = {key.removeprefix("features."): value for key, value in backbone_state_dict("vgg16").items()}
    features.load_state_dict(state, strict=True)
    return features.eval()


def package_lpips_vgg_and_dists() -> tuple[lpips.LPIPS, DISTS_pytorch.DISTS]:
    """``lpips.LPIPS(net="vgg")`` and ``DISTS_pytorch.DISTS()``, in eval mode."""
    features = imagenet_vgg16_features()

    def vgg16(*args: object, **kwargs: object) -> SimpleNamespace:
        return SimpleNamespace(features=features)

    with mock.patch.object(torchvision.models, "vgg16", vgg16):
        lpips_vgg = lpips.LPIPS(net="vgg", version="0.1", verbose=False)
        dists = DISTS_pytorch.DISTS()
    return lpips_vgg.eval(), dists.eval()
