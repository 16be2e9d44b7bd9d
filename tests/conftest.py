"""Shared fixtures: paths to the shared data, skipping with a reason only where it is truly absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctc.paths import shared_dir


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if not path.is_dir():
        pytest.skip(
            f"shared data folder {path} is absent: put the project's shared data (real clips, metric "
            "calibration, upstream golden outputs, VTM source) beside the clone as ../shared, or set "
            "GFVC_SHARED to it (README: Before you start)"
        )
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


def _vtm_or_skip(config: dict, wanted, archive_name: str) -> None:
    """Fail when the archive that ``make test`` builds ``wanted`` from is here but it is not built;
    skip, saying how to get it, when neither is here."""
    from anchors.vtm_tools import vtm_missing

    missing = vtm_missing(config, wanted)
    if missing:
        archive = shared_dir() / "vtm" / archive_name
        if archive.is_file():
            pytest.fail(
                f"the VTM source {archive} is here but {wanted} is not built ({missing}); "
                f"`make test` builds it, or: make vtm VTM_SRC={archive}"
            )
        tag = archive_name.removeprefix("VVCSoftware_").removesuffix(".tar.gz")
        pytest.skip(
            f"no {wanted} build and no VTM source at {archive}: {missing}; `make vtm VTM_TAG={tag}` "
            "builds it from JVET's GitLab"
        )


@pytest.fixture(scope="session")
def real_vtm() -> dict:
    """The vtm codec config, with the real VTM of the CTC's version (22.2) found where the harness
    looks (``make test`` builds it from ``../shared/vtm`` first)."""
    from anchors.vtm_tools import VersionWanted
    from ctc.conf import load_section

    config = load_section("codec", "vtm")
    _vtm_or_skip(config, VersionWanted.from_config(config), f"VVCSoftware_VTM-{config['version']}.tar.gz")
    return config


@pytest.fixture(scope="session")
def sei_vtm() -> dict[str, Path]:
    """The real VTM that writes and reads the generative face video SEI (>= 23.7; ``make test``
    builds 23.13 from ``../shared/vtm``): ``{"encoder": path, "decoder": path, "cfg": folder}``."""
    from anchors.vtm_tools import DECODER_NAMES, ENCODER_NAMES, SEI_VTM, find_program

    _vtm_or_skip({}, SEI_VTM, "VVCSoftware_VTM-23.13.tar.gz")
    encoder = find_program({}, "encoder", ENCODER_NAMES, SEI_VTM)
    return {
        "encoder": encoder,
        "decoder": find_program({}, "decoder", DECODER_NAMES, SEI_VTM),
        "cfg": encoder.resolve().parents[1] / "cfg",
    }
