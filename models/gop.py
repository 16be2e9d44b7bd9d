"""What a GFVC encoder produced, GOP by GOP: the data both its reconstruction and the decoder use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models import bitstream


@dataclass
class GopCode:
    """One GOP as the encoder coded it: per-frame payloads (key frame first), the reconstructed
    features of its inter frames, the model's per-frame layers and, when the coder made it, the
    decoded frames (the decoder's output)."""

    key_frame: np.ndarray  # decoded key frame (3, H, W) uint8
    payloads_by_mode: dict[str, list[bytes]]
    features: np.ndarray  # (n-1, D) float64
    layers: dict[str, list[bytes]] = field(default_factory=dict)
    decoded: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.features) + 1

    def truncate(self, length: int) -> GopCode:
        """The first ``length`` frames (coding is sequential, so a prefix is coded alike)."""
        return GopCode(
            self.key_frame,
            {m: p[:length] for m, p in self.payloads_by_mode.items()},
            self.features[: length - 1],
            {n: p[:length] for n, p in self.layers.items()},
            None if self.decoded is None else self.decoded[:length],
        )


@dataclass
class Encoded:
    """What the encoder produced, with its closed-loop view of the decoder's inputs."""

    stream: bitstream.GfvcBitstream
    gops: list[GopCode]
    context: Any  # the model's decoded side information (HDAC: the base-layer frames)
    seconds: float
    feature_bits_by_mode: dict[str, int] = field(default_factory=dict)  # mode -> feature bits
    sei_payload_bits: int | None = None  # GFV SEI payloads alone (no NAL or SEI message headers)
    details: dict[str, Any] = field(default_factory=dict)  # model-specific figures for result.json
