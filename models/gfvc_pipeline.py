"""The GOP pipeline of a GFVC codec: what its encode and decode run between reading and writing files.

Encoder: per GOP one intra-coded key frame, then the features of every other frame coded against the
previous reconstructed ones (:mod:`models.features`), with adaptive refresh cutting a GOP short
(:mod:`models.keyframes`). Decoder: per GOP the key frame, the features, then the generator's frames
(:meth:`GfvcPipeline.render_gop`), the very call the encoder's reconstruction makes, so on one device
both are bit-identical. A model with more in its bitstream overrides the hooks ``encode_context``/
``decode_context``, ``code_gop``, ``render_gop`` and ``generate`` (``models/hdac_codec.py``,
``models/rdac_codec.py``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ctc.codec import IntraCodec
from ctc.stopwatch import Stopwatch
from models import bitstream, features, gfv_stream
from models import sei_layout as sei
from models.base import GenerativeModel
from models.gfvc_build import to_uint8, torch_threads
from models.gop import Encoded, GopCode
from models.keyframes import KeyFramePolicy


class GfvcPipeline:
    """Coding and rendering GOPs; :class:`models.gfvc.GfvcCodec` sets the attributes below from its
    config and adds the files, the settings and the identity."""

    name: str
    config: dict[str, Any]
    device: str
    model: GenerativeModel
    intra: IntraCodec
    clock: Stopwatch
    key_frames: KeyFramePolicy
    feature_coding: str
    sei_layout: sei.SeiLayout | None
    q_step: float
    batch_size: int
    output_rounding: str
    threads: int | None
    setup_hash: bytes

    @classmethod
    def key_frame_qp(cls, config: Mapping[str, Any], rate_point: int) -> int:
        """The key frames' QP at ``rate_point`` of a codec ``config`` (the rate point itself, for the
        models whose rate points are key-frame QPs)."""
        return int(rate_point)

    def encode_frames(self, frames: np.ndarray, rate_point: int, workdir: Path, fps: float = 25.0) -> Encoded:
        """Encode ``(N, 3, H, W)`` uint8 frames at ``rate_point``."""
        if frames.ndim != 4 or frames.shape[1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
            raise ValueError(f"expected (N, 3, H, W) uint8 frames, got {frames.shape} {frames.dtype}")
        with torch_threads(self.threads):
            return self._encode_frames(frames, rate_point, Path(workdir), fps)

    def _encode_frames(self, frames: np.ndarray, rate_point: int, workdir: Path, fps: float) -> Encoded:
        start_time = time.perf_counter()
        count, _, height, width = frames.shape
        layers, context, details = self.encode_context(frames, rate_point, workdir, fps)
        qp = self.key_frame_qp(self.config, rate_point)
        key_frames: dict[int, bytes] = {}
        gops: list[GopCode] = []
        start = 0
        while start < count:
            with self.clock("key_frame"):
                picture = np.ascontiguousarray(frames[start])
                key_frames[start] = self.intra.encode_picture(picture, qp, workdir)
                key_frame = self.intra.decode_picture(key_frames[start], width, height, workdir)
            end = self.key_frames.gop_end(start, count)
            gop = self.code_gop(frames[start:end], key_frame, start, context)
            if self.key_frames.refresh_threshold is not None and len(gop) > 1:
                decoded = gop.decoded if gop.decoded is not None else self.render_gop(gop, start, context)
                cut = self.key_frames.refresh_at(frames[start:end], decoded)
                gop = gop if cut is None else gop.truncate(cut)
            gops.append(gop)
            start += len(gop)
        payloads = {
            mode: [p for gop in gops for p in gop.payloads_by_mode[mode]] for mode in gops[0].payloads_by_mode
        }
        frame_layers = {name: [p for gop in gops for p in gop.layers[name]] for name in gops[0].layers}
        stream = bitstream.GfvcBitstream(
            self.bitstream_model(),
            self.setup_hash,
            width,
            height,
            key_frames,
            payloads[self.feature_coding],
            layers,
            frame_layers,
        )
        by_mode = {mode: 8 * sum(map(len, units)) for mode, units in payloads.items()}
        by_mode["sei"] = by_mode.get("sei", 0) + gfv_stream.SEI_START_CODE_BITS * len(payloads.get("sei", []))
        sei_bits = sum(map(sei.gfv_payload_bits, payloads["sei"])) if "sei" in payloads else None
        return Encoded(stream, gops, context, time.perf_counter() - start_time, by_mode, sei_bits, details)

    def encode_context(
        self, frames: np.ndarray, rate_point: int, workdir: Path, fps: float
    ) -> tuple[dict[str, bytes], Any, dict[str, Any]]:
        """Sequence-level layers a model codes besides key frames and features, what the decoder
        rebuilds from them, and figures for result.json (none here; HDAC: its base layer)."""
        return {}, None, {}

    def decode_context(self, stream: bitstream.GfvcBitstream, workdir: Path, source: str) -> Any:
        """What :meth:`encode_context`'s layers decode to."""
        return None

    def code_gop(self, frames: np.ndarray, key_frame: np.ndarray, start: int, context: Any) -> GopCode:
        """Code the features of one GOP (``frames[0]`` is its key frame, at frame ``start``)."""
        reference = self.reference_features(key_frame)
        driving = self._features(frames[1:])
        coded = {"ae": features.code_ae(reference, driving, self.q_step)}
        if self.sei_layout is not None:  # both modes are cheap: the other one's rate is reported too
            coded["sei"] = features.code_sei(reference, driving, self.sei_layout)
        return GopCode(
            key_frame,
            {mode: payloads for mode, (payloads, _) in coded.items()},
            coded[self.feature_coding][1],
        )

    def bitstream_model(self) -> str:
        """The model name this configuration's bitstreams carry (an interop codec's: its encoder's)."""
        return self.name

    def prepare_reference(self, key: torch.Tensor) -> Any:
        """What the generator needs from the decoded key frame ``(1, 3, H, W)``, once per GOP."""
        return self.model.prepare_reference(key)

    def decode_stream(
        self, stream: bitstream.GfvcBitstream, workdir: Path, source: str = "bitstream"
    ) -> np.ndarray:
        """Per GOP: the key frame, the features, then the frames (:meth:`render_gop`)."""
        with torch_threads(self.threads):
            context = self.decode_context(stream, Path(workdir), source)
            out = np.empty((stream.frame_count, 3, stream.height, stream.width), np.uint8)
            for start, end in stream.gops():
                with self.clock("key_frame"):
                    key_frame = self.intra.decode_picture(
                        stream.key_frames[start], stream.width, stream.height, Path(workdir)
                    )
                recon = features.decode(
                    stream.payloads[start:end],
                    self.reference_features(key_frame),
                    self.feature_coding,
                    self.q_step,
                    self.sei_layout,
                    source,
                    start,
                )
                layers = {name: payloads[start:end] for name, payloads in stream.frame_layers.items()}
                gop = GopCode(key_frame, {self.feature_coding: stream.payloads[start:end]}, recon, layers)
                out[start:end] = self.render_gop(gop, start, context)
            return out

    def render(self, encoded: Encoded) -> np.ndarray:
        """The encoder's reconstruction of every frame: the decoder's own path on the encoder's data."""
        with torch_threads(self.threads):
            starts = encoded.stream.key_frame_positions
            return np.concatenate(
                [
                    self.render_gop(gop, start, encoded.context)
                    for gop, start in zip(encoded.gops, starts, strict=True)
                ]
            )

    def render_gop(self, gop: GopCode, start: int, context: Any) -> np.ndarray:
        """One GOP's frames ``(n, 3, H, W)`` uint8: the key frame, then the generator's frames.

        The one generator path of both the encoder's reconstruction and the decoder: the key frame's
        reference is prepared once, then frames go through the generator in ``batch_size`` batches in
        order (a float32 convolution's result can depend on the batch size, so both sides must batch
        alike to be bit-identical).
        """
        out = np.empty((len(gop), *gop.key_frame.shape), np.uint8)
        out[0] = gop.key_frame
        with torch.inference_mode():
            key = self._to_tensor(gop.key_frame[None])
            reference = self.prepare_reference(key)
            for first in range(0, len(gop.features), self.batch_size):
                chunk = (
                    torch.from_numpy(gop.features[first : first + self.batch_size]).float().to(self.device)
                )
                indices = range(start + 1 + first, start + 1 + first + len(chunk))
                with self.clock("generation"):
                    frames = self.generate(key, reference, chunk, indices, context)
                out[1 + first : 1 + first + len(chunk)] = to_uint8(frames, self.output_rounding)
        return out

    def generate(
        self, key: torch.Tensor, reference: Any, chunk: torch.Tensor, indices: range, context: Any
    ) -> torch.Tensor:
        """The generator's frames ``indices`` of the sequence from their features ``chunk``."""
        return self.model.generate(key, reference, chunk)

    def reference_features(self, key_frame: np.ndarray) -> np.ndarray:
        """The decoded key frame's features ``(D,)``: the prediction of the GOP's first inter frame."""
        return self._features(key_frame[None])[0]

    def _to_tensor(self, frames: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(frames, np.uint8)).to(self.device).float() / 255

    def _features(self, frames: np.ndarray) -> np.ndarray:
        """Features ``(B, D)`` float64 (exact float32 values), extracted in batches."""
        chunks = [np.zeros((0, self.model.feature_size))]
        with torch.inference_mode(), self.clock("features"):
            for start in range(0, len(frames), self.batch_size):
                chunk = self.model.extract_features(self._to_tensor(frames[start : start + self.batch_size]))
                chunks.append(chunk.detach().float().cpu().numpy().astype(np.float64))
        return np.concatenate(chunks)
