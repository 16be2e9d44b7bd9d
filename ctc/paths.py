"""Where the project keeps things: the cache, the results, the shared test data."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The environment through which the harness finds what a job uses (checkpoints, binaries, sequences,
# caches, the shared files): every ``GFVC_*`` variable and these.
HARNESS_PREFIX = "GFVC_"
HARNESS_VARIABLES = ("VTM_DIR", "IMAGEIO_FFMPEG_EXE", "XDG_CACHE_HOME")


def harness_environment() -> dict[str, str]:
    """This process's harness variables (see :data:`HARNESS_VARIABLES`) that are set, with their values."""
    return {name: value for name, value in os.environ.items() if _is_harness_variable(name)}


def use_harness_environment(environment: Mapping[str, str]) -> None:
    """Set the harness variables to ``environment``'s, and unset those it lacks: a sweep's worker finds
    the checkpoints and binaries that the sweep's plan resolved, even when it started before they
    changed (joblib keeps its workers between the sweeps of one process)."""
    for name in [name for name in os.environ if _is_harness_variable(name) and name not in environment]:
        del os.environ[name]
    os.environ.update(environment)


def _is_harness_variable(name: str) -> bool:
    return name.startswith(HARNESS_PREFIX) or name in HARNESS_VARIABLES


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
