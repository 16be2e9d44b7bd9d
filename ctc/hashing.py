"""Digests of files: plain (:func:`compute_digest`) or remembered in the cache (:func:`file_digest`);
the hash of a JSON-able payload (:func:`payload_hash`).

Standard library only (``make vtm`` uses it before the project's environment exists).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ctc.paths import digest_cache_dir

DIGEST_CACHE_NAME = "digests.json"


def compute_digest(path: str | Path, algorithm: str = "md5") -> str:
    """The hex digest of a whole file, read in blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digest(path: str | Path, algorithm: str = "md5") -> str:
    """The digest of a whole file, remembered in the cache by (path, size, mtime) so that reruns, and
    the workers of a sweep, skip reading it again (a checkpoint is hundreds of MB)."""
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{algorithm}:{stat.st_size}:{stat.st_mtime_ns}"
    store = digest_cache_dir() / DIGEST_CACHE_NAME
    known = _read_json(store)
    entry = f"{algorithm}:{path}"
    if known.get(entry, {}).get("key") == key:
        return known[entry]["digest"]
    value = compute_digest(path, algorithm)
    known = _read_json(store)  # another process may have added entries meanwhile
    known[entry] = {"key": key, "digest": value}
    write_atomically(store, json.dumps(known, indent=1, sort_keys=True).encode())
    return value


def payload_hash(payload: Mapping[str, Any]) -> str:
    """A stable hash of a JSON-able payload (a configuration, an identity): key order and whitespace do
    not matter."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` under a name private to this process first, then rename it, so a
    reader never sees half a file and two processes never write the same temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
