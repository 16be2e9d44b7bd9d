"""Feature translators for decoder interoperability: one model's per-frame features into another's.

A translator lets model B's generator be driven by model A's decoded features (the GFVC
decoder-interoperability software, DCC 2024 / JVET-AG0048). Its config (``ctc/conf/translator/<a>2<b>.yaml``)
names the class (``module`` + ``class``, or a ``type`` registered with :func:`register_translator`), the
two models' feature layouts (``source``, ``target``: ``ctc/conf/translator_features/<model>.yaml``) and its
checkpoint (found as a model's: ``checkpoint``, else ``checkpoint_files`` in ``$GFVC_CHECKPOINTS``;
``sha256`` checked when given). A user's own translator implements :class:`FeatureTranslator`.

:class:`MlpTranslator` is the upstream one: an encoder half ``Linear(in, N) ReLU Linear(N, N) ReLU
Linear(N, N) ReLU Linear(N, N)`` into an N-wide latent and a decoder half ``Linear(N, N) ReLU ...
Linear(N, out)``, stored as ``{'state_dict': {'<A>_Enc': ..., '<B>_Dec': ...}}`` with the layers under
the network's name (``FOMM.0.weight``); FV2V's is called ``NVIDIA`` and orders
its 57 values differently from our features.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ctc.registry import Registry
from models.checkpoints import (
    RANDOM,
    RANDOM_SEED,
    CheckpointError,
    read_checkpoint,
    resolve_weights,
    seeded,
    state_dict_mismatch,
)


class FeatureTranslator(ABC):
    """Maps features ``(B, D_source)`` of the ``source`` model, in that model's own order (as its
    GFVC codec codes them), to features ``(B, D_target)`` of the ``target`` model, in its order."""

    source: str  # the model whose features it reads
    target: str  # the model whose features it writes
    source_size: int
    target_size: int
    weights: str = "none"  # a checkpoint path or "random (seed N)"
    random_weights: bool = False

    @classmethod
    @abstractmethod
    def from_config(
        cls, config: Mapping[str, Any], weights: str, device: str = "cpu", dtype: torch.dtype = torch.float32
    ) -> FeatureTranslator:
        """The translator its config describes; ``weights``: a checkpoint path or ``random``."""

    @abstractmethod
    def translate(self, features: torch.Tensor) -> torch.Tensor:
        """The target model's features of each row of ``features``."""


TRANSLATORS: Registry[type[FeatureTranslator]] = Registry("translator")


def register_translator(name: str) -> Callable[[type[FeatureTranslator]], type[FeatureTranslator]]:
    """Class decorator: make a translator available as ``type: <name>`` in translator configs."""
    return TRANSLATORS.register(name)


def translator_class(config: Mapping[str, Any]) -> type[FeatureTranslator]:
    return TRANSLATORS.resolve(config, FeatureTranslator)


def feature_order(layout: Mapping[str, Any]) -> torch.Tensor | None:
    """The indices into our features that give the translator's vector (``order``: slices ``[start, stop)``
    concatenated), or None when both orders agree."""
    slices = layout.get("order")
    if not slices:
        return None
    index = torch.cat([torch.arange(int(start), int(stop)) for start, stop in slices])
    if sorted(index.tolist()) != list(range(int(layout["size"]))):
        raise ValueError(
            f"translator features of {layout['model']}: order {slices} is not a permutation "
            f"of the {layout['size']} values"
        )
    return index


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers between ``sizes``, a ReLU between two of them (upstream's indices 0, 2, 4, 6)."""
    layers: list[nn.Module] = []
    for index, (inputs, outputs) in enumerate(zip(sizes, sizes[1:], strict=False)):
        if index:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(inputs, outputs))
    return nn.Sequential(*layers)


class _Half(nn.Module):
    """One half, its layers named as in the checkpoint (``<network>.<i>.weight``)."""

    def __init__(self, network: str, sizes: Sequence[int]) -> None:
        super().__init__()
        self.network = network
        self.add_module(network, _mlp(sizes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, self.network)(x)


@register_translator("mlp")
class MlpTranslator(FeatureTranslator):
    """The decoder-interoperability software's translator: ``decoder(encoder(features))``."""

    LAYERS = 4  # linear layers per half

    def __init__(
        self,
        config: Mapping[str, Any],
        encoder: _Half,
        decoder: _Half,
        weights: str,
        random_weights: bool,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        source, target = config["source"], config["target"]
        self.source, self.target = str(source["model"]), str(target["model"])
        self.source_size, self.target_size = int(source["size"]), int(target["size"])
        self.encoder = encoder.to(device=device, dtype=dtype).eval().requires_grad_(False)
        self.decoder = decoder.to(device=device, dtype=dtype).eval().requires_grad_(False)
        self.source_order = feature_order(source)
        target_order = feature_order(target)
        self.target_order = None if target_order is None else torch.argsort(target_order)
        self.weights, self.random_weights = weights, random_weights
        self.device, self.dtype = torch.device(device), dtype

    @staticmethod
    def halves(config: Mapping[str, Any]) -> dict[str, _Half]:
        """The two halves keyed as in the checkpoint (``<A>_Enc``, ``<B>_Dec``)."""
        source, target, width = config["source"], config["target"], int(config["latent"])
        hidden = [width] * (MlpTranslator.LAYERS - 1)
        return {
            f"{source['network']}_Enc": _Half(source["network"], [int(source["size"]), *hidden, width]),
            f"{target['network']}_Dec": _Half(target["network"], [width, *hidden, int(target["size"])]),
        }

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], weights: str, device: str = "cpu", dtype: torch.dtype = torch.float32
    ) -> MlpTranslator:
        with seeded(RANDOM_SEED):
            halves = cls.halves(config)
        if str(weights) == RANDOM:
            return cls(config, *halves.values(), f"{RANDOM} (seed {RANDOM_SEED})", True, device, dtype)
        state = read_checkpoint(weights).get("state_dict")
        if not isinstance(state, Mapping):
            raise CheckpointError(
                f"{weights}: no 'state_dict' (a translator checkpoint holds "
                f"{{'state_dict': {{{', '.join(halves)}}}}})"
            )
        problems = []
        for key, half in halves.items():
            mismatch = (
                f"absent (the file holds {', '.join(state) or 'nothing'})"
                if key not in state
                else state_dict_mismatch(half, state[key])
            )
            if mismatch:
                problems.append(f"{key}: {mismatch}")
        if problems:
            raise CheckpointError(
                f"{weights} is not the {config['source']['model']}->"
                f"{config['target']['model']} translator of this configuration: " + " | ".join(problems)
            )
        for key, half in halves.items():
            half.load_state_dict(state[key], strict=True)
        return cls(config, *halves.values(), str(weights), False, device, dtype)

    def latent(self, features: torch.Tensor) -> torch.Tensor:
        """The encoder half's latent ``(B, N)`` of the source features (in our order)."""
        features = features.to(device=self.device, dtype=self.dtype)
        if self.source_order is not None:
            features = features[:, self.source_order.to(features.device)]
        return self.encoder(features)

    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """The decoder half's target features (in our order) of a latent."""
        out = self.decoder(latent)
        return out if self.target_order is None else out[:, self.target_order.to(out.device)]

    def translate(self, features: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.decode_latent(self.latent(features))


def translator_weights(config: Mapping[str, Any], weights: str = "auto") -> Path | str:
    """The translator's checkpoint (its ``sha256`` checked when the config gives one) or :data:`RANDOM`,
    resolved as a model's weights (:func:`models.checkpoints.resolve_weights`)."""
    from ctc.hashing import file_digest

    owner = f"translator {config['source']['model']}->{config['target']['model']}"
    resolved = resolve_weights(owner, config, weights)
    expected = config.get("sha256")
    if isinstance(resolved, Path) and expected:
        digest = file_digest(resolved, "sha256")
        if digest != expected:
            raise CheckpointError(
                f"{resolved}: sha256 {digest}, the translator config expects {expected}: "
                "not the published file (download it again), or set sha256: null for "
                "your own retrained one"
            )
    return resolved


def load_translator(
    config: Mapping[str, Any], weights: str = "auto", device: str = "cpu", dtype: torch.dtype = torch.float32
) -> FeatureTranslator:
    """The translator of ``config`` with its resolved weights (a checkpoint must load strictly)."""
    resolved = translator_weights(config, weights)
    return translator_class(config).from_config(config, weights=str(resolved), device=device, dtype=dtype)


def translators_between(source: str, target: str) -> list[str]:
    """The translator configs (``translator/<name>``) from ``source``'s features to ``target``'s."""
    from ctc.conf import available, load_section

    def pair(name: str) -> tuple[str, str]:
        config = load_section("translator", name)
        return str(config["source"]["model"]), str(config["target"]["model"])

    return [name for name in available("translator") if pair(name) == (source, target)]


def translator_hint(bitstream_model: str, generator_model: str) -> str:
    """What to run to decode a ``bitstream_model`` bitstream with ``generator_model``'s generator."""
    if bitstream_model == generator_model:
        return f"decode it with {bitstream_model}'s own decoder (codec={bitstream_model})"
    names = translators_between(bitstream_model, generator_model)
    if not names:
        return (
            f"no translator from {bitstream_model} features to {generator_model} features is configured "
            f"(ctc/conf/translator/): decode it with codec={bitstream_model}"
        )
    return (
        f"decode it with {bitstream_model}'s decoder (codec={bitstream_model}), or with "
        f"{generator_model}'s generator through the translator {names[0]} (codec={names[0]}, "
        "docs/interop.md)"
    )
