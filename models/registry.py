"""GFVC generative models: their classes, their configs, their weights, and the shared adapter.

A model config (``ctc/conf/model/<name>.yaml``, or one in the user's own config folder) names the
model's class (``module`` + ``class``, or a ``type`` registered with ``@register_model``), its
``model_params`` (for this package's networks exactly as in the checkpoint's yaml), the checkpoint
file names and where researchers get them. A GFVC codec config composes it as its ``model``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ctc.conf import available, load_section
from ctc.registry import Registry
from models.base import GenerativeModel
from models.checkpoints import (
    RANDOM,
    RANDOM_SEED,
    checkpoint_file_names,
    find_checkpoint,
    load_subnetworks,
    seeded,
)

MODELS: Registry[type[GenerativeModel]] = Registry("model")


def register_model(name: str) -> Callable[[type[NetworkModel]], type[NetworkModel]]:
    """Class decorator: make a model available as ``type: <name>`` in model configs."""

    def add(cls: type[NetworkModel]) -> type[NetworkModel]:
        cls.name = name
        return MODELS.add(name, cls)

    return add


def available_models() -> list[str]:
    """Names of the models that have a config file in this package."""
    return available("model")


def load_model_config(name: str) -> dict[str, Any]:
    """The model config ``model/<name>`` (composed) as a plain dict."""
    return load_section("model", name)


def model_class(config: Mapping[str, Any]) -> type[GenerativeModel]:
    """The class a model config names (``module`` + ``class``, or ``type``)."""
    return MODELS.resolve(config, GenerativeModel)


def get_model_class(name: str) -> type[GenerativeModel]:
    """The class of the model config ``model/<name>``."""
    return model_class(load_model_config(name))


def create_model(
    name: str,
    config: Mapping[str, Any] | None = None,
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
    **options: Any,
) -> GenerativeModel:
    """Build a model from ``config`` (default: the config ``model/<name>``) with weights from a
    checkpoint, or ``weights='random'``."""
    config = dict(config) if config is not None else load_model_config(name)
    return model_class(config).from_config(config, weights=weights, device=device, **options)


class NetworkModel(GenerativeModel):
    """A ``GenerativeModel`` made of torch sub-networks stored under top-level checkpoint keys.

    ``random_weights`` is True when the networks were not loaded from a checkpoint; ``weights`` says
    where the weights came from, for every console line and result that shows this model's output.
    """

    name: ClassVar[str]
    # per sub-network, checkpoint key prefixes of parts this model does not use (skipped when loading)
    unused_checkpoint_prefixes: ClassVar[dict[str, tuple[str, ...]]] = {}

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
        load_subnetworks(path, networks, cls.name, cls.unused_checkpoint_prefixes)
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
