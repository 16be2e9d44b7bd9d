"""Finding the public GFVC checkpoints and loading their sub-networks strictly.

A checkpoint is found from the model config's ``checkpoint`` entry (or an explicit path), else in
the folder named by ``GFVC_CHECKPOINTS`` under one of the file names the common software uses
(``ctc/conf/model/<name>.yaml`` lists them). A training checkpoint holds more than the networks
(discriminator, optimisers, epoch): only the sub-networks a model needs are taken, each loaded with
``strict=True`` after a check that reports every missing, unexpected or differently shaped key.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

ENV_VAR = "GFVC_CHECKPOINTS"
RANDOM = "random"
NONE = "none"  # the weights of a model without learned weights (its config lists no checkpoint_files)
RANDOM_SEED = 0  # random weights are drawn from this seed: the same on every machine


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit the model's configuration."""


def find_checkpoint(
    model: str, file_names: Sequence[str], where: str, configured: str | Path | None = None
) -> Path:
    """The checkpoint file for ``model``: ``configured`` if given, else the first of ``file_names``
    found in ``$GFVC_CHECKPOINTS``. ``where`` tells researchers where to get the file."""
    if configured:
        path = Path(configured).expanduser()
        if path.is_file():
            return path
        raise CheckpointError(f"{model}: checkpoint {path} does not exist. {where}")
    folder = os.environ.get(ENV_VAR)
    if folder:
        for name in file_names:
            if (Path(folder) / name).is_file():
                return Path(folder) / name
    looked = f"{ENV_VAR}={folder}" if folder else f"{ENV_VAR} is not set"
    names = " or ".join(file_names)
    raise CheckpointError(
        f"{model}: no checkpoint found (expected {names} in the folder named by {ENV_VAR}; {looked}). "
        f"{where} Put it there, or pass its path (weights=/path/to/file), or use weights={RANDOM} "
        "for a labelled run with random weights."
    )


def checkpoint_file_names(model_config: Mapping[str, Any]) -> list[str]:
    """The model config's checkpoint file names, with its common params filled in (DAC's
    ``DAC-{num_kp}-checkpoint.pth.tar`` names a file per keypoint count)."""
    common = model_config.get("model_params", {}).get("common_params", {})
    return [str(name).format(**common) for name in model_config.get("checkpoint_files") or []]


def resolve_weights(model: str, model_config: Mapping[str, Any], weights: str | Path = "auto") -> Path | str:
    """The weights a model runs with: its checkpoint file, or :data:`RANDOM`.

    ``weights``: a checkpoint path; ``checkpoint`` (it must be found); ``random``; or ``auto``: the
    checkpoint when one is found (the model config's ``checkpoint``, then ``$GFVC_CHECKPOINTS``),
    else random. A checkpoint that is named or found but cannot be used is an error, never random.
    A model whose config lists no ``checkpoint_files`` and names no checkpoint has :data:`NONE`.
    """
    weights = str(weights)
    if weights == RANDOM:
        return RANDOM
    configured = None if weights in ("auto", "checkpoint") else weights
    configured = configured or model_config.get("checkpoint")
    if not configured and not model_config.get("checkpoint_files"):
        return NONE
    try:
        return find_checkpoint(
            model, checkpoint_file_names(model_config), model_config.get("where_to_get", ""), configured
        )
    except CheckpointError:
        if weights == "auto" and not configured:
            return RANDOM
        raise


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's top-level dict, on CPU, read without executing pickled code."""
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError... for bad files
        raise CheckpointError(
            f"{path}: cannot read this checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0]}). "
            "The file is truncated or corrupt, or not a PyTorch checkpoint: download it again."
        ) from exc
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"{path}: expected a dict of sub-network state dicts, found {type(checkpoint).__name__}"
        )
    return checkpoint


def _listing(keys: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def state_dict_mismatch(module: nn.Module, state: Mapping[str, Any]) -> str | None:
    """What keeps ``state`` from loading strictly into ``module`` (None if it fits exactly)."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    reshaped = [
        f"{k} {tuple(state[k].shape)} in the checkpoint vs {tuple(v.shape)} in the model"
        for k, v in expected.items()
        if k in state and isinstance(state[k], torch.Tensor) and state[k].shape != v.shape
    ]
    if not (missing or unexpected or reshaped):
        return None
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys: {_listing(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys: {_listing(unexpected)}")
    if reshaped:
        parts.append(f"{len(reshaped)} shapes differ: {_listing(reshaped, 5)}")
    return "; ".join(parts)


def load_subnetworks(
    path: str | Path,
    networks: Mapping[str, nn.Module],
    model: str,
    unused_prefixes: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Load each of ``networks`` (top-level key -> module) from the checkpoint at ``path``, strictly.

    Every sub-network is checked before any is loaded, so a refused checkpoint leaves the modules
    untouched. ``unused_prefixes``: per sub-network, key prefixes of parts the model does not use
    (MRDAC's reference coder), dropped before the strict check. Returns the checkpoint's other
    top-level entries that are plain numbers (e.g. epoch).
    """
    checkpoint = read_checkpoint(path)
    for name, prefixes in (unused_prefixes or {}).items():
        if isinstance(checkpoint.get(name), Mapping):
            kept = {k: v for k, v in checkpoint[name].items() if not k.startswith(tuple(prefixes))}
            checkpoint[name] = kept
    absent = [name for name in networks if name not in checkpoint]
    if absent:
        raise CheckpointError(
            f"{path}: no sub-network {', '.join(absent)} for {model} (the file holds: "
            f"{', '.join(map(str, checkpoint)) or 'nothing'}). Is this the {model} checkpoint?"
        )
    problems = {name: state_dict_mismatch(module, checkpoint[name]) for name, module in networks.items()}
    problems = {name: text for name, text in problems.items() if text}
    if problems:
        details = " | ".join(f"{name}: {text}" for name, text in problems.items())
        raise CheckpointError(
            f"{path} does not fit the {model} configuration (model_params) it is loaded into, "
            f"so it was trained with another configuration or is another model's file. {details}"
        )
    for name, module in networks.items():
        module.load_state_dict(checkpoint[name], strict=True)
    return {k: v for k, v in checkpoint.items() if isinstance(v, int | float)}


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Build modules with deterministic random weights without touching the global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
