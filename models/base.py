"""The interface between a generative face model and the GFVC codec pipeline: the plug-in contract.

The pipeline (``models/gfvc.py``, its per-GOP work in ``models/gfvc_pipeline.py``) codes a key frame
with an intra codec and, for every other frame, a compact feature vector; the decoder animates the
decoded key frame with those features.
Each model (FOMM, CFTE, FV2V, DAC, ..., or the user's own, in any importable module) implements
this interface; the networks stay in their own modules.

- The encoder calls :meth:`extract_features` on the original frames and on the *decoded* key frame;
  the pipeline codes each frame's features as ``round((f - previous reconstructed f) * q_step)``
  with the common software's entropy coder (or as a GFV SEI message), so the decoder gets them back
  exactly as the encoder reconstructed them.
- The decoder calls :meth:`prepare_reference` once per decoded key frame, then :meth:`generate`
  with batches of reconstructed features; it returns frames in [0, 1].
- A model with more in its bitstream (its own coder, a base layer, residuals) subclasses
  :class:`models.gfvc.GfvcCodec` and overrides its hooks (``encode_context``, ``code_gop``,
  ``render_gop``: :class:`models.gfvc_pipeline.GfvcPipeline`); HDAC and RDAC do.
- Weights: :meth:`from_config` gets the resolved ``weights``: a checkpoint file (found from the model
  config's ``checkpoint`` or ``checkpoint_files`` in ``$GFVC_CHECKPOINTS``), ``random`` (labelled
  everywhere), or ``none`` for a model whose config lists no ``checkpoint_files`` (nothing learned).
- Complexity: :meth:`encoder_pass` and :meth:`decoder_pass` are what ``ctc-complexity`` counts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import torch


class GenerativeModel(ABC):
    """A face-animation model seen as a feature extractor plus a generator.

    Frames are float32 tensors ``(B, 3, H, W)`` in [0, 1] on the model's device. Features are
    flat float32 vectors ``(B, D)`` in the order the GFVC common software codes them.
    """

    name: str  # what the model is, in messages
    feature_size: int
    weights: str = "none"  # where the weights came from: a checkpoint path, "random (seed N)" or "none"
    random_weights: bool = False  # True: labelled RANDOM in the console, result.json and every report row

    @classmethod
    @abstractmethod
    def from_config(cls, config: Mapping[str, Any], weights: str, device: str = "cpu") -> GenerativeModel:
        """The model its config section (``model/<name>.yaml``) describes on ``device``; ``weights`` is a
        checkpoint path, ``random`` or ``none`` (:func:`models.checkpoints.resolve_weights`)."""

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

    def decoder_pass(
        self, key_frame: torch.Tensor, reference: Any, features: torch.Tensor, frame: torch.Tensor
    ) -> Any:
        """The decoder's network work for one inter frame (counted by ``ctc-complexity``); ``frame``
        stands for any per-frame picture the model takes (HDAC's base layer)."""
        return self.generate(key_frame, reference, features)
