"""The interface between a generative face model and the GFVC codec pipeline.

The pipeline (``models/gfvc.py``) codes a key frame with an intra codec and, for every other
frame, a compact feature vector; the decoder animates the decoded key frame with those features.
Each model (FOMM, CFTE, FV2V) implements this interface; the networks stay in their own modules.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch


class GenerativeModel(ABC):
    """A face-animation model seen as a feature extractor plus a generator.

    Frames are float32 tensors ``(B, 3, H, W)`` in [0, 1] on the model's device. Features are
    flat float32 vectors ``(B, D)`` in the order the GFVC common software codes them.
    """

    name: str
    feature_size: int

    @abstractmethod
    def extract_features(self, frames: torch.Tensor) -> torch.Tensor:
        """Features ``(B, D)`` of each frame, as the encoder codes them."""

    @abstractmethod
    def prepare_reference(self, key_frame: torch.Tensor) -> Any:
        """Whatever the generator needs from the decoded key frame ``(1, 3, H, W)``, computed once."""

    @abstractmethod
    def generate(self, key_frame: torch.Tensor, reference: Any, features: torch.Tensor) -> torch.Tensor:
        """Frames ``(B, 3, H, W)`` in [0, 1] animated from the key frame by ``features`` ``(B, D)``.

        Must give for each frame exactly what a batch of one gives (decoding is batched).
        """
