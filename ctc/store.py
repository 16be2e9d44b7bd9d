"""The results store: one ``result.json`` per job under ``<run>/<codec>/<sequence>/<rate point>/``.

A job's ``result.json`` is written last and atomically, so its presence (with status ``ok`` and the
hash of the configuration that made it) is what marks the job complete.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ctc.sequences import write_atomically

RESULT_FILE = "result.json"
SUMMARY_FILE = "summary.csv"
PROVENANCE_FILE = "provenance.json"
JOB_LOG = "job.log"
PER_FRAME_FILE = "per_frame.csv"

# Columns of load_results before the per-metric ones, in this order.
COLUMNS = ["codec", "role", "seq_class", "sequence", "rate_point", "kbps", "bits", "frames", "fps",
           "enc_seconds", "dec_seconds", "status", "random_weights", "config_hash"]


def write_json_atomic(path: str | Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON under a temporary name, then rename it to ``path``."""
    text = json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"
    write_atomically(Path(path), text.encode("utf-8"))


def config_hash(payload: Mapping[str, Any]) -> str:
    """A stable hash of a (JSON-able) configuration: key order and whitespace do not matter."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def job_dir(run_dir: str | Path, codec: str, sequence: str, rate_point: int | str) -> Path:
    return Path(run_dir) / codec / sequence / str(rate_point)


def read_result(directory: str | Path) -> dict[str, Any] | None:
    """A job directory's ``result.json``, or None when it is missing or unreadable."""
    try:
        return json.loads((Path(directory) / RESULT_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def is_complete(result: Mapping[str, Any] | None, expected_hash: str,
                metric_names: Iterable[str] = ()) -> bool:
    """Whether a job's result stands for the configuration hashed as ``expected_hash`` and holds every
    metric in ``metric_names``."""
    return (bool(result) and result.get("status") == "ok" and result.get("config_hash") == expected_hash
            and set(metric_names) <= set(result.get("metrics") or {}))


def results_table(results: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per result: the :data:`COLUMNS`, then one column per metric (sequence means)."""
    rows = []
    metric_names: list[str] = []
    for result in results:
        row = {column: result.get(column) for column in COLUMNS}
        row["bits"] = (result.get("bits") or {}).get("total")
        row["random_weights"] = bool(result.get("random_weights", False))
        for name, value in (result.get("metrics") or {}).items():
            row[name] = value
            if name not in metric_names:
                metric_names.append(name)
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS + metric_names)


def load_results(run_dir: str | Path) -> pd.DataFrame:
    """Every job result under ``run_dir`` (all codecs), sorted by codec, sequence and rate point."""
    results = [read_result(path.parent) for path in sorted(Path(run_dir).glob(f"*/*/*/{RESULT_FILE}"))]
    table = results_table(result for result in results if result is not None)
    return table.sort_values(["codec", "seq_class", "sequence", "rate_point"], kind="stable",
                             ignore_index=True)
