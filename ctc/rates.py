"""Bitrates as the GFVC CTC computes them."""

from __future__ import annotations


def kbps(total_bits: int, frames: int, fps: float) -> float:
    """Bitrate in kbit/s of a sequence coded in ``total_bits`` (every part of its bitstream counted).

    ``frames`` and ``fps`` are the sequence's own (the coded frame count and its frame rate), never
    a fixed 25 fps: ``kbps = total_bits / 1000 * fps / frames``.
    """
    if frames <= 0:
        raise ValueError(f"a bitrate needs at least one frame, got frames={frames}")
    if fps <= 0:
        raise ValueError(f"a bitrate needs a positive frame rate, got fps={fps}")
    if total_bits < 0:
        raise ValueError(f"a bitstream cannot have a negative size, got {total_bits} bits")
    return total_bits / 1000.0 * fps / frames
