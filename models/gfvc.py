"""The GFVC codec: key frames by an intra codec, features per frame, one bitstream file; the decoder.

Encoder (as the GFVC common software): a key frame is coded as one intra picture at the rate
point's key-frame QP, at frame 0 and then every ``gop_size`` frames or where adaptive refresh asks
for one (:mod:`models.keyframes`); reference features come from the *decoded* key frame; every
other frame's features are coded as the residual against the previous *reconstructed* features
(:mod:`models.features`: ``ae``, the common software's entropy coder, bit-exact, or ``sei``, the GFV
SEI message; the encoder also reports what the other mode would have spent).

Decoder: reads only the bitstream file (:mod:`models.bitstream`) and the weights; per GOP it decodes
the key frame, rebuilds the features and runs the generator batched over the frames. The per-GOP
work of both sides is :mod:`models.gfvc_pipeline`; this module is the codec around it: its settings,
identity and configuration hash, and the bitstream files. Every number comes from the codec config
(``ctc/conf/codec/<model>.yaml``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ctc.codec import Codec, CodecError, DecodeResult, EncodeResult, IntraCodec, codec_class, register_codec
from ctc.devices import batch_size_for
from ctc.fingerprint import code_fingerprint
from ctc.frames import write_rgb444
from ctc.hashing import compute_digest, file_digest
from ctc.stopwatch import Stopwatch
from ctc.testset.sequences import SequenceSpec
from models import bitstream, features, gfv_stream
from models import sei_layout as sei
from models.base import GenerativeModel
from models.checkpoints import NONE
from models.gfvc_build import conventional_codec, conventional_section, load_model, model_config_of, to_uint8
from models.gfvc_pipeline import GfvcPipeline
from models.gop import Encoded, GopCode
from models.keyframes import KeyFramePolicy
from models.translators import translator_hint

__all__ = ["Encoded", "GfvcCodec", "GopCode", "to_uint8"]

OUTPUT_ROUNDINGS = ("truncate", "round")
KEY_FRAME_FORMATS = ("yuv420", "rgb444")

# Settings without a default in code: every GFVC codec config composes them from ctc/conf/gfvc/base.yaml
# (q_step and model: from the codec config itself), the one place their defaults are written; those in
# NULLABLE_KEYS may be null there (gop_size: one GOP; threads: torch's default), the others must be set.
REQUIRED_KEYS = (
    "q_step",
    "batch_size",
    "model",
    "weights",
    "key_frame_format",
    "gop_size",
    "refresh",
    "feature_coding",
    "output_rounding",
    "threads",
    "encoder_reconstruction",
)
NULLABLE_KEYS = frozenset({"gop_size", "threads"})


@register_codec("gfvc")
class GfvcCodec(GfvcPipeline, Codec):
    """A GFVC model as a codec: the model is the config's ``model`` section (any
    :class:`models.base.GenerativeModel`, this package's or the user's), the key-frame codec its ``intra``."""

    uses_gpu = True
    container_bit_parts = ("header",)  # the common software counts key frame + feature payloads only
    # what a model codes besides key pictures and features, which the GFV SEI stream cannot carry
    extra_layers: str | None = None
    resolved_sections = frozenset({"intra"})  # the identity's key_frame_codec

    def __init__(
        self,
        config: Mapping[str, Any],
        device: str = "cpu",
        model: GenerativeModel | None = None,
        intra_codec: IntraCodec | None = None,
    ) -> None:
        super().__init__(config, device)
        self.clock = Stopwatch()  # the split of each encode's and decode's seconds (in their details)
        cfg = self.config
        self.check_config(cfg)
        self.feature_coding = self._choice("feature_coding", features.FEATURE_CODINGS)
        if self.feature_coding == "sei" and self.extra_layers:
            raise ValueError(
                f"{self.name}: feature_coding sei writes one VVC stream of key pictures and "
                f"GFV SEI messages, which has no place for {self.extra_layers}; use "
                "feature_coding ae"
            )
        self.output_rounding = self._choice("output_rounding", OUTPUT_ROUNDINGS)
        self.key_frame_format = self._choice("key_frame_format", KEY_FRAME_FORMATS)
        self.q_step = float(cfg["q_step"])
        self.key_frames = KeyFramePolicy.from_config(cfg, self.name)
        self.batch_size = batch_size_for(cfg, device)
        self.encoder_reconstruction = bool(cfg["encoder_reconstruction"])
        threads = cfg["threads"]
        self.threads = None if threads is None else int(threads)
        if device.startswith("cuda"):
            torch.backends.cudnn.deterministic = True  # encoder and decoder must extract identical features
            torch.backends.cudnn.benchmark = False
        self.model_config = model_config_of(self.name, cfg.get("model"), cfg.get("num_kp"))
        self.model = (
            model
            if model is not None
            else load_model(self.name, self.model_config, str(cfg["weights"]), device)
        )
        self.intra_name, self.intra = (
            (type(intra_codec).__name__, intra_codec) if intra_codec is not None else self._make_intra_codec()
        )
        # the SEI layout also serves ae mode: its rate is reported next to the ae one
        self.sei_layout = (
            sei.SeiLayout.from_config(self._sei_config(), self.model.feature_size) if cfg.get("sei") else None
        )
        if self.feature_coding == "sei":
            self._check_sei_stream()
        self.setup_hash = self._setup_hash()

    def _check_sei_stream(self) -> None:
        """``sei`` writes one VVC stream (:mod:`models.gfv_stream`): VVC key pictures and the SEI only."""
        if self.sei_layout is None:
            raise ValueError(f"{self.name}: feature_coding sei needs a 'sei' section (the GFV SEI layout)")
        if self.intra_name not in gfv_stream.VVC_KEY_FRAME_CODECS:
            raise ValueError(
                f"{self.name}: feature_coding sei puts the GFV SEI messages in the key "
                f"pictures' VVC stream; the key-frame codec {self.intra_name!r} is not VVC (use "
                f"one of "
                f"{gfv_stream.VVC_KEY_FRAME_CODECS})"
            )

    def _choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = str(self.config[key]).lower()
        if value not in allowed:
            raise ValueError(f"{self.name}: {key} {value!r}: expected one of {allowed}")
        return value

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def identity(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """The weights (the checkpoint's sha256, or random with its seed), the key-frame codec's own
        identity and the fingerprint of the code (this codec's and its model's modules), resolved
        without building the model."""
        from models.checkpoints import RANDOM, RANDOM_SEED, CheckpointError, resolve_weights

        cls.check_config(config)
        model_config = model_config_of(config["name"], config.get("model"), config.get("num_kp"))
        try:
            weights = resolve_weights(config["name"], model_config, config["weights"])
        except CheckpointError as exc:
            raise CodecError(str(exc)) from None
        intra = cls.intra_section(config)
        return {
            "weights": f"{RANDOM} (seed {RANDOM_SEED})"
            if weights == RANDOM
            else NONE
            if weights == NONE
            else f"{Path(weights).name} sha256 {file_digest(weights, 'sha256')}",
            "key_frame_codec": {"config": intra, **codec_class(intra).identity(intra)},
            "code": code_fingerprint(cls.code_modules(config)),
        }

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> None:
        """Settings that are missing (a codec config that does not compose ``gfvc/base``) or contradict
        each other: the SEI coordinates carry ``q_step = 2^precision``."""
        missing = [
            key
            for key in REQUIRED_KEYS
            if key not in config or (config[key] is None and key not in NULLABLE_KEYS)
        ]
        if missing:
            raise CodecError(
                f"{config.get('name')}: the codec config lacks {', '.join(missing)}; compose "
                "the GFVC base config first (defaults: [/gfvc@_here_: base, ...]), which sets "
                "every GFVC default"
            )
        intra = cls.intra_section(config)
        qps = sorted({cls.key_frame_qp(config, int(rate_point)) for rate_point in config["rate_points"]})
        try:
            codec_class(intra).check_config({**intra, "rate_points": qps})
        except CodecError as exc:
            raise CodecError(f"{config['name']}: key frames at QPs {qps}: {exc}") from None
        layout = config.get("sei") or {}
        precision = layout.get("coordinate_precision")
        if precision is not None and 2 ** int(precision) != float(config["q_step"]):
            raise CodecError(
                f"{config['name']}: q_step {config['q_step']} disagrees with the SEI layout's "
                f"coordinate_precision {precision} (2^{precision} = {2 ** int(precision)}); "
                "set q_step to 2^coordinate_precision"
            )

    @classmethod
    def intra_section(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """The key-frame codec's config (``intra``: ``picture_codec/auto``, VTM when found, else vvenc; or
        ``vtm``, ``vvenc``) with the picture format set to the configured ``key_frame_format``."""
        key_frame_format = str(config["key_frame_format"]).lower()
        return conventional_section(config["name"], config.get("intra"), key_frame_format, "key frame")

    def _sei_config(self) -> dict[str, Any]:
        section = copy.deepcopy(dict(self.config["sei"]))
        if self.config.get("num_kp") is not None and section.get("coordinates"):
            section["coordinates"]["num"] = int(self.config["num_kp"])
        return section

    def _weights_id(self) -> str:
        """Which weights, independent of where the checkpoint file sits (part of the configuration hash)."""
        weights = str(getattr(self.model, "weights", self.config["weights"]))
        path = Path(weights)
        return f"{path.name} ({path.stat().st_size} bytes)" if path.is_file() else weights

    def _make_intra_codec(self) -> tuple[str, IntraCodec]:
        name, codec = conventional_codec(self.name, self.intra_section(self.config), "key frame")
        if not isinstance(codec, IntraCodec):
            raise CodecError(f"{self.name}: key-frame codec {name!r} cannot code a single picture")
        return name, codec

    def hashed_settings(self) -> dict[str, Any]:
        """Settings beyond the common ones that a decoder must share with the encoder."""
        return {}

    def _setup_hash(self) -> bytes:
        """Hash of everything that makes a bitstream decodable by this configuration."""
        relevant = {
            "format": bitstream.FORMAT_VERSION,
            "codec": self.bitstream_model(),
            "model_params": self.model_config.get("model_params", self.model_config),
            "weights": self._weights_id(),
            "q_step": self.q_step,
            "feature_coding": self.feature_coding,
            "sei": self.config.get("sei") if self.feature_coding == "sei" else None,
            "intra": type(self.intra).__name__,
            "key_frame_format": self.key_frame_format,
            **self.hashed_settings(),
        }
        text = json.dumps(relevant, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).digest()[: bitstream.HASH_BYTES]

    # -- the Codec interface ------------------------------------------------------------------
    @property
    def random_weights(self) -> bool:
        return bool(getattr(self.model, "random_weights", False))

    def version(self) -> str:
        weights = (
            "RANDOM weights"
            if self.random_weights
            else "no learned weights"
            if self._weights_id() == NONE
            else self._weights_id()
        )
        intra = self.intra.version() if isinstance(self.intra, Codec) else self.intra_name
        return (
            f"gfvc {self.name} (bitstream v{bitstream.FORMAT_VERSION}, {self.feature_coding} features, "
            f"{weights}; key frame: {intra})"
        )

    def provenance(self) -> dict[str, Any]:
        return {
            **super().provenance(),
            "random_weights": self.random_weights,
            "weights": self._weights_id(),
            "checkpoint": str(self.model.weights) if Path(str(self.model.weights)).is_file() else None,
            "feature_coding": self.feature_coding,
            "q_step": self.q_step,
            "intra_codec": self.intra_name,
            "key_frame_format": self.key_frame_format,
            "gop_size": self.key_frames.gop_size,
            "refresh": {
                "metric": self.key_frames.refresh_metric,
                "threshold": self.key_frames.refresh_threshold,
            },
            "config_hash": self.setup_hash.hex(),  # the key is a file format (result.json), kept
            "output_rounding": self.output_rounding,
            "batch_size": self.batch_size,
            "threads": self.threads,
        }

    def encode(self, sequence: SequenceSpec, rate_point: int, workdir: Path) -> EncodeResult:
        """Write ``<sequence>_qp<rate point>.gfvc`` (``.266`` with ``sei`` features: one VVC stream); with
        ``encoder_reconstruction`` also the encoder's reconstruction ``<sequence>_qp<rate point>_recon.rgb``
        (bit-identical to the decoder's output)."""
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        self.clock.take()
        with self.clock("io"):
            original = np.asarray(sequence.read())
        encoded = self.encode_frames(original, rate_point, workdir, sequence.fps)
        stem = f"{sequence.name}_qp{rate_point}"
        path = workdir / f"{stem}{gfv_stream.SUFFIX if self.feature_coding == 'sei' else '.gfvc'}"
        with self.clock("io"):
            path.write_bytes(self.pack(encoded.stream))
        seconds = encoded.seconds
        parts = self.bit_parts(encoded.stream)
        positions = encoded.stream.key_frame_positions
        details: dict[str, Any] = {
            "feature_bits_by_mode": dict(encoded.feature_bits_by_mode),
            "key_frames": len(positions),
            "key_frame_positions": positions,
            "key_frame_qp": self.key_frame_qp(self.config, rate_point),
            **encoded.details,
        }
        if self.encoder_reconstruction:  # the job then checks the decoder's output against it
            start = time.perf_counter()
            reconstruction = workdir / f"{stem}_recon.rgb"
            write_rgb444(reconstruction, self.render(encoded))
            seconds += time.perf_counter() - start
            details["reconstruction_md5"] = compute_digest(reconstruction)
        if encoded.sei_payload_bits is not None:
            details["sei_payload_bits"] = encoded.sei_payload_bits
        details["seconds"] = self.clock.take()
        return EncodeResult(
            bitstream=path,
            bits=parts,
            seconds=seconds,
            details=details,
            log=f"{self.version()}\nbits per part: {parts}\n{details}",
        )

    def decode(self, bitstream_path: Path, sequence: SequenceSpec, workdir: Path) -> DecodeResult:
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        self.clock.take()
        source = str(bitstream_path)
        with self.clock("io"):
            data = Path(bitstream_path).read_bytes()
        stream = self.parse(data, source, sequence.width, sequence.height)
        declared = (stream.frame_count, stream.height, stream.width)
        if declared != (sequence.frames, sequence.height, sequence.width):
            raise CodecError(
                f"{bitstream_path}: holds {stream.frame_count} frames of {stream.width}x"
                f"{stream.height}, sequence {sequence.name} has {sequence.frames} of "
                f"{sequence.width}x{sequence.height}"
            )
        frames = self.decode_stream(stream, workdir, source)
        out = workdir / f"{sequence.name}_decoded.rgb"
        with self.clock("io"):
            write_rgb444(out, frames)
        return DecodeResult(
            frames_file=out,
            seconds=time.perf_counter() - start,
            details={"output_md5": compute_digest(out), "seconds": self.clock.take()},
        )

    # -- the bitstream file -------------------------------------------------------------------
    def pack(self, stream: bitstream.GfvcBitstream) -> bytes:
        """The bitstream file's bytes: the GFVC container, or with ``sei`` features one VVC stream."""
        return gfv_stream.pack(stream) if self.feature_coding == "sei" else bitstream.pack(stream)

    def generator_model(self) -> str:
        """The model whose generator makes the frames (its config's ``type``, else the codec's name)."""
        return str(self.model_config.get("type") or self.name)

    def bit_parts(self, stream: bitstream.GfvcBitstream) -> dict[str, int]:
        return gfv_stream.bit_parts(stream) if self.feature_coding == "sei" else bitstream.bit_parts(stream)

    def count_bits(self, bitstream_path: Path, sequence: SequenceSpec) -> dict[str, int]:
        data = Path(bitstream_path).read_bytes()
        parts = self.bit_parts(self.parse(data, str(bitstream_path), sequence.width, sequence.height))
        if self.feature_coding == "sei":  # the key pictures are the rest of the file, start codes as written
            parts["key_frame"] = 8 * len(data) - sum(
                bits for part, bits in parts.items() if part != "key_frame"
            )
        return parts

    def parse(
        self, data: bytes, source: str = "bitstream", width: int | None = None, height: int | None = None
    ) -> bitstream.GfvcBitstream:
        """Parse and verify a bitstream file made for this model and configuration (a VVC stream with
        ``sei`` features: it holds no frame size, ``width`` and ``height`` give it); another model's is
        refused with the name of the translator that lets this model's generator decode it."""
        expected = self.bitstream_model()
        if self.feature_coding != "sei":
            made_by = bitstream.header_model(data)
            if made_by is not None and made_by != expected:
                hint = translator_hint(made_by, self.generator_model())
                raise bitstream.BitstreamError(
                    f"{source}: made by model {made_by!r}, this decoder is {expected!r}; {hint}"
                )
            return bitstream.unpack(data, source, expect_model=expected, expect_hash=self.setup_hash)
        if width is None or height is None:
            raise ValueError("a GFV SEI stream holds no frame size: give width and height")
        return gfv_stream.unpack(data, source, expected, self.setup_hash, width, height)
