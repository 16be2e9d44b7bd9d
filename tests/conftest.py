"""Shared fixtures: paths to the shared data, skipping with a reason only where it is truly absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctc.paths import shared_dir


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if not path.is_dir():
        pytest.skip(f"shared data folder {path} is absent: put the project's shared data (real clips, metric "
                    "calibration, upstream golden outputs, VTM source) beside the clone as ../shared, or set "
                    "GFVC_SHARED to it (README: Before you start)")
    return path


@pytest.fixture
def no_vtm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No VTM anywhere the harness looks: neither $VTM_DIR, PATH nor the build cache of ``make vtm``."""
    from anchors.vtm_tools import VTM_DIR_ENV

    monkeypatch.delenv(VTM_DIR_ENV, raising=False)
    empty = tmp_path / "no-vtm"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("GFVC_TOOLS", str(empty))


@pytest.fixture(scope="session")
def real_vtm() -> dict:
    """The vtm codec config, with the real VTM found where the harness looks (``make test`` builds it
    from ``../shared/vtm`` first). Fails when that source is here but VTM was not built from it."""
    from anchors.vtm_tools import vtm_missing
    from ctc.conf import load_section

    config = load_section("codec", "vtm")
    missing = vtm_missing(config)
    if missing:
        archive = shared_dir() / "vtm" / "VVCSoftware_VTM-22.2.tar.gz"
        if archive.is_file():
            pytest.fail(f"the VTM source {archive} is here but VTM is not built ({missing}); `make test` "
                        f"builds it, or: make vtm VTM_SRC={archive}")
        pytest.skip(f"no VTM build and no VTM source at {archive}: {missing}; `make vtm` builds VTM 22.2 "
                    "from JVET's GitLab")
    return config
