"""Checks on the files that the anchors read and write, each failing with a message naming the file."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from ctc.codec import CodecError
from ctc.testset.sequences import SequenceSpec
from ctc.tools import log_tail

VERSION_PROBE_TIMEOUT_S = 60  # running a coding tool just to read its version
INTRA_PICTURE_FPS = 1  # a lone picture has no frame rate; QP-driven coding does not depend on it


def read_sequence_frames(sequence: SequenceSpec) -> np.ndarray:
    """All declared frames of ``sequence``; :class:`CodecError` naming the file when it is short."""
    if sequence.bit_depth != 8:
        raise CodecError(
            f"sequence file {sequence.path} is {sequence.bit_depth}-bit; the anchors code "
            f"8-bit planar RGB 4:4:4"
        )
    frames = np.asarray(sequence.read())
    if frames.shape[0] != sequence.frames:
        raise CodecError(
            f"sequence file {sequence.path} holds {frames.shape[0]} frames of "
            f"{sequence.description}, expected {sequence.frames}"
        )
    return frames


def check_file_size(path: Path, expected: int, what: str) -> None:
    """Raise :class:`CodecError` naming ``path`` unless it holds exactly ``expected`` bytes."""
    size = path.stat().st_size if path.exists() else None
    if size != expected:
        found = "does not exist" if size is None else f"is {size} bytes"
        raise CodecError(f"{path} {found}, expected {expected} bytes ({what})")


def bitstream_bits(path: Path, program: str, log: str) -> int:
    """The size in bits of the bitstream ``path``; :class:`CodecError` if it is missing or empty."""
    if not path.exists() or path.stat().st_size == 0:
        state = "no" if not path.exists() else "an empty"
        raise CodecError(f"{program} wrote {state} bitstream {path}\n{log_tail(log)}")
    return path.stat().st_size * 8


def frame_rate_text(fps: float | str) -> str:
    """A frame rate exactly as a command line takes it: ``25`` or ``30000/1001`` (a text, e.g. the
    ``{fps}`` of a command template, as it is)."""
    if isinstance(fps, str):
        return fps
    rate = Fraction(fps).limit_denominator(1001)
    return str(rate.numerator) if rate.denominator == 1 else f"{rate.numerator}/{rate.denominator}"


def check_picture(rgb: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``rgb`` is one ``(3, H, W)`` uint8 picture."""
    if rgb.ndim != 3 or rgb.shape[0] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected one (3, H, W) uint8 RGB picture, got {rgb.dtype} of shape {rgb.shape}")
