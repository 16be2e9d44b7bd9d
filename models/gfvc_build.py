"""Building a GFVC codec's parts from its config: the model with its weights, the conventional
codec of its key frames (and of HDAC's base layer), and the small conversions both sides share."""

from __future__ import annotations

import contextlib
import copy
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

from ctc.codec import Codec, CodecError, create_codec
from ctc.conf import ConfigNotFound, load_section
from models.base import GenerativeModel

AUTO_CODECS = ("vtm", "vvenc")  # "auto": the first one found


def load_config_section(group: str, section: str | Mapping[str, Any]) -> dict[str, Any]:
    """A config section given inline (mapping) or by name (``ctc/conf/<group>/<name>.yaml``)."""
    if isinstance(section, Mapping):
        return dict(section)
    try:
        return load_section(group, section)
    except ConfigNotFound as exc:
        raise CodecError(str(exc)) from None


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


def model_config_of(section: str | Mapping[str, Any], num_kp: int | None = None) -> dict[str, Any]:
    """A model config given inline or by name; ``num_kp`` (DAC's 10/20/40 keypoint models) overrides
    its ``common_params.num_kp``."""
    if isinstance(section, Mapping):
        config = copy.deepcopy(dict(section))
    else:
        from models.registry import load_model_config

        config = load_model_config(str(section))
    if num_kp is not None:
        config["model_params"]["common_params"]["num_kp"] = int(num_kp)
    return config


def load_model(name: str, model_config: Mapping[str, Any], weights: str, device: str) -> GenerativeModel:
    """The model with the configured weights (:func:`models.checkpoints.resolve_weights`): a checkpoint
    path, ``checkpoint`` (must be found), ``random`` (deterministic, labelled) or ``auto``."""
    from models.checkpoints import ENV_VAR, RANDOM, resolve_weights
    from models.registry import create_model

    resolved = resolve_weights(name, model_config, weights)
    model = create_model(name, model_config, weights=str(resolved), device=device)
    if getattr(model, "random_weights", False):
        none_found = weights == "auto" and resolved == RANDOM
        reason = f"no checkpoint found: set {ENV_VAR}" if none_found else f"weights={weights}"
        # one line on stderr whatever the logging setup (the sweep's summary prints its warning alike)
        print(f"WARNING: {name} runs with RANDOM weights, so its pictures and scores are not those "
              f"of the published model ({reason})", file=sys.stderr, flush=True)
    return model


def conventional_section(owner: str, choice: str | Mapping[str, Any], picture_format: str,
                         role: str) -> dict[str, Any]:
    """The config of a conventional codec for ``owner``'s ``role`` (key frames, base layer): ``vtm``,
    ``vvenc`` (or an inline codec section), or ``auto``: VTM when its binaries are found
    (:func:`anchors.vtm_tools.vtm_installed`), else vvenc; its picture format set to ``picture_format``."""
    if choice == "auto":
        from anchors.vtm_tools import vtm_installed

        choice = "vtm" if vtm_installed(load_config_section("codec", "vtm")) else "vvenc"
        if choice == "vvenc" and picture_format != "yuv420":
            raise CodecError(f"{owner}: {role} {picture_format} needs VTM (vvenc codes YUV 4:2:0 only) and "
                             "VTM is not installed: build it with `make vtm`, or use yuv420")
    section = load_config_section("codec", choice)
    key = section.get("picture_format_key")
    if key:
        section[key] = picture_format
    return section


def conventional_codec(owner: str, section: Mapping[str, Any], role: str) -> tuple[str, Codec]:
    """The codec a :func:`conventional_section` describes, built."""
    try:
        codec = create_codec(section, device="cpu")
    except KeyError as exc:
        raise CodecError(f"{owner}: {role} codec {section.get('name')!r}: {exc.args[0]}") from None
    return str(section["name"]), codec
