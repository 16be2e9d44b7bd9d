"""Bitrates as the GFVC CTC computes them."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any


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


def coded_rates(
    bits: Mapping[str, int], container_parts: Collection[str], frames: int, fps: float
) -> dict[str, Any]:
    """A result's rates from its bitstream's ``bits`` per part: ``kbps``, the rate BD-rate uses, counted
    as the codec's field counts it (every part but the container's, e.g. a GFVC file's header), the
    whole file's ``file_kbps``, and ``rate_counts``, which parts ``kbps`` counts."""
    total = sum(bits.values())
    container = sum(value for part, value in bits.items() if part in container_parts)
    counted = [part for part in bits if part not in container_parts]
    return {
        "kbps": kbps(total - container, frames, fps),
        "file_kbps": kbps(total, frames, fps),
        "rate_counts": "+".join(counted) if container else "the whole bitstream file",
    }
