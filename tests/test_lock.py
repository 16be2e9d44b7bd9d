"""The environment `make` builds holds exactly the lock file's packages (requirements.lock)."""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

import pytest

from ctc.paths import PROJECT_ROOT
from ctc.provenance import LOCK_FILE, lock_digest

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)", re.MULTILINE)
# installed by `python -m venv` or as the project itself, not resolved by the lock
NOT_LOCKED = {"pip", "gfvc-ctc"}


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_lock_pins_every_package_with_hashes() -> None:
    text = (PROJECT_ROOT / LOCK_FILE).read_text(encoding="utf-8")
    blocks = [block for block in re.split(r"\n(?=\S)", text) if PIN.match(block)]
    assert len(blocks) > 50  # torch alone brings dozens
    unhashed = [block.split()[0] for block in blocks if "--hash=sha256:" not in block]
    assert unhashed == []
    assert {"torch", "lpips", "dists-pytorch", "hydra-core", "compressai"} <= {
        _normalised(name) for name, _ in PIN.findall(text)
    }


def test_made_by_names_the_lock_file_digest() -> None:
    from ctc.provenance import made_by

    assert made_by()["lock_sha256"] == lock_digest()
    assert len(lock_digest()) == 64


@pytest.mark.skipif(
    Path(sys.prefix).resolve() != (PROJECT_ROOT / ".venv").resolve(),
    reason="runs in the environment `make install` builds (.venv), where it checks the lock",
)
def test_the_environment_is_exactly_the_lock() -> None:
    locked = {
        _normalised(name): version
        for name, version in PIN.findall((PROJECT_ROOT / LOCK_FILE).read_text(encoding="utf-8"))
    }
    installed = {_normalised(dist.metadata["Name"]): dist.version for dist in metadata.distributions()}
    differ = {
        name: (locked.get(name), installed.get(name))
        for name in set(locked) | set(installed)
        if name not in NOT_LOCKED and locked.get(name) != installed.get(name)
    }
    assert differ == {}, "packages differ from requirements.lock (lock, installed): run `make install`"
