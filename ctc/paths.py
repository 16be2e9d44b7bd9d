"""Where the project keeps things: the cache, the results, the shared test data."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Generated data and converted weights; ``GFVC_CACHE`` overrides ``<project>/.cache``."""
    return Path(os.environ.get("GFVC_CACHE", PROJECT_ROOT / ".cache"))


def digest_cache_dir() -> Path:
    """Where digests of files are remembered (``file_digest``): ``GFVC_CACHE`` when set, else the
    machine's tool cache, never the clone: the files may be the user's own (sequences, checkpoints)."""
    return Path(os.environ["GFVC_CACHE"]) if os.environ.get("GFVC_CACHE") else tool_cache_dir()


def shared_dir() -> Path:
    """The read-only shared data beside the checkout (``../shared``); ``GFVC_SHARED`` overrides."""
    return Path(os.environ.get("GFVC_SHARED", PROJECT_ROOT.parent / "shared"))


def tool_cache_dir() -> Path:
    """Built tools shared by every clone on this machine (VTM); ``GFVC_TOOLS`` overrides
    ``$XDG_CACHE_HOME/gfvc-ctc`` (``~/.cache/gfvc-ctc``)."""
    if os.environ.get("GFVC_TOOLS"):
        return Path(os.environ["GFVC_TOOLS"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "gfvc-ctc"


def vtm_cache_dir() -> Path:
    """Where ``make vtm`` installs each VTM version (``VTM-<version>/``)."""
    return tool_cache_dir() / "vtm"
