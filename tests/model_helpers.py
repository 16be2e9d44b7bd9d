"""Helpers for the model tests: the golden manifests and tiny references in ../shared/golden."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from test_gfvc_codec import as_sequence, resized
from torch import nn

from ctc.testset.sequences import SequenceSpec, load_test_set
from models.base import GenerativeModel
from models.registry import NetworkModel, load_model_config

DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64}


def manifest(golden: Path) -> dict[str, Any]:
    return json.loads((golden / "manifest.json").read_text())


def tiny_params(golden: Path) -> dict[str, Any]:
    return json.loads((golden / "tiny" / "config.json").read_text())["model_params"]


def load_pt(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)


def layout(module: nn.Module) -> list[tuple[str, tuple[int, ...], str]]:
    """Ordered (key, shape, dtype) of a module's state dict, buffers included."""
    return [(k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in module.state_dict().items()]


def manifest_layout(entries: list[dict[str, Any]]) -> list[tuple[str, tuple[int, ...], str]]:
    return [(e["key"], tuple(e["shape"]), e["dtype"]) for e in entries]


Layout = list[tuple[str, tuple[int, ...], str]]


def against_manifest(
    module: nn.Module, info: dict[str, Any], name: str
) -> tuple[tuple[Layout, int], tuple[Layout, int]]:
    """(``module``'s state-dict layout and number of parameters, the manifest's for its network
    ``name``), for a test to compare."""
    built = layout(module), sum(p.numel() for p in module.parameters())
    return built, (manifest_layout(info["state_dicts"][name]), info["num_parameters"][name])


def networks_fixture(model: type[NetworkModel]) -> Any:
    """The module fixture ``real_networks``: ``model``'s networks built from the golden manifest's
    model_params (``real_networks = networks_fixture(CFTE)`` in a test module with ``golden``)."""

    @pytest.fixture(scope="module")
    def real_networks(golden: Path) -> dict[str, nn.Module]:
        return model.build_networks(manifest(golden)["config"]["model_params"])

    return real_networks


def random_state_dict(entries: list[dict[str, Any]], seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with exactly the manifest's keys, shapes and dtypes, filled with random values."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for e in entries:
        dtype = DTYPES[e["dtype"]]
        if dtype.is_floating_point:
            state[e["key"]] = torch.rand(e["shape"], generator=generator, dtype=dtype)
        else:
            state[e["key"]] = torch.randint(0, 1000, e["shape"], generator=generator, dtype=dtype)
    return state


def training_checkpoint(networks: dict[str, dict[str, torch.Tensor]]) -> dict[str, Any]:
    """A checkpoint laid out as training writes it: networks, discriminator, optimisers, epoch."""
    extra = {
        "discriminator": {"discs.1.conv.weight": torch.zeros(2, 3, 4, 4)},
        "optimizer_generator": {"state": {}, "param_groups": [{"lr": 2e-4, "params": [0, 1]}]},
        "optimizer_kp_detector": {"state": {}, "param_groups": [{"lr": 2e-4, "params": [0]}]},
        "epoch": 99,
    }
    return {**networks, **extra}


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item()


def golden_fixtures(model: str) -> tuple[Any, Any, Any]:
    """The module fixtures ``golden`` (``../shared/golden/<model>``), ``expected`` and ``inputs`` (its tiny
    reference outputs and inputs): ``golden, expected, inputs = golden_fixtures("dac")`` in a test module."""

    @pytest.fixture(scope="module")
    def golden(shared: Path) -> Path:
        return shared / "golden" / model

    @pytest.fixture(scope="module")
    def expected(golden: Path) -> dict[str, torch.Tensor]:
        return load_pt(golden / "tiny" / "outputs.pt")

    @pytest.fixture(scope="module")
    def inputs(golden: Path) -> dict[str, torch.Tensor]:
        return load_pt(golden / "tiny" / "inputs.pt")

    return golden, expected, inputs


def tiny_networks(golden: Path, networks: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """``networks`` (built from :func:`tiny_params`) with the golden's tiny weights, loaded strictly, in
    float64 (the precision of the goldens) for inference."""
    for name, module in networks.items():
        module.load_state_dict(load_pt(golden / "tiny" / f"{name}.pt"), strict=True)
        module.double().eval()
    return networks


def tiny_checkpoint_fixture(file_name: str, networks: tuple[str, ...] = ("kp_detector", "generator")) -> Any:
    """The module fixture of a training checkpoint ``file_name`` (in a temporary folder) holding the
    golden's tiny ``networks``: ``tiny_model_file = tiny_checkpoint_fixture("DAC-10-checkpoint.pth.tar")``
    in a test module that has the ``golden`` fixture."""

    @pytest.fixture(scope="module")
    def tiny_checkpoint(golden: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
        path = tmp_path_factory.mktemp("checkpoint") / file_name
        state = {name: load_pt(golden / "tiny" / f"{name}.pt") for name in networks}
        torch.save(training_checkpoint(state), path)
        return path

    return tiny_checkpoint


def tiny_model_config(golden: Path, model: str) -> dict[str, Any]:
    """The model's config (``ctc/conf/model/<model>.yaml``) with the golden's tiny ``model_params``."""
    return {**load_model_config(model), "model_params": tiny_params(golden)}


def tiny_clip(golden: Path, frames: int, folder: Path) -> SequenceSpec:
    """The first ``frames`` of the real clip FACES_00 at the golden's tiny image size, a sequence in
    ``folder``."""
    (spec,) = load_test_set({"name": "faces", "sequences": ["FACES_00"], "frames": frames})
    size = json.loads((golden / "tiny" / "config.json").read_text())["image_size"][0]
    return as_sequence(resized(np.asarray(spec.read()), size), folder)


class ThreeConvModel(GenerativeModel):
    """A model of three bias-free convolutions whose MACs per pixel are known by hand (for
    ``ctc-complexity``): features 1x1 conv 3 -> 2 channels (3*2 = 6 MAC/pixel), reference 3x3 conv
    3 -> 4 (3*4*9 = 108), generation 1x1 conv 4 -> 3 (4*3 = 12); its decoder also takes the frame's
    features (as HDAC's base layer): 12 + 6 = 18. Pooling and clamping are not counted."""

    name = "three-conv"
    feature_size = 2
    weights = "random"
    random_weights = True

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.features = nn.Conv2d(3, 2, kernel_size=1, bias=False)
        self.reference = nn.Conv2d(3, 4, kernel_size=3, padding=1, bias=False)
        self.generator = nn.Conv2d(4, 3, kernel_size=1, bias=False)
        self.networks = {"features": self.features, "reference": self.reference, "generator": self.generator}

    @classmethod
    def from_config(cls, config: Any, weights: str, device: str = "cpu") -> ThreeConvModel:
        return cls()

    def extract_features(self, frames: torch.Tensor) -> torch.Tensor:
        return self.features(frames).mean((2, 3))

    def prepare_reference(self, key_frame: torch.Tensor) -> torch.Tensor:
        return self.reference(key_frame)

    def generate(
        self, key_frame: torch.Tensor, reference: torch.Tensor, features: torch.Tensor
    ) -> torch.Tensor:
        return self.generator(reference).clamp(0, 1)

    def decoder_pass(
        self, key_frame: torch.Tensor, reference: torch.Tensor, features: torch.Tensor, frame: torch.Tensor
    ) -> torch.Tensor:
        return self.generate(key_frame, reference, features + self.extract_features(frame))


class ThreeConvModelWithCases(ThreeConvModel):
    """ThreeConvModel with decoder cases of its own (as MRDAC's per number of references): one
    reference is its decoder pass (18 MAC/pixel), two add a generation (12): 30."""

    def complexity_cases(
        self, frame: torch.Tensor, reference: torch.Tensor, features: torch.Tensor
    ) -> dict[str, Any]:
        def two_references() -> None:
            self.decoder_pass(frame, reference, features, frame)
            self.generate(frame, reference, features)

        return {
            "one_reference": lambda: self.decoder_pass(frame, reference, features, frame),
            "two_references": two_references,
        }


class ThreeConvModelWithoutNetworks(ThreeConvModel):
    """ThreeConvModel listing no torch sub-networks (as a model of the user's own may): no parameters."""

    def __init__(self) -> None:
        super().__init__()
        del self.networks
