"""Building a GFVC codec's parts from its composed config: the model with its weights (``model``), the
conventional codec of its key frames (``intra``; HDAC's base layer: ``base``), and the small
conversions both sides share."""

from __future__ import annotations

import contextlib
import copy
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

from ctc.codec import Codec, CodecError, codec_class, create_codec
from ctc.registry import PluginError
from models.base import GenerativeModel


def to_uint8(prediction: torch.Tensor, rounding: str) -> np.ndarray:
    """Generator output in [0, 1] to 8-bit; ``truncate`` is the common software's ``(x * 255)`` cast,
    computed in the prediction's own precision (float32, or float64 as the goldens)."""
    values = prediction.detach().cpu()
    scaled = np.clip((values if values.dtype == torch.float64 else values.float()).numpy() * 255, 0, 255)
    return (np.round(scaled) if rounding == "round" else scaled).astype(np.uint8)


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """torch's CPU threads set to ``count`` inside the block (None: torch's default), then restored."""
    if count is None:
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def model_config_of(owner: str, section: Any, num_kp: int | None = None) -> dict[str, Any]:
    """The codec's composed model config; ``num_kp`` (DAC's 10/20/40 keypoint models) overrides its
    ``common_params.num_kp``."""
    if not isinstance(section, Mapping):
        raise CodecError(
            f"{owner}: model {section!r}: expected a model config; compose one into the codec "
            "config with `defaults: [/model@model: NAME]`"
        )
    config = copy.deepcopy(dict(section))
    if num_kp is not None:
        config["model_params"]["common_params"]["num_kp"] = int(num_kp)
    return config


def load_model(owner: str, model_config: Mapping[str, Any], weights: str, device: str) -> GenerativeModel:
    """The model with the configured weights (:func:`models.checkpoints.resolve_weights`): a checkpoint
    path, ``checkpoint`` (must be found), ``random`` (deterministic, labelled), ``auto``, or none for a
    model without learned weights."""
    from models.checkpoints import ENV_VAR, RANDOM, resolve_weights
    from models.registry import model_class

    resolved = resolve_weights(owner, model_config, weights)
    try:
        cls = model_class(model_config)
    except PluginError as exc:
        raise CodecError(f"{owner}: {exc}") from None
    model = cls.from_config(model_config, weights=str(resolved), device=device)
    if getattr(model, "random_weights", False):
        none_found = weights == "auto" and resolved == RANDOM
        reason = f"no checkpoint found: set {ENV_VAR}" if none_found else f"weights={weights}"
        # one line on stderr whatever the logging setup (the sweep's summary prints its warning alike)
        print(
            f"WARNING: {owner} runs with RANDOM weights, so its pictures and scores are not those "
            f"of the published model ({reason})",
            file=sys.stderr,
            flush=True,
        )
    return model


def conventional_section(owner: str, section: Any, picture_format: str, role: str) -> dict[str, Any]:
    """The config of the conventional codec for ``owner``'s ``role`` (key frames, base layer), composed
    from ``ctc/conf/picture_codec/``: the section itself, or its ``fallback`` where this machine lacks
    what the section needs (``auto``: VTM when its binaries are found, else vvenc); its picture format
    set to ``picture_format``."""
    if not isinstance(section, Mapping):
        raise CodecError(
            f"{owner}: {role} codec {section!r}: expected a codec config, composed from "
            "picture_codec/ (on the command line: picture_codec@codec.intra=vvenc; in a codec "
            "config: `defaults: [/picture_codec@intra: auto]`)"
        )
    chosen = {key: value for key, value in section.items() if key != "fallback"}
    fallback = section.get("fallback")
    try:
        missing = fallback is not None and codec_class(chosen).missing(chosen)
    except PluginError as exc:
        raise CodecError(f"{owner}: {role} codec: {exc}") from None
    if missing:
        chosen = dict(fallback)  # a picture format it cannot code is refused when it is built
    key = chosen.get("picture_format_key")
    if key:
        chosen[key] = picture_format
    return chosen


def conventional_codec(owner: str, section: Mapping[str, Any], role: str) -> tuple[str, Codec]:
    """The codec a :func:`conventional_section` describes, built."""
    try:
        codec = create_codec(section, device="cpu")
    except KeyError as exc:
        raise CodecError(f"{owner}: {role} codec {section.get('name')!r}: {exc.args[0]}") from None
    return str(section["name"]), codec
