"""GFVC generative models by name: their configs, their weights, and the shared adapter.

A model is one module ``models/<name>.py`` holding a ``NetworkModel`` subclass decorated with
``@register_model("<name>")`` plus one config ``ctc/conf/model/<name>.yaml`` (``model_params`` exactly
as in the checkpoint's yaml, the checkpoint file names, and where researchers get them).
"""

from __future__ import annotations

import importlib
from abc import abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ctc.conf import available, load_section
from models.base import GenerativeModel
from models.checkpoints import (
    RANDOM,
    RANDOM_SEED,
    checkpoint_file_names,
    find_checkpoint,
    load_subnetworks,
    seeded,
)

_MODELS: dict[str, type[NetworkModel]] = {}


def register_model(name: str) -> Callable[[type[NetworkModel]], type[NetworkModel]]:
    """Class decorator: make a ``NetworkModel`` available to ``create_model(name)``."""

    def add(cls: type[NetworkModel]) -> type[NetworkModel]:
        cls.name = name
        _MODELS[name] = cls
        return cls

    return add


def available_models() -> list[str]:
    """Names of the models that have a config file."""
    return available("model")


def load_model_config(name: str) -> dict[str, Any]:
    """The model's config (``ctc/conf/model/<name>.yaml``) as a plain dict."""
    return load_section("model", name)


def get_model_class(name: str) -> type[NetworkModel]:
    if name not in _MODELS:
        load_model_config(name)  # unknown names fail here with the list of known ones
        importlib.import_module(f"models.{name}")
    return _MODELS[name]


def create_model(
    name: str,
    config: Mapping[str, Any] | None = None,
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
    **options: Any,
) -> NetworkModel:
    """Build model ``name`` from its config with weights from a checkpoint, or ``weights='random'``."""
    return get_model_class(name).from_config(config, weights=weights, device=device, **options)


class NetworkModel(GenerativeModel):
    """A ``GenerativeModel`` made of torch sub-networks stored under top-level checkpoint keys.

    ``random_weights`` is True when the networks were not loaded from a checkpoint; ``weights`` says
    where the weights came from, for every console line and result that shows this model's output.
    """

    name: ClassVar[str]

    def __init__(
        self,
        networks: Mapping[str, nn.Module],
        weights: str,
        random_weights: bool,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        self.networks = {
            k: m.to(device=device, dtype=dtype).eval().requires_grad_(False) for k, m in networks.items()
        }
        self.weights = weights
        self.random_weights = random_weights
        self.device = torch.device(device)
        self.dtype = dtype

    @classmethod
    @abstractmethod
    def build_networks(cls, model_params: Mapping[str, Any], **options: Any) -> dict[str, nn.Module]:
        """The sub-networks, keyed as in the checkpoint, built from the checkpoint yaml's model_params."""

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any] | None = None,
        weights: str | Path | None = None,
        device: str | torch.device = "cpu",
        seed: int = RANDOM_SEED,
        dtype: torch.dtype = torch.float32,
        **options: Any,
    ):
        """``weights``: a checkpoint path, ``'random'`` (deterministic, seeded), or None to find the
        checkpoint from ``config['checkpoint']`` then ``$GFVC_CHECKPOINTS``."""
        config = dict(config) if config is not None else load_model_config(cls.name)
        with seeded(seed):
            networks = cls.build_networks(config["model_params"], **options)
        choice = weights if weights is not None else config.get("checkpoint")
        if str(choice) == RANDOM:
            return cls(networks, f"{RANDOM} (seed {seed})", True, device, dtype)
        path = find_checkpoint(cls.name, checkpoint_file_names(config), config["where_to_get"], choice)
        load_subnetworks(path, networks, cls.name)
        return cls(networks, str(path), False, device, dtype)

    def describe(self) -> dict[str, Any]:
        """Provenance: model name, where the weights came from, parameter count per sub-network."""
        return {
            "model": self.name,
            "weights": self.weights,
            "random_weights": self.random_weights,
            "parameters": {k: sum(p.numel() for p in m.parameters()) for k, m in self.networks.items()},
        }

    def _input(self, frames: torch.Tensor) -> torch.Tensor:
        return frames.to(device=self.device, dtype=self.dtype)
