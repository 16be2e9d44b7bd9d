"""The ``demo`` test set: synthetic talking heads generated from scikit-image's astronaut photograph.

The photograph ships inside the scikit-image wheel, so a fresh machine needs no download. Each
sequence moves the head smoothly (rotation, translation, zoom), blinks and opens the mouth, with
the motion of its ``sequences.yaml`` entry.

The bytes must be identical on every machine, so nothing here goes through code whose rounding can
change with a library version or a CPU's vector unit (OpenCV's fixed-point warps, numpy's SIMD
transcendental functions): the per-frame motion is computed with Python's scalar ``math`` and
quantised once to 1/65536 integers; from there on the eyelids, the mouth and the bilinear warp are
integer arithmetic in numpy. The photograph is read with OpenCV's lossless PNG decoder.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ctc.frames import write_rgb444
from ctc.hashing import file_digest
from ctc.testset.sequences import SequenceSpec, declared_specs

ONE = 1 << 16  # fixed point: 16 fractional bits
SUB = 16  # drawing coordinates: 1/16 source pixel

# Where things are in the 512x512 astronaut photograph (source pixels).
HEAD_CENTRE = (225, 118)
HEAD_SPAN = 210  # source pixels across the output's width at zoom 1
EYES = ((203, 101, 12, 5), (245, 103, 11, 5))  # centre x, centre y, half width, half height
MOUTH = (223, 145, 14, 5)  # centre x, centre y, half width, largest half opening
SKIN_PATCH = (216, 232, 110, 122)  # x0, x1, y0, y1: a patch of cheek/nose skin for the eyelids
LASH_COLOUR = (60, 40, 35)
MOUTH_COLOUR = (70, 22, 28)
BLINK_SECONDS = 0.3


def astronaut() -> np.ndarray:
    """scikit-image's astronaut photograph as ``(512, 512, 3)`` RGB uint8, read from the installed wheel."""
    import skimage

    path = Path(skimage.__file__).parent / "data" / "astronaut.png"
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read {path}: the scikit-image installation lacks its data files")
    return np.ascontiguousarray(image[:, :, ::-1])


def render(spec: SequenceSpec, photo: np.ndarray | None = None) -> np.ndarray:
    """The frames of demo sequence ``spec`` as ``(N, 3, H, W)`` uint8."""
    photo = astronaut() if photo is None else photo
    motion = spec.extra["motion"]
    skin = _mean_colour(photo, SKIN_PATCH)
    frames = np.empty((spec.frames, 3, spec.height, spec.width), np.uint8)
    for index in range(spec.frames):
        seconds = index / spec.fps
        face = photo.astype(np.int64)
        for eye in EYES:
            _close_eye(face, eye, _blink(seconds, motion["blinks_s"]), skin)
        opening = max(0.0, math.sin(2 * math.pi * seconds / motion["mouth_period_s"]))
        _open_mouth(face, _fixed(opening))
        frames[index] = _warp(
            face, _head_pose(seconds, spec, motion), spec.width, spec.height, bool(motion["mirror"])
        )
    return frames


def build_sequences(specs: Sequence[SequenceSpec], settings: Mapping[str, Any]) -> None:
    """Write each demo sequence's file (atomically); the ``build`` hook of ``sequences.yaml``."""
    photo = astronaut()
    for spec in specs:
        spec.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = spec.path.with_name(f".{spec.path.name}.{os.getpid()}.tmp")
        write_rgb444(temporary, render(spec, photo))
        os.replace(temporary, spec.path)


def _fixed(value: float) -> int:
    return round(value * ONE)


def _blink(seconds: float, starts: Sequence[float]) -> int:
    """Eyelid closure in fixed point: 0 open, ONE shut, a half sine over BLINK_SECONDS."""
    for start in starts:
        if start <= seconds <= start + BLINK_SECONDS:
            return _fixed(math.sin(math.pi * (seconds - start) / BLINK_SECONDS))
    return 0


def _head_pose(seconds: float, spec: SequenceSpec, motion: Mapping[str, Any]) -> tuple[int, ...]:
    """Output pixel -> photograph pixel as a 2x3 affine map in fixed point (a11, a12, tx, a21, a22, ty)."""
    phase = 2 * math.pi * seconds / motion["period_s"]
    angle = math.radians(motion["rotate_deg"]) * math.sin(phase)
    zoom = 1 + motion["zoom"] * math.sin(phase + 2.0)
    shift_x = _fixed(motion["shift_px"] * math.sin(phase + 1.0)) / ONE
    shift_y = _fixed(0.5 * motion["shift_px"] * math.sin(2 * phase)) / ONE
    step = HEAD_SPAN / (spec.width * zoom)  # photograph pixels per output pixel
    a11, a12 = _fixed(step * math.cos(angle)), _fixed(-step * math.sin(angle))
    a21, a22 = _fixed(step * math.sin(angle)), _fixed(step * math.cos(angle))
    # the output centre, moved by the shift, lands on the head centre; exact in float64 (dyadic values)
    centre_x, centre_y = (spec.width - 1) / 2 + shift_x, (spec.height - 1) / 2 + shift_y
    tx = HEAD_CENTRE[0] * ONE - (a11 * centre_x + a12 * centre_y)
    ty = HEAD_CENTRE[1] * ONE - (a21 * centre_x + a22 * centre_y)
    return a11, a12, round(tx), a21, a22, round(ty)


def _warp(image: np.ndarray, pose: tuple[int, ...], width: int, height: int, mirror: bool) -> np.ndarray:
    """Bilinear sampling of ``image`` (int64, H x W x 3) at ``pose``, in integers, edges clamped.

    Returns ``(3, height, width)`` uint8. Each pixel's three bytes are packed into one integer so
    that one gather fetches all channels (fancy indexing of 3-byte rows is several times slower).
    """
    a11, a12, tx, a21, a22, ty = pose
    xs = np.arange(width, dtype=np.int64)
    if mirror:
        xs = xs[::-1]
    ys = np.arange(height, dtype=np.int64)[:, None]
    src_x = a11 * xs + a12 * ys + tx
    src_y = a21 * xs + a22 * ys + ty
    limit_y, limit_x = image.shape[0] - 1, image.shape[1] - 1
    src_x = np.clip(src_x, 0, (limit_x - 1) * ONE + ONE - 1)
    src_y = np.clip(src_y, 0, (limit_y - 1) * ONE + ONE - 1)
    fx, fy = src_x & (ONE - 1), src_y & (ONE - 1)
    packed = (image[..., 0] | image[..., 1] << 8 | image[..., 2] << 16).ravel()
    top_left = (src_y >> 16) * image.shape[1] + (src_x >> 16)
    bottom_left = top_left + image.shape[1]
    shifts = np.array([0, 8, 16], np.int64)[:, None, None]

    def channels(index: np.ndarray) -> np.ndarray:
        return packed[index] >> shifts & 255

    top = channels(top_left) * (ONE - fx) + channels(top_left + 1) * fx
    bottom = channels(bottom_left) * (ONE - fx) + channels(bottom_left + 1) * fx
    return ((top * (ONE - fy) + bottom * fy + (1 << 31)) >> 32).astype(np.uint8)


def _mean_colour(image: np.ndarray, patch: tuple[int, int, int, int]) -> np.ndarray:
    x0, x1, y0, y1 = patch
    region = image[y0:y1, x0:x1].reshape(-1, 3).astype(np.int64)
    return (region.sum(axis=0) + len(region) // 2) // len(region)


def _ellipse_alpha(
    shape: tuple[int, int], centre_x: int, centre_y: int, half_x: int, half_y: int, box: tuple[slice, slice]
) -> np.ndarray:
    """Coverage 0..256 of an ellipse (all in 1/SUB pixels) over the pixels of ``box``, soft at its rim."""
    ys = (np.arange(shape[0])[box[0]] * SUB)[:, None] - centre_y
    xs = (np.arange(shape[1])[box[1]] * SUB)[None, :] - centre_x
    outer = (half_x * half_y) ** 2
    distance = (xs * half_y) ** 2 + (ys * half_x) ** 2
    return np.clip((outer - distance) * 256 // max(outer // 3, 1), 0, 256)


def _blend(face: np.ndarray, box: tuple[slice, slice], alpha: np.ndarray, colour: Sequence[int]) -> None:
    region = face[box]
    alpha = alpha[..., None]
    face[box] = (region * (256 - alpha) + np.asarray(colour, np.int64) * alpha + 128) >> 8


def _close_eye(face: np.ndarray, eye: tuple[int, int, int, int], closure: int, skin: np.ndarray) -> None:
    """Lower a skin-coloured eyelid with a dark lash edge over the eye, ``closure`` of the way."""
    if closure <= 0:
        return
    x, y, half_x, half_y = eye
    box = (slice(y - 2 * half_y, y + 2 * half_y + 1), slice(x - 2 * half_x, x + 2 * half_x + 1))
    cover = _ellipse_alpha(
        face.shape[:2], x * SUB, y * SUB, half_x * SUB * 5 // 4, half_y * SUB * 3 // 2, box
    )
    lid_edge = (y - half_y) * SUB + (2 * half_y * SUB * closure >> 16)
    rows = (np.arange(face.shape[0])[box[0]] * SUB)[:, None]
    above = np.clip((lid_edge - rows) * 256 // SUB, 0, 256)
    _blend(face, box, cover * above >> 8, skin)
    lash = np.clip(256 - np.abs(lid_edge - rows) * 256 // SUB, 0, 256)
    _blend(face, box, cover * lash >> 8, LASH_COLOUR)


def _open_mouth(face: np.ndarray, opening: int) -> None:
    """A dark mouth interior between the lips, ``opening`` (fixed point, 0..ONE) of its largest height."""
    x, y, half_x, half_open = MOUTH
    half_y = half_open * SUB * opening >> 16
    if half_y < SUB // 2:
        return
    box = (slice(y - half_open - 1, y + half_open + 2), slice(x - half_x - 1, x + half_x + 2))
    inside = _ellipse_alpha(face.shape[:2], x * SUB, y * SUB, half_x * SUB, half_y, box)
    _blend(face, box, inside, MOUTH_COLOUR)


def main(argv: Sequence[str] | None = None) -> int:
    """``ctc-demo``: generate the demo test set (into the cache, or ``--root``) and print its md5s."""
    parser = argparse.ArgumentParser(prog="ctc-demo", description=main.__doc__)
    parser.add_argument("--root", type=Path, help="folder for the files (default: the cache)")
    parser.add_argument("--sequences-file", type=Path, help="sequences.yaml to read (default: the project's)")
    parser.add_argument("--test-set", default="demo", help="name of the generated test set (default: demo)")
    args = parser.parse_args(argv)
    specs = declared_specs(args.test_set, args.sequences_file, args.root)
    build_sequences(specs, {})
    mismatches = 0
    for spec in specs:
        md5 = file_digest(spec.path)
        wrong = bool(spec.md5) and md5 != spec.md5
        verdict = f"expected {spec.md5}" if wrong else ("md5 ok" if spec.md5 else "no md5 recorded")
        mismatches += wrong
        print(f"{spec.name}: {spec.path} {spec.frames} frames md5 {md5} ({verdict})")
    return 1 if mismatches else 0


if __name__ == "__main__":
    raise SystemExit(main())
