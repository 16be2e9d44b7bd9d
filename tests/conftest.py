"""Shared fixtures: paths to the shared data, skipping with a reason only where it is truly absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctc.paths import shared_dir


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if not path.is_dir():
        pytest.skip(f"shared data folder {path} is absent (set GFVC_SHARED)")
    return path
