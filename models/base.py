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

    def encoder_pass(self, frame: torch.Tensor) -> Any:
        """The encoder's network work for one inter frame ``(1, 3, H, W)`` (counted by ``ctc-complexity``):
        its features. Models whose encoder also reconstructs (RDAC) say so by overriding this."""
        return self.extract_features(frame)

    def decoder_pass(self, key_frame: torch.Tensor, reference: Any, features: torch.Tensor,
                     frame: torch.Tensor) -> Any:
        """The decoder's network work for one inter frame (counted by ``ctc-complexity``); ``frame``
        stands for any per-frame picture the model takes (HDAC's base layer)."""
        return self.generate(key_frame, reference, features)
