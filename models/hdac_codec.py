"""HDAC as a GFVC codec: key frames and keypoints as DAC, plus a conventional base layer.

The base layer is the whole sequence coded by the harness's own conventional codec (``base``,
``picture_codec/auto``: VTM when found, else vvenc; or vtm, vvenc, x265) at the rate point's QP,
optionally at a reduced size (``base_layer_scale``, resized with OpenCV's Lanczos filter both ways).
Its bitstream is the layer ``base_layer`` of the ``.gfvc`` file, counted in the rate as its own part.
The key frames are coded at ``key_frame_qp`` (GFVC_Software_v2's HDAC rate points: key frame QP 22,
base layer QP 37 to 52).

Where this differs from the upstream scripts: upstream writes the frames to an mp4 with libx264
(quality 10) and converts that to YUV before HM/VTM codes it, then passes the decoded base layer
through a second lossy x264 mp4 before the generator sees it. We code the sequence's own frames
and give the generator the conventional decoder's output, so the base layer's quality is the
codec's alone; the upstream numbers carry two extra x264 losses.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ctc.codec import CodecError, codec_class, register_codec
from ctc.frames import read_rgb444, write_rgb444
from ctc.testset.sequences import SequenceSpec
from models import bitstream
from models.gfvc import GfvcCodec
from models.gfvc_build import conventional_codec, conventional_section

BASE_LAYER = "base_layer"
UPSTREAM_DIFFERENCE = (
    "base layer coded by the harness's conventional codec directly from the sequence at "
    "the rate point's QP; upstream HDAC passes it through two extra lossy x264 mp4 round "
    "trips"
)


def resize_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """``(N, 3, h, w)`` uint8 frames resized to ``width`` x ``height`` with OpenCV's Lanczos filter."""
    if frames.shape[2:] == (height, width):
        return frames
    pictures = [
        cv2.resize(
            np.ascontiguousarray(f.transpose(1, 2, 0)), (width, height), interpolation=cv2.INTER_LANCZOS4
        )
        for f in frames
    ]
    return np.stack(pictures).transpose(0, 3, 1, 2).copy()


@register_codec("hdac")
class HdacCodec(GfvcCodec):
    """HDAC: DAC's keypoints animate the key frame, fused with a conventional base layer."""

    resolved_sections = GfvcCodec.resolved_sections | {"base"}  # the identity's base_layer_codec
    extra_layers = "HDAC's base layer (a second, conventionally coded video)"

    def __init__(self, config: Mapping[str, Any], *args: Any, **kwargs: Any) -> None:
        # before the base class's set-up, which hashes them into the configuration (the default:
        # ctc/conf/codec/hdac.yaml)
        self.base_scale = float(config["base_layer_scale"])
        if not 0 < self.base_scale <= 1:
            raise ValueError(f"{config['name']}: base_layer_scale {self.base_scale}: expected 0 < scale <= 1")
        self.base_name, self.base_codec = conventional_codec(
            config["name"], self.base_section(config), "base layer"
        )
        super().__init__(config, *args, **kwargs)

    @classmethod
    def base_section(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """The base-layer codec's config (``base``: a ``picture_codec``: auto, vtm, vvenc, x265)."""
        return conventional_section(config["name"], config.get("base"), "yuv420", "base layer")

    @classmethod
    def identity(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        base = cls.base_section(config)
        return {
            **super().identity(config),
            "base_layer_codec": {"config": base, **codec_class(base).identity(base)},
        }

    def hashed_settings(self) -> dict[str, Any]:
        return {"base_codec": self.base_name, "base_layer_scale": self.base_scale}

    @classmethod
    def key_frame_qp(cls, config: Mapping[str, Any], rate_point: int) -> int:
        return int(config["key_frame_qp"])

    def version(self) -> str:
        return f"{super().version()}; base layer: {self.base_codec.version()}"

    def provenance(self) -> dict[str, Any]:
        return {
            **super().provenance(),
            "base_codec": self.base_name,
            "base_layer_scale": self.base_scale,
            "key_frame_qp": int(self.config["key_frame_qp"]),
            "upstream_difference": UPSTREAM_DIFFERENCE,
        }

    def _base_size(self, width: int, height: int) -> tuple[int, int]:
        size = (round(width * self.base_scale), round(height * self.base_scale))
        if size[0] % 2 or size[1] % 2:
            raise CodecError(
                f"{self.name}: base_layer_scale {self.base_scale} gives {size[0]}x{size[1]}; "
                "YUV 4:2:0 needs even sizes"
            )
        return size

    def _base_sequence(self, folder: Path, count: int, width: int, height: int, fps: float) -> SequenceSpec:
        return SequenceSpec("base_layer", "HDAC", "base_layer.rgb", width, height, count, fps, root=folder)

    def encode_context(
        self, frames: np.ndarray, rate_point: int, workdir: Path, fps: float
    ) -> tuple[dict[str, bytes], Any, dict[str, Any]]:
        count, _, height, width = frames.shape
        base_width, base_height = self._base_size(width, height)
        folder = workdir / "base_layer"
        folder.mkdir(parents=True, exist_ok=True)
        sequence = self._base_sequence(folder, count, base_width, base_height, fps)
        write_rgb444(sequence.path, resize_frames(frames, base_width, base_height))
        try:
            coded = self.base_codec.encode(sequence, rate_point, folder)
            data = coded.bitstream.read_bytes()
        finally:
            sequence.path.unlink(missing_ok=True)
        coded.bitstream.unlink()
        details = {
            "base_layer": {
                "codec": self.base_name,
                "qp": int(rate_point),
                "scale": self.base_scale,
                "size": [base_width, base_height],
                "bits": 8 * len(data),
                "upstream_difference": UPSTREAM_DIFFERENCE,
            }
        }
        return {BASE_LAYER: data}, self._decode_base_layer(data, count, width, height, folder), details

    def decode_context(self, stream: bitstream.GfvcBitstream, workdir: Path, source: str) -> np.ndarray:
        if BASE_LAYER not in stream.layers:
            raise bitstream.BitstreamError(f"{source}: no base layer")
        folder = workdir / "base_layer"
        folder.mkdir(parents=True, exist_ok=True)
        return self._decode_base_layer(
            stream.layers[BASE_LAYER], stream.frame_count, stream.width, stream.height, folder
        )

    def _decode_base_layer(
        self, data: bytes, count: int, width: int, height: int, folder: Path
    ) -> np.ndarray:
        """The decoded base layer at the sequence's size, ``(N, 3, H, W)`` uint8."""
        base_width, base_height = self._base_size(width, height)
        path = folder / f"base_layer{getattr(self.base_codec, 'suffix', '.bin')}"
        path.write_bytes(data)
        sequence = self._base_sequence(folder, count, base_width, base_height, 25.0)
        try:
            decoded = self.base_codec.decode(path, sequence, folder)
            frames = np.array(read_rgb444(decoded.frames_file, base_width, base_height, count))
            decoded.frames_file.unlink()
        finally:
            path.unlink(missing_ok=True)
        return resize_frames(frames, width, height)

    def generate(
        self, key: torch.Tensor, reference: Any, chunk: torch.Tensor, indices: range, context: Any
    ) -> torch.Tensor:
        base_layer = self._to_tensor(context[indices.start : indices.stop])
        return self.model.generate(key, reference, chunk, base_layer=base_layer)
