"""MRDAC as a GFVC codec: several decoded references animate every other frame.

The references (:mod:`models.mrdac_policy`: frame 0, then every ``gop_size`` frames, each coded
ahead of playback) are the ``.gfvc`` file's key frames, coded by the harness's picture codec at the
rate point's QP and counted in the ``key_frame`` rate part; every other frame carries its keypoint
residuals (:mod:`models.mrdac_kp`, q 512, one model over the whole video) in the ``features`` part.
A reference's keypoints are those of the *decoded* reference, so the decoder recomputes them; they
reset the keypoint predictor when playback reaches the reference.

The encoder's reconstruction and the decoder run the one :meth:`MrdacCodec.render_frames`, so both
are bit-identical on one device. ``result.json`` lists the references (``key_frame_positions``) and
the references animating each frame (``references_in_use``; empty for a reference, shown as decoded).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ctc.codec import register_codec
from models import bitstream, mrdac_kp
from models.bitstream import BitstreamError
from models.entropy import EntropyError
from models.gfvc import Encoded, GfvcCodec
from models.gfvc_build import to_uint8, torch_threads
from models.mrdac import reference_weights
from models.mrdac_policy import ReferencePlan, ReferencePolicy

KP_CODER_VERSION = 1  # the escape of residuals beyond int8 (models/mrdac_kp.py)


@register_codec("mrdac")
class MrdacCodec(GfvcCodec):
    """MRDAC: multi-reference animation, references by the picture codec, keypoints by MRDAC's coder."""

    def __init__(self, config: Mapping[str, Any], *args: Any, **kwargs: Any) -> None:
        self.check_config(config)
        name = config["name"]
        self.references = ReferencePolicy.from_config(config, name)
        if str(config["feature_coding"]) != "ae" or config.get("sei"):
            raise ValueError(
                f"{name}: feature_coding must be ae (MRDAC's keypoint coder); it has no SEI layout"
            )
        if config["refresh"]["threshold"] is not None:
            raise ValueError(
                f"{name}: refresh is not used: references follow references.* (models/mrdac_policy.py)"
            )
        super().__init__(config, *args, **kwargs)

    def hashed_settings(self) -> dict[str, Any]:
        return {"references": asdict(self.references), "kp_coder": KP_CODER_VERSION}

    def provenance(self) -> dict[str, Any]:
        return {
            **super().provenance(),
            "references": asdict(self.references),
            "upstream_difference": "references by the harness's picture codec, keypoints of the decoded "
            "references, no int8 wrap-around, bounded reference buffer "
            "(docs/mrdac.md)",
        }

    def _encode_frames(self, frames: np.ndarray, rate_point: int, workdir: Path, fps: float) -> Encoded:
        start_time = time.perf_counter()
        count, _, height, width = frames.shape
        plan = self.references.plan(count)
        qp = self.key_frame_qp(self.config, rate_point)
        key_frames = {
            p: self.intra.encode_picture(np.ascontiguousarray(frames[p]), qp, workdir)
            for p in plan.references
        }
        decoded = {
            p: self.intra.decode_picture(data, width, height, workdir) for p, data in key_frames.items()
        }
        coder = mrdac_kp.KeypointEncoder()
        payloads = [b""] * count
        kp_hat: dict[int, torch.Tensor] = {}
        with torch.inference_mode():
            reference_kp = {p: self._reference_kp(frame) for p, frame in decoded.items()}
            predictor = reference_kp[0]
            for index in range(count):
                if not plan.in_use[index]:
                    predictor = reference_kp[index]
                    continue
                kp = self.model.extract_features(self._to_tensor(frames[index : index + 1]))
                kp = kp.view(predictor.shape)
                residual = mrdac_kp.residuals(predictor, kp, self.q_step)
                payloads[index] = coder.encode(residual)
                predictor = kp_hat[index] = mrdac_kp.reconstruct(predictor, residual, self.q_step)
        stream = bitstream.GfvcBitstream(self.name, self.setup_hash, width, height, key_frames, payloads)
        details = {
            "references_in_use": plan.in_use,
            "reference_coded_at": {str(p): at for p, at in plan.coded_at.items()},
        }
        return Encoded(
            stream,
            [],
            (plan, decoded, kp_hat),
            time.perf_counter() - start_time,
            {"ae": 8 * sum(map(len, payloads))},
            None,
            details,
        )

    def _reference_kp(self, decoded: np.ndarray) -> torch.Tensor:
        """A decoded reference's keypoints ``(1, K, 2)`` float32 on the CPU (the predictor's reset)."""
        kp = self.model.extract_features(self._to_tensor(decoded[None]))
        return kp.float().cpu().view(1, -1, 2)

    def render(self, encoded: Encoded) -> np.ndarray:
        with torch_threads(self.threads):
            return self.render_frames(*encoded.context)

    def decode_stream(
        self, stream: bitstream.GfvcBitstream, workdir: Path, source: str = "bitstream"
    ) -> np.ndarray:
        plan = self.references.plan(stream.frame_count)
        if stream.key_frame_positions != sorted(plan.references):
            raise BitstreamError(
                f"{source}: references at {stream.key_frame_positions}, the reference "
                f"policy of this configuration places them at {sorted(plan.references)}"
            )
        with torch_threads(self.threads):
            decoded = {
                p: self.intra.decode_picture(data, stream.width, stream.height, Path(workdir))
                for p, data in stream.key_frames.items()
            }
            coder = mrdac_kp.KeypointDecoder()
            kp_hat: dict[int, torch.Tensor] = {}
            with torch.inference_mode():
                reference_kp = {p: self._reference_kp(frame) for p, frame in decoded.items()}
                predictor = reference_kp[0]
                for index, payload in enumerate(stream.payloads):
                    if not plan.in_use[index]:
                        if payload:
                            raise BitstreamError(f"{source}: reference frame {index} carries keypoints")
                        predictor = reference_kp[index]
                        continue
                    try:
                        residual = coder.decode(payload, self.model.feature_size)
                    except EntropyError as exc:
                        raise BitstreamError(f"{source}: frame {index}: {exc}") from exc
                    predictor = kp_hat[index] = mrdac_kp.reconstruct(predictor, residual, self.q_step)
            return self.render_frames(plan, decoded, kp_hat)

    def render_frames(
        self, plan: ReferencePlan, decoded: dict[int, np.ndarray], kp_hat: dict[int, torch.Tensor]
    ) -> np.ndarray:
        """Every frame ``(N, 3, H, W)`` uint8: a reference as decoded, any other frame animated from the
        references in use, one frame per generator call."""
        first = next(iter(decoded.values()))
        out = np.empty((len(plan.in_use), *first.shape), np.uint8)
        with torch.inference_mode():
            prepared = {
                p: self.model.prepare_reference(self._to_tensor(frame[None])) for p, frame in decoded.items()
            }
            for index, in_use in enumerate(plan.in_use):
                if not in_use:
                    out[index] = decoded[index]
                    continue
                weights = (
                    reference_weights(in_use, index)[None].to(self.device)
                    if self.references.use_weights
                    else None
                )
                features = kp_hat[index].flatten(1).to(self.device)
                frame = self.model.animate([prepared[p] for p in in_use], features, weights)
                out[index] = to_uint8(frame, self.output_rounding)[0]
        return out
