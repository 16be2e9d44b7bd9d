"""Where the project keeps things: the cache, the results, the shared test data."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Generated data and converted weights; ``GFVC_CACHE`` overrides ``<project>/.cache``."""
    return Path(os.environ.get("GFVC_CACHE", PROJECT_ROOT / ".cache"))


def shared_dir() -> Path:
    """The read-only shared data beside the checkout (``../shared``); ``GFVC_SHARED`` overrides."""
    return Path(os.environ.get("GFVC_SHARED", PROJECT_ROOT.parent / "shared"))
