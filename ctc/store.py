"""The results store: one ``result.json`` per job under ``<run>/<codec>/<sequence>/<rate point>/``.

A job's ``result.json`` is written last and atomically, so its presence (with status ``ok`` and the
hash of the identity that made it) is what marks the job complete. Names that become folders are
checked (:func:`check_name`), and one process at a time works in a job folder (:func:`job_lock`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import socket
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ctc.hashing import write_atomically

RESULT_FILE = "result.json"
SUMMARY_FILE = "summary.csv"
PROVENANCE_FILE = "provenance.json"
JOB_LOG = "job.log"
PER_FRAME_FILE = "per_frame.csv"
LOCK_FILE = ".lock"
# Names that become folders: letters, digits, '_', '-', '.', not only dots (no separator, no '..').
SAFE_NAME = re.compile(r"(?!\.+$)[A-Za-z0-9_.-]+")


class UnsafeName(ValueError):
    """A name that would become a path outside its folder (a separator, '..', an odd character)."""


def check_name(kind: str, name: object) -> str:
    """``name`` when it is safe as one folder name; :class:`UnsafeName` saying which ``kind`` it is."""
    text = str(name)
    if not SAFE_NAME.fullmatch(text):
        raise UnsafeName(
            f"{kind} {text!r} cannot name a results folder: use letters, digits, '_', '-' "
            "and '.' only (no path separator, no '..')"
        )
    return text


# Columns of load_results before the per-metric ones, in this order.
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


@contextlib.contextmanager
def job_lock(directory: Path, label: str) -> Iterator[None]:
    """Hold ``directory``'s job lock, waiting (and saying so) while another process holds it.

    An ``flock``: the kernel drops it when its process ends, so a crashed sweep never blocks the next.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_FILE, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            print(f"{label}: waiting for {holder}, which is doing this job", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def job_busy(directory: Path) -> bool:
    """Whether a process holds ``directory``'s job lock now."""
    try:
        handle = open(directory / LOCK_FILE, encoding="utf-8")  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def read_result(directory: str | Path) -> dict[str, Any] | None:
    """A job directory's ``result.json``, or None when it is missing or unreadable."""
    try:
        return json.loads((Path(directory) / RESULT_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def is_complete(
    result: Mapping[str, Any] | None, expected_hash: str, metric_code: Mapping[str, Any] | None = None
) -> bool:
    """Whether a job's result stands for the configuration hashed as ``expected_hash`` and holds every
    metric of ``metric_code`` (name -> the metric's code fingerprint) scored by that code."""
    return (
        bool(result)
        and result.get("status") == "ok"
        and result.get("config_hash") == expected_hash
        and not unscored_metrics(result, metric_code or {})
    )


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
    """Every job result under ``run_dir`` (all codecs), sorted by codec, sequence and rate point."""
    results = [read_result(path.parent) for path in sorted(Path(run_dir).glob(f"*/*/*/{RESULT_FILE}"))]
    table = results_table(result for result in results if result is not None)
    return table.sort_values(
        ["codec", "seq_class", "sequence", "rate_point"], kind="stable", ignore_index=True
    )
