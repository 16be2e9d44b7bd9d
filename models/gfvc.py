"""The GFVC codec: key frame by an intra codec, features per frame, one bitstream file; the decoder.

Encoder (as the GFVC common software): frame 0 is coded as one intra picture at the rate point's
QP; reference features come from the *decoded* key frame; every other frame's features are coded
as the residual against the previous *reconstructed* features, quantised with the model's step
(closed loop, so encoder and decoder never drift). Feature coding is ``ae`` (the common software's
entropy coder, bit-exact: :mod:`models.entropy`) or ``sei`` (the GFV SEI message: :mod:`models.sei`).

Decoder: reads only the bitstream file (:mod:`models.bitstream`) and the weights, decodes the key
frame, rebuilds every frame's features and runs the generator batched over frames. Output frame 0 is
the decoded key frame. Every number comes from the codec config (``ctc/conf/codec/<model>.yaml``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ctc.codec import Codec, CodecError, DecodeResult, EncodeResult, IntraCodec, create_codec, register_codec
from ctc.frames import write_rgb444
from ctc.paths import PROJECT_ROOT
from ctc.sequences import SequenceSpec
from models import bitstream, entropy, sei
from models.base import GenerativeModel

log = logging.getLogger(__name__)

CONF_DIR = PROJECT_ROOT / "ctc" / "conf"
FEATURE_CODINGS = ("ae", "sei")
OUTPUT_ROUNDINGS = ("truncate", "round")


def load_config_section(group: str, section: str | Mapping[str, Any]) -> dict[str, Any]:
    """A config section given inline (mapping) or by name (``ctc/conf/<group>/<name>.yaml``)."""
    if isinstance(section, Mapping):
        return dict(section)
    from omegaconf import OmegaConf

    path = CONF_DIR / group / f"{section}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))) or "none"
        raise CodecError(f"no {group} config {section!r}: {path} is missing (known: {known})")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def to_uint8(prediction: torch.Tensor, rounding: str) -> np.ndarray:
    """Generator output in [0, 1] to 8-bit; ``truncate`` is the common software's ``(x * 255)`` cast."""
    scaled = np.clip(prediction.detach().float().cpu().numpy() * 255, 0, 255)
    return (np.round(scaled) if rounding == "round" else scaled).astype(np.uint8)


def ae_reconstruct(previous: np.ndarray, quantised: list[int], q_step: float) -> np.ndarray:
    """``previous + q / q_step``: the one reconstruction formula the encoder and decoder share."""
    return previous + np.asarray(quantised, np.float64) / q_step


@dataclass
class Encoded:
    """What the encoder produced, with its closed-loop view of the decoder's inputs."""

    stream: bitstream.GfvcBitstream
    key_frame: np.ndarray  # decoded key frame (3, H, W) uint8
    features: np.ndarray  # reconstructed features of frames 1 .. N-1, (N-1, D) float64
    seconds: float


class GfvcCodec(Codec):
    """A GFVC model as a codec; one registered subclass per model (``fomm``, ``cfte``, ``fv2v``)."""

    uses_gpu = True

    def __init__(self, config: Mapping[str, Any], device: str = "cpu",
                 model: GenerativeModel | None = None, intra_codec: IntraCodec | None = None) -> None:
        super().__init__(config, device)
        cfg = self.config
        self.feature_coding = str(cfg.get("feature_coding", "ae")).lower()
        if self.feature_coding not in FEATURE_CODINGS:
            raise ValueError(f"feature_coding {self.feature_coding!r}: expected one of {FEATURE_CODINGS}")
        self.output_rounding = str(cfg.get("output_rounding", "truncate")).lower()
        if self.output_rounding not in OUTPUT_ROUNDINGS:
            raise ValueError(f"output_rounding {self.output_rounding!r}: expected one of {OUTPUT_ROUNDINGS}")
        self.q_step = float(cfg["q_step"])
        self.batch_size = int(cfg.get("batch_size", 8))
        self.key_frame_format = str(cfg.get("key_frame_format", "yuv420")).lower()
        if device.startswith("cuda"):
            torch.backends.cudnn.deterministic = True  # encoder and decoder must extract identical features
            torch.backends.cudnn.benchmark = False
        self.model_config = self._model_config(cfg.get("model", self.name))
        self.model = model if model is not None else self._load_model()
        self.intra = intra_codec if intra_codec is not None else self._make_intra_codec()
        self.sei_layout = (sei.SeiLayout.from_config(cfg["sei"], self.model.feature_size)
                           if self.feature_coding == "sei" else None)
        self.config_hash = self._config_hash()

    # -- construction -------------------------------------------------------------------------
    def _load_model(self) -> GenerativeModel:
        """The model with the configured weights: a checkpoint path, ``checkpoint`` (must be found),
        ``random`` (deterministic, labelled) or ``auto`` (the checkpoint when found, else random)."""
        from models.checkpoints import RANDOM, CheckpointError
        from models.registry import create_model

        weights = str(self.config.get("weights", "auto"))
        choice = None if weights in ("auto", "checkpoint") else weights
        try:
            model = create_model(self.name, self.model_config, weights=choice, device=self.device)
        except CheckpointError as exc:
            if weights != "auto":
                raise
            log.warning("%s: %s", self.name, exc)
            model = create_model(self.name, self.model_config, weights=RANDOM, device=self.device)
        if getattr(model, "random_weights", False):
            log.warning("WARNING: %s runs with RANDOM weights (no checkpoint): its pictures and scores are "
                        "not those of the published model", self.name)
        return model

    def _weights_id(self) -> str:
        """Which weights, independent of where the checkpoint file sits (part of the configuration hash)."""
        weights = str(getattr(self.model, "weights", self.config.get("weights", "auto")))
        path = Path(weights)
        return f"{path.name} ({path.stat().st_size} bytes)" if path.is_file() else weights

    def _model_config(self, section: str | Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(section, Mapping):
            return dict(section)
        from models.registry import load_model_config

        return load_model_config(str(section))

    def _make_intra_codec(self) -> IntraCodec:
        choice = self.config.get("intra_codec", "auto")
        names = ["vtm", "vvenc"] if choice == "auto" else [choice]
        errors = []
        for name in names:
            section = load_config_section("codec", name) if not isinstance(name, Mapping) else dict(name)
            section = {**section, **self._key_frame_options(section)}
            try:
                codec = create_codec(section, device="cpu")
            except (CodecError, FileNotFoundError, KeyError) as exc:
                errors.append(f"{section.get('name')}: {exc}")
                continue
            if not isinstance(codec, IntraCodec):
                raise CodecError(f"intra codec {section.get('name')!r} cannot code a single picture")
            return codec
        raise CodecError("no intra codec for the key frame: " + "; ".join(errors))

    def _key_frame_options(self, section: Mapping[str, Any]) -> dict[str, Any]:
        """The key-frame colour format passed to the intra codec's own option for it."""
        key = section.get("picture_format_key")
        return {key: self.key_frame_format} if key else {}

    def _config_hash(self) -> bytes:
        """Hash of everything that makes a bitstream decodable by this configuration."""
        relevant = {
            "format": bitstream.FORMAT_VERSION, "codec": self.name,
            "model_params": self.model_config.get("model_params", self.model_config),
            "weights": self._weights_id(),
            "q_step": self.q_step, "feature_coding": self.feature_coding,
            "sei": self.config.get("sei") if self.sei_layout else None,
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
        intra = self.intra.version() if hasattr(self.intra, "version") else type(self.intra).__name__
        return (f"gfvc {self.name} (bitstream v{bitstream.FORMAT_VERSION}, {self.feature_coding} features, "
                f"{weights}; key frame: {intra})")

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "random_weights": self.random_weights,
                "weights": self._weights_id(),
                "feature_coding": self.feature_coding, "q_step": self.q_step,
                "key_frame_format": self.key_frame_format, "config_hash": self.config_hash.hex(),
                "output_rounding": self.output_rounding}

    def encode(self, sequence: SequenceSpec, rate_point: int, workdir: Path) -> EncodeResult:
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        encoded = self.encode_frames(np.asarray(sequence.read()), rate_point, workdir)
        path = workdir / f"{sequence.name}_qp{rate_point}.gfvc"
        path.write_bytes(bitstream.pack(encoded.stream))
        parts = bitstream.bit_parts(encoded.stream)
        note = ""
        if self.feature_coding == "sei":
            payload_bits = sum(sei.gfv_payload_bits(p) for p in encoded.stream.payloads)
            note = f"GFV SEI payload bits without NAL/SEI headers: {payload_bits}\n"
        return EncodeResult(bitstream=path, bits=parts, seconds=encoded.seconds,
                            log=f"{self.version()}\n{note}bits per part: {parts}")

    def decode(self, bitstream_path: Path, sequence: SequenceSpec, workdir: Path) -> DecodeResult:
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        frames = self.decode_bytes(Path(bitstream_path).read_bytes(), workdir, source=str(bitstream_path))
        if frames.shape[0] != sequence.frames or frames.shape[2:] != (sequence.height, sequence.width):
            raise CodecError(f"{bitstream_path}: holds {frames.shape[0]} frames of {frames.shape[3]}x"
                             f"{frames.shape[2]}, sequence {sequence.name} has {sequence.frames} of "
                             f"{sequence.width}x{sequence.height}")
        out = workdir / f"{sequence.name}_decoded.rgb"
        write_rgb444(out, frames)
        return DecodeResult(frames_file=out, seconds=time.perf_counter() - start)

    # -- the pipeline -------------------------------------------------------------------------
    def encode_frames(self, frames: np.ndarray, qp: int, workdir: Path) -> Encoded:
        """Encode ``(N, 3, H, W)`` uint8 frames with the key frame at ``qp``."""
        if frames.ndim != 4 or frames.shape[1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
            raise ValueError(f"expected (N, 3, H, W) uint8 frames, got {frames.shape} {frames.dtype}")
        start = time.perf_counter()
        height, width = frames.shape[2:]
        key_bytes = self.intra.encode_picture(np.ascontiguousarray(frames[0]), qp, workdir)
        key_frame = self.intra.decode_picture(key_bytes, width, height, workdir)
        reference = self._features(key_frame[None])[0]
        driving = self._features(frames[1:])
        if self.feature_coding == "ae":
            payloads, recon = [b""], []
            previous = reference
            for current in driving:
                quantised = entropy.quantise(current - previous, self.q_step)
                payloads.append(entropy.encode_values(quantised))
                previous = ae_reconstruct(previous, quantised, self.q_step)
                recon.append(previous)
        else:
            writer = sei.GfvSeiWriter(self.sei_layout)
            payloads = [writer.write(reference, 0)[0]]
            recon = []
            for index, current in enumerate(driving, start=1):
                payload, rec = writer.write(current, index)
                payloads.append(payload)
                recon.append(rec)
        stream = bitstream.GfvcBitstream(self.name, self.config_hash, width, height, key_bytes, payloads)
        features = np.stack(recon) if recon else np.zeros((0, self.model.feature_size))
        return Encoded(stream, key_frame, features, time.perf_counter() - start)

    def decode_bytes(self, data: bytes, workdir: Path, source: str = "bitstream") -> np.ndarray:
        """Decode a packed bitstream to ``(N, 3, H, W)`` uint8 frames."""
        stream = bitstream.unpack(data, source, expect_model=self.name, expect_hash=self.config_hash)
        key_frame = self.intra.decode_picture(stream.key_frame, stream.width, stream.height, Path(workdir))
        features = self.decode_features(stream, key_frame, source)
        return self.render(key_frame, features)

    def decode_features(self, stream: bitstream.GfvcBitstream, key_frame: np.ndarray,
                        source: str = "bitstream") -> np.ndarray:
        """Every inter frame's reconstructed features, ``(N-1, D)`` float64."""
        size = self.model.feature_size
        recon = []
        try:
            if self.feature_coding == "ae":
                if stream.payloads[0]:
                    raise bitstream.BitstreamError(f"{source}: key-frame feature payload in ae mode")
                previous = self._features(key_frame[None])[0]
                for payload in stream.payloads[1:]:
                    previous = ae_reconstruct(previous, entropy.decode_values(payload, size), self.q_step)
                    recon.append(previous)
            else:
                parser = sei.GfvSeiParser(self.sei_layout, size)
                parser.read(stream.payloads[0], 0)
                recon = [parser.read(payload, index) for index, payload in enumerate(stream.payloads[1:], 1)]
        except (entropy.EntropyError, sei.SeiError) as exc:
            raise bitstream.BitstreamError(f"{source}: frame {len(recon) + 1}: {exc}") from exc
        return np.stack(recon) if recon else np.zeros((0, size))

    def render(self, key_frame: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Frames ``(N, 3, H, W)`` uint8: the key frame, then the generator's frames, batched."""
        out = np.empty((1 + len(features), *key_frame.shape), np.uint8)
        out[0] = key_frame
        with torch.inference_mode():
            key = self._to_tensor(key_frame[None])
            reference = self.model.prepare_reference(key)
            for start in range(0, len(features), self.batch_size):
                chunk = torch.from_numpy(features[start:start + self.batch_size]).float().to(self.device)
                frames = self.model.generate(key, reference, chunk)
                out[1 + start:1 + start + len(chunk)] = to_uint8(frames, self.output_rounding)
        return out

    def _to_tensor(self, frames: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(frames, np.uint8)).to(self.device).float() / 255

    def _features(self, frames: np.ndarray) -> np.ndarray:
        """Features ``(B, D)`` float64 (exact float32 values), extracted in batches."""
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(frames), self.batch_size):
                chunk = self.model.extract_features(self._to_tensor(frames[start:start + self.batch_size]))
                chunks.append(chunk.detach().float().cpu().numpy().astype(np.float64))
        return np.concatenate(chunks) if chunks else np.zeros((0, self.model.feature_size))


@register_codec("fomm")
class FommCodec(GfvcCodec):
    """FOMM: 10 keypoints + 10 Jacobians per frame."""


@register_codec("cfte")
class CfteCodec(GfvcCodec):
    """CFTE: a 4x4 compact feature per frame."""


@register_codec("fv2v")
class Fv2vCodec(GfvcCodec):
    """FV2V: rotation, translation and expression per frame."""
