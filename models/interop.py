"""Decoder interoperability: model A's GFVC bitstream decoded by model B's generator through a trained
feature translator (the GFVC decoder-interoperability software, DCC 2024 / JVET-AG0048; docs/interop.md).

The codec config (``ctc/conf/codec/<a>2<b>.yaml``) is A's codec config (its bitstream, unchanged:
``bitstream_of`` names A's codec, whose header name and configuration hash it writes and reads) plus
``decoder_model`` (B's model config, weights ``decoder_weights``) and ``translator`` (a
:mod:`models.translators` config, weights ``translator_weights``). The decoder decodes A's features as A's
decoder does (A's analysis of the decoded key frame starts each GOP's prediction), translates every inter
frame's features, and drives B's generator with B's own reference of the key frame. The encoder's
reconstruction takes the same translated path, so encoder and decoder stay bit-identical.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ctc.codec import CodecError, IntraCodec, register_codec
from ctc.hashing import file_digest
from models.base import GenerativeModel
from models.checkpoints import RANDOM, RANDOM_SEED, CheckpointError, resolve_weights
from models.gfvc import GfvcCodec
from models.gfvc_build import load_model, model_config_of
from models.translators import FeatureTranslator, load_translator, translator_weights


def _weights_identity(resolved: Path | str) -> str:
    return (
        f"{RANDOM} (seed {RANDOM_SEED})"
        if resolved == RANDOM
        else f"{Path(resolved).name} sha256 {file_digest(resolved, 'sha256')}"
    )


@register_codec("gfvc_interop")
class InteropCodec(GfvcCodec):
    """Encoder: model A's GFVC codec. Decoder: A's feature decoding, the translator, B's generator."""

    def __init__(
        self,
        config: Mapping[str, Any],
        device: str = "cpu",
        model: GenerativeModel | None = None,
        intra_codec: IntraCodec | None = None,
        decoder_model: GenerativeModel | None = None,
        translator: FeatureTranslator | None = None,
    ) -> None:
        super().__init__(config, device, model=model, intra_codec=intra_codec)
        cfg = self.config
        self.decoder_model_config = model_config_of(self.name, cfg.get("decoder_model"))
        self.decoder_model = (
            decoder_model
            if decoder_model is not None
            else load_model(
                f"{self.name}'s decoder model",
                self.decoder_model_config,
                str(cfg.get("decoder_weights", "auto")),
                device,
            )
        )
        try:
            self.translator = (
                translator
                if translator is not None
                else load_translator(
                    self._translator_config(cfg), str(cfg.get("translator_weights", "auto")), device
                )
            )
        except CheckpointError as exc:
            raise CodecError(f"{self.name}: {exc}") from None
        sizes = (
            (self.translator.source_size, self.model.feature_size, "encoder"),
            (self.translator.target_size, self.decoder_model.feature_size, "decoder"),
        )
        for translator_size, model_size, side in sizes:
            if translator_size != model_size:
                raise CodecError(
                    f"{self.name}: the translator {self.translator.source}->"
                    f"{self.translator.target} has {translator_size} {side} features, the "
                    f"{side}'s model {model_size}"
                )

    @staticmethod
    def _translator_config(config: Mapping[str, Any]) -> dict[str, Any]:
        section = config.get("translator")
        if not isinstance(section, Mapping):
            raise CodecError(
                f"{config['name']}: translator {section!r}: expected a translator config; "
                "compose one with `defaults: [/translator@translator: NAME]`"
            )
        return dict(section)

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> None:
        super().check_config(config)
        if not config.get("bitstream_of"):
            raise CodecError(
                f"{config['name']}: bitstream_of {config.get('bitstream_of')!r}: expected the "
                "name of the codec whose bitstreams this configuration writes and decodes "
                "(e.g. fomm)"
            )

    # -- what the bitstream is and what made the frames ---------------------------------------------
    def bitstream_model(self) -> str:
        return str(self.config["bitstream_of"])

    def generator_model(self) -> str:
        return str(self.decoder_model_config.get("type") or self.translator.target)

    @classmethod
    def identity(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """A's identity (weights, key-frame codec) plus B's weights and the translator's."""
        decoder_config = model_config_of(config["name"], config.get("decoder_model"))
        try:
            decoder = resolve_weights(config["name"], decoder_config, config.get("decoder_weights", "auto"))
            translator = translator_weights(
                cls._translator_config(config), config.get("translator_weights", "auto")
            )
        except CheckpointError as exc:
            raise CodecError(str(exc)) from None
        return {
            **super().identity(config),
            "decoder_weights": _weights_identity(decoder),
            "translator_weights": _weights_identity(translator),
        }

    @property
    def random_weights(self) -> bool:
        return any(
            bool(getattr(part, "random_weights", False))
            for part in (self.model, self.decoder_model, self.translator)
        )

    def version(self) -> str:
        def weights(part: Any) -> str:
            return "RANDOM weights" if part.random_weights else Path(str(part.weights)).name

        translator = f"{self.translator.source}->{self.translator.target} ({weights(self.translator)})"
        return (
            f"{super().version()}; decoded by {self.generator_model()} ({weights(self.decoder_model)}) "
            f"through the translator {translator}"
        )

    def provenance(self) -> dict[str, Any]:
        encoder, decoder = self.bitstream_model(), self.generator_model()
        pair = f"{encoder}→{decoder}"
        label = pair if self.name == f"{encoder}2{decoder}" else f"{self.name} ({pair})"
        return {
            **super().provenance(),
            "label": label,
            "bitstream_of": self.bitstream_model(),
            "decoder_model": self.generator_model(),
            "decoder_weights": str(self.decoder_model.weights),
            "decoder_random_weights": bool(self.decoder_model.random_weights),
            "translator": f"{self.translator.source}->{self.translator.target}",
            "translator_weights": str(self.translator.weights),
            "translator_random_weights": bool(self.translator.random_weights),
        }

    # -- the translated generator path (the encoder's reconstruction and the decoder alike) ---------
    def prepare_reference(self, key: torch.Tensor) -> Any:
        """B's own reference features of the decoded key frame."""
        return self.decoder_model.prepare_reference(key)

    def generate(
        self, key: torch.Tensor, reference: Any, chunk: torch.Tensor, indices: range, context: Any
    ) -> torch.Tensor:
        """B's frames from A's reconstructed features, translated."""
        return self.decoder_model.generate(key, reference, self.translator.translate(chunk))
