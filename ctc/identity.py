"""A job's identity: what actually makes its bitstream, resolved when the sweep starts.

The YAML that asks for a job is not enough: ``weights: auto`` means random weights today and a
checkpoint tomorrow, key frames by ``picture_codec/auto`` vvenc on one machine and VTM on another. So
each codec's identity is resolved once per sweep, before the workers start (:meth:`ctc.codec.Codec.identity`:
the binaries' versions, the weights' sha256, the cfg file's content, the key-frame codec), and a
job's hash covers it, the sequence file's md5, the frames used and the rate point. A complete
result is reused only under an equal hash; otherwise the job is redone and :func:`changes` says why.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from ctc.codec import codec_class
from ctc.sequences import SequenceSpec, file_md5
from ctc.store import config_hash

# Codec settings that never change a job's bitstream, so they stay out of its identity
# (`slurm`: a job's cluster resources with launcher=slurm).
UNHASHED_CODEC_KEYS = frozenset({"timeout_s", "slurm"})
SHOWN_VALUE_CHARS = 48


def codec_identity(section: Mapping[str, Any]) -> dict[str, Any]:
    """The codec's config (less :data:`UNHASHED_CODEC_KEYS` and the sections its identity resolves)
    and what it resolves to now."""
    cls = codec_class(section)
    config = {key: value for key, value in section.items()
              if key not in UNHASHED_CODEC_KEYS | cls.resolved_sections}
    return {"config": config, **cls.identity(section)}


def sequence_identity(spec: SequenceSpec) -> dict[str, Any]:
    """The sequence's declaration, the frames used, and its file's md5 (declared, else computed and
    remembered in the cache by size and mtime)."""
    return {**spec.entry(), "file_md5": spec.md5 or file_md5(spec.path)}


def job_identity(codec: Mapping[str, Any], sequence: Mapping[str, Any], rate_point: int) -> dict[str, Any]:
    return {"codec": dict(codec), "sequence": dict(sequence), "rate_point": int(rate_point)}


def identity_hash(identity: Mapping[str, Any]) -> str:
    return config_hash(identity)


def encode_identity(identity: Mapping[str, Any]) -> str:
    """The identity as one token for a Hydra override (no quotes, braces or ``${`` to interpret)."""
    return base64.urlsafe_b64encode(json.dumps(identity, sort_keys=True).encode()).decode()


def decode_identity(token: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(token.encode()))


def changes(old: Any, new: Any, path: str = "") -> list[str]:
    """What differs between two identities, leaf by leaf: ``codec.weights: random (seed 0) -> X``."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        found = []
        for key in sorted(set(old) | set(new), key=str):
            found += changes(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
        return found
    if old == new:
        return []
    return [f"{path or 'identity'}: {_shown(old)} -> {_shown(new)}"]


def redo_reason(previous: Mapping[str, Any] | None, identity: Mapping[str, Any],
                metric_names: tuple[str, ...]) -> str:
    """Why a job with this ``previous`` result must run (again) for ``identity``."""
    if not previous:
        return "not done yet"
    if previous.get("config_hash") == identity_hash(identity):
        if previous.get("status") != "ok":
            return "failed before"
        missing = sorted(set(metric_names) - set(previous.get("metrics") or {}))
        return f"to score {', '.join(missing)}" if missing else "incomplete"
    if "identity" not in previous:
        return "made before results recorded their identity"
    found = changes(previous["identity"], identity)
    return "; ".join(found[:2]) + (f" (+{len(found) - 2} more)" if len(found) > 2 else "")


def _shown(value: Any) -> str:
    text = "absent" if value is None else json.dumps(value, sort_keys=True, default=str).strip('"')
    return text if len(text) <= SHOWN_VALUE_CHARS else text[:SHOWN_VALUE_CHARS - 1] + "…"
