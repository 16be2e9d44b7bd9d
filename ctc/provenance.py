"""Provenance saved next to the results: what configuration, code and software made them."""

from __future__ import annotations

import functools
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

from ctc import __version__
from ctc.paths import PROJECT_ROOT

# Distributions whose versions can change the numbers (codecs, metrics, models, runner).
PACKAGES = ("gfvc-ctc", "torch", "torchvision", "numpy", "opencv-python-headless", "lpips", "DISTS-pytorch",
            "pytorch-msssim", "scikit-image", "imageio-ffmpeg", "bjontegaard", "pandas", "scipy",
            "hydra-core", "omegaconf", "hydra-joblib-launcher", "hydra-submitit-launcher", "joblib",
            "submitit")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_state() -> dict[str, Any]:
    """The project's git commit and whether the work tree differs from it (None outside a checkout)."""
    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                  timeout=10, check=False)
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


@functools.cache
def made_by() -> dict[str, Any]:
    """What made a result, recorded in each ``result.json``: git state, package versions, host (once per
    process)."""
    return {"git": git_state(), "packages": package_versions(), "host": socket.gethostname(),
            "python": sys.version.split()[0], "version": __version__}


def collect(config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Provenance of a sweep: resolved ``config``, git state, package versions, host, time, ``extra``."""
    return {
        "created": now_iso(),
        **extra,
        "git": git_state(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "packages": package_versions(),
        "command": sys.argv,
        "config": config,
    }
