"""Provenance saved next to the results: what configuration, code and software made them."""

from __future__ import annotations

import functools
import platform
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from ctc import __version__
from ctc.hashing import compute_digest
from ctc.paths import PROJECT_ROOT

LOCK_FILE = "requirements.lock"  # the exact packages `make install` puts in the environment

# Distributions whose versions can change the numbers (codecs, metrics, models, runner).
PACKAGES = (
    "gfvc-ctc",
    "torch",
    "torchvision",
    "numpy",
    "opencv-python-headless",
    "lpips",
    "DISTS-pytorch",
    "pytorch-msssim",
    "scikit-image",
    "imageio-ffmpeg",
    "bjontegaard",
    "pandas",
    "scipy",
    "hydra-core",
    "omegaconf",
    "hydra-joblib-launcher",
    "hydra-submitit-launcher",
    "joblib",
    "submitit",
)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_state() -> dict[str, Any]:
    """The project's git commit and whether the work tree differs from it (None outside a checkout)."""

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(
                ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def lock_digest() -> str | None:
    """The sha256 of the lock file the environment was installed from (None outside a checkout)."""
    path = PROJECT_ROOT / LOCK_FILE
    return compute_digest(path, "sha256") if path.is_file() else None


@functools.cache
def made_by() -> dict[str, Any]:
    """What made a result, recorded in each ``result.json``: the harness's version and git state, the lock
    file's digest, package versions, host (once per process)."""
    return {
        "version": __version__,
        "git": git_state(),
        "lock_sha256": lock_digest(),
        "packages": package_versions(),
        "host": socket.gethostname(),
        "python": sys.version.split()[0],
    }


def plugin_paths(modules: Iterable[str]) -> list[str]:
    """The folders that ``modules`` (a sweep's codec, model and metric modules, imported by now) were
    imported from, besides this project: what a later ``ctc-report`` needs on ``sys.path``."""
    roots = set()
    for name in modules:
        module = sys.modules.get(name)
        if module is None or not getattr(module, "__file__", None):
            continue
        path = Path(module.__file__).resolve()
        depth = len(name.split(".")) + (path.name == "__init__.py")
        roots.add(path.parents[depth - 1])
    return sorted(str(root) for root in roots if root != PROJECT_ROOT.resolve())


def use_plugin_paths(provenance: Mapping[str, Any]) -> None:
    """Make a run's plug-in modules importable as its sweep found them (``plugin_paths``)."""
    for root in reversed(provenance.get("plugin_paths") or []):
        if Path(root).is_dir() and root not in sys.path:
            sys.path.insert(0, root)


def collect(config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Provenance of a sweep: resolved ``config``, git state, package versions, host, time, ``extra``."""
    return {
        "created": now_iso(),
        **extra,
        "git": git_state(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "lock_sha256": lock_digest(),
        "packages": package_versions(),
        "command": sys.argv,
        "config": config,
    }
