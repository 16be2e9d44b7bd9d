"""Raw video files: planar RGB 4:4:4 and YUV 4:2:0 at 8 or 10 bits, and the colour conversion.

Frames are numpy arrays. RGB sequences are ``(N, 3, H, W)`` (R, G, B planes per frame, as the
CTC files store them). YUV 4:2:0 sequences are a :class:`Yuv420` of three plane stacks.
Samples wider than 8 bits are little-endian ``uint16`` as in the JVET tools.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class Yuv420:
    y: np.ndarray  # (N, H, W)
    u: np.ndarray  # (N, H/2, W/2)
    v: np.ndarray  # (N, H/2, W/2)

    @property
    def num_frames(self) -> int:
        return self.y.shape[0]


def sample_dtype(bit_depth: int) -> np.dtype:
    if bit_depth == 8:
        return np.dtype(np.uint8)
    if 8 < bit_depth <= 16:
        return np.dtype("<u2")
    raise ValueError(f"bit depth {bit_depth} is not supported (expected 8 to 16)")


def rgb444_frame_bytes(width: int, height: int, bit_depth: int = 8) -> int:
    return 3 * width * height * sample_dtype(bit_depth).itemsize


def yuv420_frame_bytes(width: int, height: int, bit_depth: int = 8) -> int:
    return (width * height + 2 * (width // 2) * (height // 2)) * sample_dtype(bit_depth).itemsize


def read_rgb444(
    path: str | Path, width: int, height: int, frames: int | None = None, bit_depth: int = 8
) -> np.ndarray:
    """Memory-map a planar RGB 4:4:4 file as ``(N, 3, H, W)``; ``frames`` limits N."""
    dtype = sample_dtype(bit_depth)
    frame_bytes = rgb444_frame_bytes(width, height, bit_depth)
    available = Path(path).stat().st_size // frame_bytes
    count = available if frames is None else min(frames, available)
    if count == 0:
        return np.zeros((0, 3, height, width), dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(count, 3, height, width))


def write_rgb444(path: str | Path, frames: np.ndarray, bit_depth: int = 8) -> None:
    """Write ``(N, 3, H, W)`` frames as planar RGB 4:4:4."""
    np.ascontiguousarray(frames, dtype=sample_dtype(bit_depth)).tofile(path)


def read_yuv420(
    path: str | Path, width: int, height: int, frames: int | None = None, bit_depth: int = 8
) -> Yuv420:
    """Memory-map a planar YUV 4:2:0 file (I420 order: Y, then U, then V, per frame); ``frames`` limits N."""
    _check_even(width, height)
    dtype = sample_dtype(bit_depth)
    luma, chroma = width * height, (width // 2) * (height // 2)
    per_frame = luma + 2 * chroma
    available = Path(path).stat().st_size // (per_frame * dtype.itemsize)
    count = available if frames is None else min(frames, available)
    if count == 0:
        data = np.zeros((0, per_frame), dtype)
    else:
        data = np.memmap(path, dtype=dtype, mode="r", shape=(count, per_frame))
    y = data[:, :luma].reshape(count, height, width)
    u = data[:, luma : luma + chroma].reshape(count, height // 2, width // 2)
    v = data[:, luma + chroma :].reshape(count, height // 2, width // 2)
    return Yuv420(y, u, v)


def write_yuv420(path: str | Path, yuv: Yuv420, bit_depth: int = 8) -> None:
    dtype = sample_dtype(bit_depth)
    n = yuv.num_frames
    planes = [p.reshape(n, -1).astype(dtype, copy=False) for p in (yuv.y, yuv.u, yuv.v)]
    np.concatenate(planes, axis=1).tofile(path)


def rgb_to_yuv420(frames: np.ndarray) -> Yuv420:
    """8-bit RGB ``(N, 3, H, W)`` to YUV 4:2:0 with OpenCV's ``COLOR_RGB2YUV_I420``.

    The GFVC common software converts with exactly this OpenCV call, so our YUV (and hence the
    bits and PSNRs of the anchors) are comparable with its numbers.
    """
    n, _, h, w = frames.shape
    _check_even(w, h)
    _check_8bit(frames)
    y = np.empty((n, h, w), np.uint8)
    u = np.empty((n, h // 2, w // 2), np.uint8)
    v = np.empty_like(u)
    for i in range(n):
        i420 = cv2.cvtColor(np.ascontiguousarray(frames[i].transpose(1, 2, 0)), cv2.COLOR_RGB2YUV_I420)
        y[i] = i420[:h]
        chroma = i420[h:].reshape(2, h // 2, w // 2)
        u[i], v[i] = chroma[0], chroma[1]
    return Yuv420(y, u, v)


def yuv420_to_rgb(yuv: Yuv420) -> np.ndarray:
    """8-bit YUV 4:2:0 to RGB ``(N, 3, H, W)`` with OpenCV's ``COLOR_YUV2RGB_I420`` (as GFVC does)."""
    n, h, w = yuv.y.shape
    _check_even(w, h)
    _check_8bit(yuv.y)
    out = np.empty((n, 3, h, w), np.uint8)
    for i in range(n):
        i420 = np.concatenate([yuv.y[i].reshape(-1), yuv.u[i].reshape(-1), yuv.v[i].reshape(-1)])
        out[i] = cv2.cvtColor(i420.reshape(h * 3 // 2, w), cv2.COLOR_YUV2RGB_I420).transpose(2, 0, 1)
    return out


def _check_even(width: int, height: int) -> None:
    if width % 2 or height % 2:
        raise ValueError(f"YUV 4:2:0 needs an even width and height, not {width}x{height}")


def _check_8bit(samples: np.ndarray) -> None:
    if samples.dtype != np.uint8:
        raise ValueError(f"OpenCV's RGB/YUV 4:2:0 conversion takes uint8 samples, not {samples.dtype}")
