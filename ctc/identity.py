"""A job's identity: what actually makes its bitstream, resolved when the sweep starts.

The YAML that asks for a job is not enough: ``weights: auto`` means random weights today and a
checkpoint tomorrow, key frames by ``picture_codec/auto`` vvenc on one machine and VTM on another. So
each codec's identity is resolved once per sweep, before the workers start (:meth:`ctc.codec.Codec.identity`:
the binaries' versions, the weights' sha256, the cfg file's content, the key-frame codec), and a
job's hash covers it, the sequence file's md5, the frames used and the rate point. A complete
result is reused only under an equal hash; otherwise the job is redone and :func:`changes` says why.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ctc.codec import codec_class
from ctc.hashing import file_digest, payload_hash
from ctc.results import ResultStatus
from ctc.testset.sequences import SequenceSpec

# Codec settings that never change a job's bitstream, so they stay out of its identity (`slurm`: a
# job's cluster resources with launcher=slurm; `rate_points`: a job's identity holds its own rate point,
# so adding or dropping another redoes nothing).
UNHASHED_CODEC_KEYS = frozenset({"timeout_s", "slurm", "rate_points"})
SHOWN_VALUE_CHARS = 48
CODE_KEYS = ("code", "input_code")  # identity entries that are a fingerprint: {file: digest}


def codec_identity(section: Mapping[str, Any]) -> dict[str, Any]:
    """The codec's config (less :data:`UNHASHED_CODEC_KEYS` and the sections its identity resolves)
    and what it resolves to now."""
    cls = codec_class(section)
    config = {
        key: value for key, value in section.items() if key not in UNHASHED_CODEC_KEYS | cls.resolved_sections
    }
    return {"config": config, **cls.identity(section)}


def sequence_identity(spec: SequenceSpec) -> dict[str, Any]:
    """The sequence's declaration, the frames used, and its file's md5 (declared, else computed and
    remembered in the cache by size and mtime)."""
    return {**spec.entry(), "file_md5": spec.md5 or file_digest(spec.path)}


def job_identity(codec: Mapping[str, Any], sequence: Mapping[str, Any], rate_point: int) -> dict[str, Any]:
    return {"codec": dict(codec), "sequence": dict(sequence), "rate_point": int(rate_point)}


def identity_hash(identity: Mapping[str, Any]) -> str:
    return payload_hash(identity)


def changes(old: Any, new: Any, path: str = "") -> list[str]:
    """What differs between two identities, leaf by leaf: ``codec.weights: random (seed 0) -> X``; in a
    code fingerprint by file: ``models/fomm.py changed`` (or added, removed)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        if path.rsplit(".", 1)[-1] in CODE_KEYS:
            return _code_changes(old, new)
        found = []
        for key in sorted(set(old) | set(new), key=str):
            found += changes(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
        return found
    if old == new:
        return []
    shown_old, shown_new = _shown_pair(old, new)
    return [f"{path or 'identity'}: {shown_old} -> {shown_new}"]


def _code_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return [
        f"{name} {'added' if name not in old else 'removed' if name not in new else 'changed'}"
        for name in sorted(set(old) | set(new))
        if old.get(name) != new.get(name)
    ]


def redo_reason(
    previous: Mapping[str, Any] | None, identity: Mapping[str, Any], metric_code: Mapping[str, Any]
) -> str:
    """Why a job with this ``previous`` result must run (again) for ``identity`` and the metrics of
    ``metric_code`` (name -> code fingerprint)."""
    if not previous:
        return "not done yet"
    if previous.get("config_hash") == identity_hash(identity):
        if previous.get("status") not in (ResultStatus.OK, ResultStatus.DECODED):
            return "failed before"
        if previous.get("status") == ResultStatus.DECODED:
            return "decoded, to score"
        return scoring_reason(previous, metric_code) or "incomplete"
    if "identity" not in previous:
        return "made before results recorded their identity"
    found = changes(previous["identity"], identity)
    return "; ".join(found[:2]) + (f" (+{len(found) - 2} more)" if len(found) > 2 else "")


def scoring_reason(previous: Mapping[str, Any], metric_code: Mapping[str, Any]) -> str | None:
    """Why a coded job's scores must be made again (only scoring runs, its bitstream is kept): a metric
    not scored yet, or one whose code changed since (``psnr: ctc/metrics/psnr.py changed``)."""
    scored, made_by = previous.get("metrics") or {}, previous.get("metric_code") or {}
    missing = [name for name in metric_code if name not in scored]
    reasons = [f"to score {', '.join(missing)}"] if missing else []
    for name, code in metric_code.items():
        if name in scored and made_by.get(name) != code:
            found = (
                _code_changes(made_by[name], code)
                if name in made_by
                else ["scored before results recorded their code"]
            )
            reasons.append(f"to score {name} again ({', '.join(found[:2])})")
    return "; ".join(reasons) or None


def _shown_pair(old: Any, new: Any) -> tuple[str, str]:
    """Both values as text, each cut to :data:`SHOWN_VALUE_CHARS` around where they first differ (two
    long version strings that share a prefix show the part that changed)."""
    texts = [
        "absent" if value is None else json.dumps(value, sort_keys=True, default=str).strip('"')
        for value in (old, new)
    ]
    if max(len(text) for text in texts) <= SHOWN_VALUE_CHARS:
        return texts[0], texts[1]
    first = next((i for i, (a, b) in enumerate(zip(*texts, strict=False)) if a != b), min(map(len, texts)))
    start = max(0, first - SHOWN_VALUE_CHARS // 4)
    shown = []
    for text in texts:
        part = text[start : start + SHOWN_VALUE_CHARS - 2]
        shown.append(("…" if start else "") + part + ("…" if start + len(part) < len(text) else ""))
    return shown[0], shown[1]
