"""The codec interface that every anchor and GFVC model implements, and the registry by type.

A codec turns one test sequence at one rate point into a bitstream file and back into decoded
8-bit planar RGB 4:4:4 frames. A codec config (``ctc/conf/codec/<name>.yaml``, or one in the user's
own config folder) names its implementation with ``module`` + ``class``, or with a ``type``
registered by ``@register_codec("type")`` (:mod:`ctc.registry`); its ``name`` labels the results.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ctc.fingerprint import code_fingerprint, config_modules
from ctc.registry import Registry
from ctc.testset.sequences import SequenceSpec
from ctc.tools import CodecError

VVC_MAX_QP = 63  # 8-bit VVC (VTM, vvenc)


@dataclass
class EncodeResult:
    """What an encoder produced: the bitstream file and how its bits split into parts."""

    bitstream: Path
    bits: dict[str, int]  # part name -> bits; the parts add up to the bitstream's size in bits
    seconds: float
    commands: list[list[str]] = field(default_factory=list)
    log: str = ""
    # figures about the bitstream beyond its parts, not counted in them (e.g. a GFVC codec's feature
    # bits in each feature-coding mode); recorded in result.json
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def total_bits(self) -> int:
        return sum(self.bits.values())

    @classmethod
    def recorded(
        cls, result: Mapping[str, Any] | None, expected_hash: str, directory: Path
    ) -> EncodeResult | None:
        """The encoding an earlier result of the same job (``expected_hash``) recorded when it got past
        decoding and its bitstream is still there: scoring it (again) decodes that bitstream instead of
        coding it again."""
        if (
            not result
            or result.get("config_hash") != expected_hash
            or not result.get("bits")
            or not result.get("bitstream")
        ):
            return None
        bitstream = directory / result["bitstream"]
        if not bitstream.is_file():
            return None
        return cls(
            bitstream,
            dict(result["bits"]["parts"]),
            result["enc_seconds"],
            result["commands"]["encode"],
            log=f"reused {bitstream.name} of an earlier run",
            details=dict(result.get("encode_details", {})),
        )


@dataclass
class DecodeResult:
    """Decoded frames as a planar RGB 4:4:4 8-bit file of the sequence's size."""

    frames_file: Path
    seconds: float
    commands: list[list[str]] = field(default_factory=list)
    log: str = ""
    # figures about the decoding recorded in result.json; an ``output_md5`` is checked against the
    # encoder's ``reconstruction_md5`` (EncodeResult.details) when the codec reports both
    details: dict[str, Any] = field(default_factory=dict)


class Codec(ABC):
    """A video codec under test: a conventional anchor or a GFVC model.

    ``config`` is the codec's resolved config section (``ctc/conf/codec/<name>.yaml``): it holds
    the rate points and every codec-specific setting, so none of them live in code. ``name`` is the
    config's label (its results folder), not the implementation: two configs of one class differ by it.
    """

    uses_gpu: ClassVar[bool] = False
    # bitstream parts that are container overhead: not counted in the rate the field publishes
    # (a GFVC file's header), still in the whole file's rate that result.json records beside it
    container_bit_parts: ClassVar[tuple[str, ...]] = ()
    # config sections that :meth:`identity` records as resolved (a GFVC model's picture codecs: the one
    # used, not the choice with its fallback), so a job's identity holds them once
    resolved_sections: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> None:
        """Refuse a setting this codec cannot run (a :class:`CodecError` naming it), checked when a sweep
        is planned, before anything runs. Default: nothing to check."""
        return None

    @classmethod
    def missing(cls, config: Mapping[str, Any]) -> str | None:
        """What this machine lacks to run the codec (e.g. VTM's binaries), or None; a GFVC model's
        ``auto`` picture codec takes its ``fallback`` then. Default: nothing is missing."""
        return None

    @classmethod
    def identity(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """What makes this codec's bitstreams besides its config, resolved now: the binaries' bytes and
        command lines, the hashes of the files it reads (weights, cfg), the codecs it uses, the code. A
        complete result is reused only when this is unchanged. The sweep calls it once, before its
        workers start; it raises :class:`CodecError` when something the config names is missing.
        Default (a codec written in Python): the version and the fingerprint of its code
        (:func:`ctc.fingerprint.code_fingerprint` of :meth:`code_modules`)."""
        return {"version": cls(config).version(), "code": code_fingerprint(cls.code_modules(config))}

    @classmethod
    def code_modules(cls, config: Mapping[str, Any]) -> list[str]:
        """The modules whose code makes the bitstreams and decoded frames: the class's own and every
        ``module`` its config names (a model's), except in :attr:`resolved_sections` (codecs of their own)."""
        return [cls.__module__, *config_modules(config, skip=cls.resolved_sections)]

    def __init__(self, config: Mapping[str, Any], device: str = "cpu") -> None:
        self.config = dict(config)
        self.name = str(config["name"])
        self.device = device

    @property
    def rate_points(self) -> list[int]:
        return [int(q) for q in self.config["rate_points"]]

    @abstractmethod
    def version(self) -> str:
        """The exact version of the codec (binary's own report, model and weights)."""

    def provenance(self) -> dict[str, Any]:
        """What made this codec's numbers; recorded in every result.json: its label, its class and version."""
        return {
            "name": self.name,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "version": self.version(),
        }

    @abstractmethod
    def encode(self, sequence: SequenceSpec, rate_point: int, workdir: Path) -> EncodeResult:
        """Encode ``sequence`` (read from ``sequence.path``) at ``rate_point`` into ``workdir``."""

    @abstractmethod
    def decode(self, bitstream: Path, sequence: SequenceSpec, workdir: Path) -> DecodeResult:
        """Decode ``bitstream`` alone into an RGB 4:4:4 8-bit file in ``workdir``."""

    def count_bits(self, bitstream: Path, sequence: SequenceSpec) -> dict[str, int]:
        """The bits per part of a bitstream this codec wrote, counted from the file alone (the cross-check
        counts a package's rates again): one part, ``video``, unless the codec's files have parts."""
        return {"video": 8 * Path(bitstream).stat().st_size}


class IntraCodec(ABC):
    """Codes one picture as an intra picture; the GFVC models code their key frame with one."""

    @abstractmethod
    def encode_picture(self, rgb: np.ndarray, qp: int, workdir: Path) -> bytes:
        """Encode one ``(3, H, W)`` uint8 RGB picture at ``qp``; returns the bitstream bytes."""

    @abstractmethod
    def decode_picture(self, bitstream: bytes, width: int, height: int, workdir: Path) -> np.ndarray:
        """Decode bytes from :meth:`encode_picture` back to a ``(3, H, W)`` uint8 RGB picture."""


CODECS: Registry[type[Codec]] = Registry("codec")


def register_codec(name: str) -> Callable[[type[Codec]], type[Codec]]:
    """Class decorator: make a codec available as ``type: <name>``."""
    return CODECS.register(name)


def codec_class(config: Mapping[str, Any]) -> type[Codec]:
    """The class of a codec config section (``module`` + ``class``, or ``type``), without building it
    (building may load a model); :class:`ctc.registry.PluginError` (a ``KeyError``) when unknown."""
    return CODECS.resolve(config, Codec)


def check_qps(config: Mapping[str, Any], lowest: int, highest: int, what: str) -> None:
    """:class:`CodecError` unless every rate point of ``config`` is a QP in ``[lowest, highest]``."""
    wrong = [qp for qp in config.get("rate_points") or () if not lowest <= int(qp) <= highest]
    if wrong:
        raise CodecError(
            f"{config.get('name')}: rate_points {wrong} are not QPs of {what} ({lowest} to {highest})"
        )


def create_codec(config: Mapping[str, Any], device: str = "cpu") -> Codec:
    """Build the codec a config section describes."""
    return codec_class(config)(config, device=device)


_built_codecs: dict[tuple[str, str], Codec] = {}


def cached_codec(config: Mapping[str, Any], device: str, key: str) -> tuple[Codec, bool]:
    """The codec of ``config`` on ``device``, built once per worker process for each ``key`` (a hash of
    the config and what it resolved to), so models load once, and whether this call built it; the same
    config resolving to other weights or binaries (a checkpoint installed since) has another key."""
    built = (key, device) not in _built_codecs
    if built:
        _built_codecs[key, device] = codec_class(config)(config, device=device)
    return _built_codecs[key, device], built


def check_decoded_size(decoded: DecodeResult, sequence: SequenceSpec) -> None:
    """:class:`CodecError` unless the decoder wrote the sequence's frames: a file of its size."""
    path, expected = decoded.frames_file, sequence.frames * sequence.frame_bytes
    if not path.is_file():
        raise CodecError(f"the decoder wrote no output file {path}")
    size = path.stat().st_size
    if size != expected:
        raise CodecError(
            f"decoded file {path} is {size} bytes; expected {sequence.frames} frames of "
            f"{sequence.description}, {expected} bytes"
        )


def check_closed_loop(encoded: EncodeResult, decoded: DecodeResult) -> None:
    """The decoder must reproduce the encoder's reconstruction exactly, where the codec reports both."""
    expected, found = encoded.details.get("reconstruction_md5"), decoded.details.get("output_md5")
    if expected and found and expected != found:
        raise CodecError(
            f"the decoder's output of {encoded.bitstream} (md5 {found}) differs from the "
            f"encoder's reconstruction (md5 {expected}): encoder and decoder mismatch"
        )
