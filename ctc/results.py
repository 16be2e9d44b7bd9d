"""A job's record, its ``result.json``: what its ``status`` says, reading it, and the run's results read back.

A job's ``result.json`` is written last and atomically (:func:`ctc.store.write_json_atomic`), so its
presence with status ``ok`` and the hash of the identity that made it is what marks the job complete
(:func:`is_complete`). Where the job folders are and who may work in one: :mod:`ctc.store`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from ctc.testset.sequences import SequenceSpec

RESULT_FILE = "result.json"


class ResultStatus(StrEnum):
    """A result's ``status``; a ``str``, so it is written to JSON and CSV as its value."""

    OK = "ok"  # coded, decoded and scored: the job is complete
    DECODED = "decoded"  # coded and decoded, the decoded file kept for its sequence's scoring task
    FAILED = "failed"  # ``error`` and ``log_tail`` say why


# Columns of results_table before the per-metric ones, in this order.
COLUMNS = [
    "codec",
    "role",
    "seq_class",
    "sequence",
    "rate_point",
    "kbps",
    "file_kbps",
    "rate_counts",
    "bits",
    "frames",
    "fps",
    "width",
    "height",
    "enc_seconds",
    "dec_seconds",
    "status",
    "random_weights",
    "config_hash",
]


def read_result(directory: str | Path) -> dict[str, Any] | None:
    """A job directory's ``result.json``, or None when it is missing or unreadable."""
    try:
        return json.loads((Path(directory) / RESULT_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def iter_results(run_dir: str | Path, skip_unreadable: bool = False) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Each job directory of ``run_dir`` (``<codec>/<sequence>/<rate point>/``, sorted) holding a
    ``result.json``, with its result; an unreadable one is a failed result naming the file (so it
    shows as a gap), or is left out with ``skip_unreadable``."""
    run_dir = Path(run_dir)
    for path in sorted(run_dir.glob(f"*/*/*/{RESULT_FILE}")):
        result = read_result(path.parent)
        if result is None and not skip_unreadable:
            codec, sequence, rate_point = path.parent.relative_to(run_dir).parts
            result = {
                "codec": codec,
                "sequence": sequence,
                "rate_point": rate_point,
                "status": ResultStatus.FAILED,
                "error": f"{path} is not readable JSON",
            }
        if result is not None:
            yield path.parent, result


def is_complete(
    result: Mapping[str, Any] | None, expected_hash: str, metric_code: Mapping[str, Any] | None = None
) -> bool:
    """Whether a job's result stands for the identity hashed as ``expected_hash`` and holds every
    metric of ``metric_code`` (name -> the metric's code fingerprint) scored by that code."""
    return (
        bool(result)
        and result.get("status") == ResultStatus.OK
        and result.get("config_hash") == expected_hash
        and not unscored_metrics(result, metric_code or {})
    )


def awaits_scoring(result: Mapping[str, Any] | None, expected_hash: str) -> bool:
    """Whether ``result`` is a job decoded under ``expected_hash`` and not scored yet."""
    return (
        bool(result)
        and result.get("status") == ResultStatus.DECODED
        and result.get("config_hash") == expected_hash
    )


def decoded_file(
    result: Mapping[str, Any] | None, expected_hash: str, directory: Path, spec: SequenceSpec
) -> Path | None:
    """The decoded file of a job decoded under ``expected_hash`` and not scored yet, when it is whole."""
    if not awaits_scoring(result, expected_hash):
        return None
    path = directory / str(result.get("decoded_file"))
    whole = path.is_file() and path.stat().st_size == spec.frames * spec.frame_bytes
    return path if whole else None


def unscored_metrics(result: Mapping[str, Any], metric_code: Mapping[str, Any]) -> list[str]:
    """The metrics of ``metric_code`` that ``result`` lacks, or holds from other metric code."""
    scored, made_by = result.get("metrics") or {}, result.get("metric_code") or {}
    return [name for name, code in metric_code.items() if name not in scored or made_by.get(name) != code]


def results_table(results: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per result: the :data:`COLUMNS`, then one column per metric (sequence means)."""
    rows = []
    metric_names: list[str] = []
    for result in results:
        row = {column: result.get(column) for column in COLUMNS}
        row["bits"] = (result.get("bits") or {}).get("total")
        row["random_weights"] = bool(result.get("random_weights", False))
        row["rate_counts"] = result.get("rate_counts")
        for name, value in (result.get("metrics") or {}).items():
            row[name] = value
            if name not in metric_names:
                metric_names.append(name)
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS + metric_names)


def load_results(run_dir: str | Path) -> pd.DataFrame:
    """Every readable job result under ``run_dir`` (all codecs), sorted by codec, sequence and rate point."""
    table = results_table(result for _, result in iter_results(run_dir, skip_unreadable=True))
    return table.sort_values(
        ["codec", "seq_class", "sequence", "rate_point"], kind="stable", ignore_index=True
    )
