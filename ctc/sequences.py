"""Test sequences and test sets: ``sequences.yaml`` entries as :class:`SequenceSpec`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ctc.frames import read_rgb444, rgb444_frame_bytes


@dataclass(frozen=True)
class SequenceSpec:
    """One test sequence: where its raw file is and what it must contain."""

    name: str
    seq_class: str
    file: str
    width: int
    height: int
    frames: int
    fps: float
    color_format: str = "rgb444"  # planar R, G, B per frame
    bit_depth: int = 8
    md5: str | None = None
    root: Path = Path(".")

    @property
    def path(self) -> Path:
        return Path(self.root) / self.file

    @property
    def frame_bytes(self) -> int:
        return rgb444_frame_bytes(self.width, self.height, self.bit_depth)

    def read(self) -> np.ndarray:
        """The declared frames as ``(N, 3, H, W)``, memory-mapped."""
        return read_rgb444(self.path, self.width, self.height, self.frames, self.bit_depth)
