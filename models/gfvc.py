"""The GFVC codec: key frame by an intra codec, features per frame, one bitstream file; the decoder.

Encoder (as the GFVC common software): frame 0 is coded as one intra picture at the rate point's
QP; reference features come from the *decoded* key frame; every other frame's features are coded
as the residual against the previous *reconstructed* features, quantised with the model's step
(closed loop, so encoder and decoder never drift). Feature coding is ``ae`` (the common software's
entropy coder, bit-exact: :mod:`models.entropy`) or ``sei`` (the GFV SEI message: :mod:`models.sei`);
the encoder also reports what the other mode would have spent, so reports can compare them.

Decoder: reads only the bitstream file (:mod:`models.bitstream`) and the weights, decodes the key
frame, rebuilds every frame's features and runs the generator batched over frames. Output frame 0 is
the decoded key frame. The encoder's reconstruction goes through the very same call
(:meth:`GfvcCodec.render`: same batches, same inputs), so on one device both are bit-identical.
Every number comes from the codec config (``ctc/conf/codec/<model>.yaml``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ctc.codec import (
    Codec,
    CodecError,
    DecodeResult,
    EncodeResult,
    IntraCodec,
    codec_class,
    create_codec,
    register_codec,
)
from ctc.conf import ConfigNotFound, load_section
from ctc.devices import batch_size_for
from ctc.frames import write_rgb444
from ctc.hashing import file_digest
from ctc.sequences import SequenceSpec
from models import bitstream, entropy, sei
from models.base import GenerativeModel

FEATURE_CODINGS = ("ae", "sei")
OUTPUT_ROUNDINGS = ("truncate", "round")
KEY_FRAME_FORMATS = ("yuv420", "rgb444")
AUTO_INTRA = ("vtm", "vvenc")  # intra_codec auto: the first one found


def load_config_section(group: str, section: str | Mapping[str, Any]) -> dict[str, Any]:
    """A config section given inline (mapping) or by name (``ctc/conf/<group>/<name>.yaml``)."""
    if isinstance(section, Mapping):
        return dict(section)
    try:
        return load_section(group, section)
    except ConfigNotFound as exc:
        raise CodecError(str(exc)) from None


def to_uint8(prediction: torch.Tensor, rounding: str) -> np.ndarray:
    """Generator output in [0, 1] to 8-bit; ``truncate`` is the common software's ``(x * 255)`` cast."""
    scaled = np.clip(prediction.detach().float().cpu().numpy() * 255, 0, 255)
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


def ae_reconstruct(previous: np.ndarray, quantised: list[int], q_step: float) -> np.ndarray:
    """``previous + q / q_step``: the one reconstruction formula the encoder and decoder share."""
    return previous + np.asarray(quantised, np.float64) / q_step


def code_features_ae(reference: np.ndarray, driving: np.ndarray,
                     q_step: float) -> tuple[list[bytes], np.ndarray]:
    """``ae`` mode: payloads (frame 0's empty) and the closed-loop reconstruction of ``driving``."""
    payloads, recon = [b""], []
    previous = reference
    for current in driving:
        quantised = entropy.quantise(current - previous, q_step)
        payloads.append(entropy.encode_values(quantised))
        previous = ae_reconstruct(previous, quantised, q_step)
        recon.append(previous)
    return payloads, np.asarray(recon, np.float64).reshape(len(driving), reference.size)


def code_features_sei(reference: np.ndarray, driving: np.ndarray,
                      layout: sei.SeiLayout) -> tuple[list[bytes], np.ndarray]:
    """``sei`` mode: one GFV SEI NAL unit per frame (frame 0 the base picture) and the reconstruction."""
    writer = sei.GfvSeiWriter(layout)
    payloads, recon = [writer.write(reference, 0)[0]], []
    for index, current in enumerate(driving, start=1):
        payload, rec = writer.write(current, index)
        payloads.append(payload)
        recon.append(rec)
    return payloads, np.asarray(recon, np.float64).reshape(len(driving), reference.size)


@dataclass
class Encoded:
    """What the encoder produced, with its closed-loop view of the decoder's inputs."""

    stream: bitstream.GfvcBitstream
    key_frame: np.ndarray  # decoded key frame (3, H, W) uint8
    features: np.ndarray  # reconstructed features of frames 1 .. N-1, (N-1, D) float64
    seconds: float
    feature_bits_by_mode: dict[str, int] = field(default_factory=dict)  # mode -> feature bits
    sei_payload_bits: int | None = None  # GFV SEI payloads alone (no NAL or SEI message headers)


class GfvcCodec(Codec):
    """A GFVC model as a codec; one registered subclass per model (``fomm``, ``cfte``, ``fv2v``)."""

    uses_gpu = True
    container_bit_parts = ("header",)  # the common software counts key frame + feature payloads only

    def __init__(self, config: Mapping[str, Any], device: str = "cpu",
                 model: GenerativeModel | None = None, intra_codec: IntraCodec | None = None) -> None:
        super().__init__(config, device)
        cfg = self.config
        self.check_config(cfg)
        self.feature_coding = self._choice("feature_coding", "ae", FEATURE_CODINGS)
        self.output_rounding = self._choice("output_rounding", "truncate", OUTPUT_ROUNDINGS)
        self.key_frame_format = self._choice("key_frame_format", "yuv420", KEY_FRAME_FORMATS)
        self.q_step = float(cfg["q_step"])
        self.batch_size = batch_size_for(cfg, device)
        self.encoder_reconstruction = bool(cfg.get("encoder_reconstruction", False))
        threads = cfg.get("threads")
        self.threads = None if threads is None else int(threads)
        if device.startswith("cuda"):
            torch.backends.cudnn.deterministic = True  # encoder and decoder must extract identical features
            torch.backends.cudnn.benchmark = False
        self.model_config = self._model_config_of(cfg.get("model", self.name))
        self.model = model if model is not None else self._load_model()
        self.intra_name, self.intra = ((type(intra_codec).__name__, intra_codec) if intra_codec is not None
                                       else self._make_intra_codec())
        # the SEI layout also serves ae mode: its rate is reported next to the ae one
        self.sei_layout = (sei.SeiLayout.from_config(cfg["sei"], self.model.feature_size)
                           if cfg.get("sei") else None)
        if self.feature_coding == "sei" and self.sei_layout is None:
            raise ValueError(f"{self.name}: feature_coding sei needs a 'sei' section (the GFV SEI layout)")
        self.config_hash = self._config_hash()

    def _choice(self, key: str, default: str, allowed: tuple[str, ...]) -> str:
        value = str(self.config.get(key, default)).lower()
        if value not in allowed:
            raise ValueError(f"{self.name}: {key} {value!r}: expected one of {allowed}")
        return value

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def identity(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """The weights (the checkpoint's sha256, or random with its seed) and the key-frame codec's own
        identity, resolved without building the model."""
        from models.checkpoints import RANDOM, RANDOM_SEED, CheckpointError, resolve_weights

        cls.check_config(config)
        model_config = cls._model_config_of(config.get("model", cls.name))
        try:
            weights = resolve_weights(cls.name, model_config, config.get("weights", "auto"))
        except CheckpointError as exc:
            raise CodecError(str(exc)) from None
        intra = cls.intra_section(config)
        return {"weights": f"{RANDOM} (seed {RANDOM_SEED})" if weights == RANDOM
                else f"{Path(weights).name} sha256 {file_digest(weights, 'sha256')}",
                "key_frame_codec": {"config": intra, **codec_class(intra).identity(intra)}}

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> None:
        """Settings that contradict each other: the SEI coordinates carry ``q_step = 2^precision``."""
        layout = config.get("sei") or {}
        precision = layout.get("coordinate_precision")
        if precision is not None and 2 ** int(precision) != float(config["q_step"]):
            raise CodecError(f"{cls.name}: q_step {config['q_step']} disagrees with the SEI layout's "
                             f"coordinate_precision {precision} (2^{precision} = {2 ** int(precision)}); "
                             "set q_step to 2^coordinate_precision")

    def _load_model(self) -> GenerativeModel:
        """The model with the configured weights (:func:`models.checkpoints.resolve_weights`)."""
        from models.checkpoints import ENV_VAR, RANDOM, resolve_weights
        from models.registry import create_model

        weights = str(self.config.get("weights", "auto"))
        resolved = resolve_weights(self.name, self.model_config, weights)
        model = create_model(self.name, self.model_config, weights=str(resolved), device=self.device)
        if getattr(model, "random_weights", False):
            none_found = weights == "auto" and resolved == RANDOM
            reason = f"no checkpoint found: set {ENV_VAR}" if none_found else f"weights={weights}"
            # one line on stderr whatever the logging setup (the sweep's summary prints its warning alike)
            print(f"WARNING: {self.name} runs with RANDOM weights, so its pictures and scores are not those "
                  f"of the published model ({reason})", file=sys.stderr, flush=True)
        return model

    def _weights_id(self) -> str:
        """Which weights, independent of where the checkpoint file sits (part of the configuration hash)."""
        weights = str(getattr(self.model, "weights", self.config.get("weights", "auto")))
        path = Path(weights)
        return f"{path.name} ({path.stat().st_size} bytes)" if path.is_file() else weights

    @staticmethod
    def _model_config_of(section: str | Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(section, Mapping):
            return dict(section)
        from models.registry import load_model_config

        return load_model_config(str(section))

    @classmethod
    def intra_section(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """The key-frame codec's config: ``intra_codec`` ``vtm``, ``vvenc`` (or an inline codec section),
        or ``auto``: VTM when its binaries are found (:func:`anchors.vtm_tools.vtm_installed`), else
        vvenc; with the picture format set to the configured ``key_frame_format``."""
        choice = config.get("intra_codec", "auto")
        key_frame_format = str(config.get("key_frame_format", "yuv420")).lower()
        if choice == "auto":
            from anchors.vtm_tools import vtm_installed

            choice = "vtm" if vtm_installed(load_config_section("codec", "vtm")) else "vvenc"
            if choice == "vvenc" and key_frame_format != "yuv420":
                raise CodecError(f"{cls.name}: key_frame_format {key_frame_format} needs VTM (vvenc codes "
                                 "YUV 4:2:0 only) and VTM is not installed: build it with `make vtm`, or "
                                 "use key_frame_format yuv420")
        section = load_config_section("codec", choice)
        key = section.get("picture_format_key")
        if key:
            section[key] = key_frame_format
        return section

    def _make_intra_codec(self) -> tuple[str, IntraCodec]:
        section = self.intra_section(self.config)
        try:
            codec = create_codec(section, device="cpu")
        except KeyError as exc:
            raise CodecError(f"{self.name}: intra_codec {section.get('name')!r}: {exc.args[0]}") from None
        if not isinstance(codec, IntraCodec):
            raise CodecError(f"{self.name}: intra_codec {section.get('name')!r} cannot code a single picture")
        return str(section["name"]), codec

    def _config_hash(self) -> bytes:
        """Hash of everything that makes a bitstream decodable by this configuration."""
        relevant = {
            "format": bitstream.FORMAT_VERSION, "codec": self.name,
            "model_params": self.model_config.get("model_params", self.model_config),
            "weights": self._weights_id(),
            "q_step": self.q_step, "feature_coding": self.feature_coding,
            "sei": self.config.get("sei") if self.feature_coding == "sei" else None,
            "intra": type(self.intra).__name__, "key_frame_format": self.key_frame_format,
        }
        text = json.dumps(relevant, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).digest()[:bitstream.HASH_BYTES]

    # -- the Codec interface ------------------------------------------------------------------
    @property
    def random_weights(self) -> bool:
        return bool(getattr(self.model, "random_weights", False))

    def version(self) -> str:
        weights = "RANDOM weights" if self.random_weights else self._weights_id()
        intra = self.intra.version() if isinstance(self.intra, Codec) else self.intra_name
        return (f"gfvc {self.name} (bitstream v{bitstream.FORMAT_VERSION}, {self.feature_coding} features, "
                f"{weights}; key frame: {intra})")

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "random_weights": self.random_weights,
                "weights": self._weights_id(),
                "checkpoint": None if self.random_weights else str(getattr(self.model, "weights", None)),
                "feature_coding": self.feature_coding, "q_step": self.q_step,
                "intra_codec": self.intra_name, "key_frame_format": self.key_frame_format,
                "config_hash": self.config_hash.hex(), "output_rounding": self.output_rounding,
                "batch_size": self.batch_size, "threads": self.threads}

    def encode(self, sequence: SequenceSpec, rate_point: int, workdir: Path) -> EncodeResult:
        """Write ``<sequence>_qp<rate point>.gfvc``; with ``encoder_reconstruction`` also the encoder's
        reconstruction ``<sequence>_qp<rate point>_recon.rgb`` (bit-identical to the decoder's output)."""
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        frames = np.asarray(sequence.read())
        encoded = self.encode_frames(frames, rate_point, workdir)
        stem = f"{sequence.name}_qp{rate_point}"
        path = workdir / f"{stem}.gfvc"
        path.write_bytes(bitstream.pack(encoded.stream))
        seconds = encoded.seconds
        if self.encoder_reconstruction:
            start = time.perf_counter()
            write_rgb444(workdir / f"{stem}_recon.rgb", self.render(encoded.key_frame, encoded.features))
            seconds += time.perf_counter() - start
        parts = bitstream.bit_parts(encoded.stream)
        details: dict[str, Any] = {"feature_bits_by_mode": dict(encoded.feature_bits_by_mode)}
        if encoded.sei_payload_bits is not None:
            details["sei_payload_bits"] = encoded.sei_payload_bits
        return EncodeResult(bitstream=path, bits=parts, seconds=seconds, details=details,
                            log=f"{self.version()}\nbits per part: {parts}\n{details}")

    def decode(self, bitstream_path: Path, sequence: SequenceSpec, workdir: Path) -> DecodeResult:
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        source = str(bitstream_path)
        stream = self.parse(Path(bitstream_path).read_bytes(), source)
        declared = (stream.frame_count, stream.height, stream.width)
        if declared != (sequence.frames, sequence.height, sequence.width):
            raise CodecError(f"{bitstream_path}: holds {stream.frame_count} frames of {stream.width}x"
                             f"{stream.height}, sequence {sequence.name} has {sequence.frames} of "
                             f"{sequence.width}x{sequence.height}")
        frames = self.decode_stream(stream, workdir, source)
        out = workdir / f"{sequence.name}_decoded.rgb"
        write_rgb444(out, frames)
        return DecodeResult(frames_file=out, seconds=time.perf_counter() - start)

    # -- the pipeline -------------------------------------------------------------------------
    def encode_frames(self, frames: np.ndarray, qp: int, workdir: Path) -> Encoded:
        """Encode ``(N, 3, H, W)`` uint8 frames with the key frame at ``qp``."""
        if frames.ndim != 4 or frames.shape[1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
            raise ValueError(f"expected (N, 3, H, W) uint8 frames, got {frames.shape} {frames.dtype}")
        with torch_threads(self.threads):
            return self._encode_frames(frames, qp, workdir)

    def _encode_frames(self, frames: np.ndarray, qp: int, workdir: Path) -> Encoded:
        start = time.perf_counter()
        height, width = frames.shape[2:]
        key_bytes = self.intra.encode_picture(np.ascontiguousarray(frames[0]), qp, workdir)
        key_frame = self.intra.decode_picture(key_bytes, width, height, workdir)
        reference = self.reference_features(key_frame)
        driving = self._features(frames[1:])
        coded = {"ae": code_features_ae(reference, driving, self.q_step)}
        if self.sei_layout is not None:  # both modes are cheap: the other one's rate is reported too
            coded["sei"] = code_features_sei(reference, driving, self.sei_layout)
        payloads, features = coded[self.feature_coding]
        by_mode = {mode: 8 * sum(map(len, units)) for mode, (units, _) in coded.items()}
        sei_bits = sum(map(sei.gfv_payload_bits, coded["sei"][0])) if "sei" in coded else None
        stream = bitstream.GfvcBitstream(self.name, self.config_hash, width, height, key_bytes, payloads)
        return Encoded(stream, key_frame, features, time.perf_counter() - start, by_mode, sei_bits)

    def parse(self, data: bytes, source: str = "bitstream") -> bitstream.GfvcBitstream:
        """Parse and verify a packed bitstream made for this model and configuration."""
        return bitstream.unpack(data, source, expect_model=self.name, expect_hash=self.config_hash)

    def decode_bytes(self, data: bytes, workdir: Path, source: str = "bitstream") -> np.ndarray:
        """Decode a packed bitstream to ``(N, 3, H, W)`` uint8 frames."""
        return self.decode_stream(self.parse(data, source), Path(workdir), source)

    def decode_stream(self, stream: bitstream.GfvcBitstream, workdir: Path,
                      source: str = "bitstream") -> np.ndarray:
        """The key frame, every frame's features, then the frames (:meth:`render`)."""
        with torch_threads(self.threads):
            return self._decode_stream(stream, workdir, source)

    def _decode_stream(self, stream: bitstream.GfvcBitstream, workdir: Path, source: str) -> np.ndarray:
        key_frame = self.intra.decode_picture(stream.key_frame, stream.width, stream.height, Path(workdir))
        return self.render(key_frame, self.decode_features(stream, key_frame, source))

    def decode_features(self, stream: bitstream.GfvcBitstream, key_frame: np.ndarray,
                        source: str = "bitstream") -> np.ndarray:
        """Every inter frame's reconstructed features, ``(N-1, D)`` float64."""
        size = self.model.feature_size
        recon: list[np.ndarray] = []
        try:
            if self.feature_coding == "ae":
                if stream.payloads[0]:
                    raise bitstream.BitstreamError(f"{source}: key-frame feature payload in ae mode")
                previous = self.reference_features(key_frame)
                for payload in stream.payloads[1:]:
                    previous = ae_reconstruct(previous, entropy.decode_values(payload, size), self.q_step)
                    recon.append(previous)
            else:
                parser = sei.GfvSeiParser(self.sei_layout, size)
                parser.read(stream.payloads[0], 0)
                recon = [parser.read(payload, index) for index, payload in enumerate(stream.payloads[1:], 1)]
        except (entropy.EntropyError, sei.SeiError) as exc:
            raise bitstream.BitstreamError(f"{source}: frame {len(recon) + 1}: {exc}") from exc
        return np.asarray(recon, np.float64).reshape(len(stream.payloads) - 1, size)

    def render(self, key_frame: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Frames ``(N, 3, H, W)`` uint8: the key frame, then the generator's frames.

        The one generator path of both the encoder's reconstruction and the decoder: the key frame's
        reference is prepared once, then frames go through the generator in ``batch_size`` batches in
        order (a float32 convolution's result can depend on the batch size, so both sides must batch
        alike to be bit-identical).
        """
        out = np.empty((1 + len(features), *key_frame.shape), np.uint8)
        out[0] = key_frame
        with torch_threads(self.threads), torch.inference_mode():
            key = self._to_tensor(key_frame[None])
            reference = self.model.prepare_reference(key)
            for start in range(0, len(features), self.batch_size):
                chunk = torch.from_numpy(features[start:start + self.batch_size]).float().to(self.device)
                frames = self.model.generate(key, reference, chunk)
                out[1 + start:1 + start + len(chunk)] = to_uint8(frames, self.output_rounding)
        return out

    def reference_features(self, key_frame: np.ndarray) -> np.ndarray:
        """The decoded key frame's features ``(D,)``: the prediction of frame 1 on both sides."""
        return self._features(key_frame[None])[0]

    def _to_tensor(self, frames: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(frames, np.uint8)).to(self.device).float() / 255

    def _features(self, frames: np.ndarray) -> np.ndarray:
        """Features ``(B, D)`` float64 (exact float32 values), extracted in batches."""
        chunks = [np.zeros((0, self.model.feature_size))]
        with torch.inference_mode():
            for start in range(0, len(frames), self.batch_size):
                chunk = self.model.extract_features(self._to_tensor(frames[start:start + self.batch_size]))
                chunks.append(chunk.detach().float().cpu().numpy().astype(np.float64))
        return np.concatenate(chunks)


@register_codec("fomm")
class FommCodec(GfvcCodec):
    """FOMM: 10 keypoints + 10 Jacobians per frame."""


@register_codec("cfte")
class CfteCodec(GfvcCodec):
    """CFTE: a 4x4 compact feature per frame."""


@register_codec("fv2v")
class Fv2vCodec(GfvcCodec):
    """FV2V: rotation, translation and expression per frame."""
