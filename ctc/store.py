"""The results store: one folder per job, ``<run>/<codec>/<sequence>/<rate point>/``, and the files of a run.

Names that become folders are checked (:func:`check_name`), one process at a time works in a job
folder (:func:`job_lock`), and files are written whole (:func:`write_json_atomic`). What a job's
``result.json`` records, and the run's results read back: :mod:`ctc.results`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ctc.hashing import write_atomically

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


def write_json_atomic(path: str | Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON under a temporary name, then rename it to ``path``."""
    text = json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"
    write_atomically(Path(path), text.encode("utf-8"))


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
