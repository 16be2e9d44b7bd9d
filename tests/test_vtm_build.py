"""``make vtm`` (anchors/vtm_build.py): sources it refuses, and a built version it does not build again."""

from __future__ import annotations

import re

import pytest

from anchors.vtm_build import BuildError, build, main
from ctc.paths import vtm_cache_dir

ARCHIVE_SHA256 = "a8d9bcb25f1a31f3ef93a5fc520035a135f6d008165986e512c8ff5ebf9a2e90"  # ../shared/vtm/README.md


@pytest.fixture
def archive(shared):
    path = shared / "vtm" / "VVCSoftware_VTM-22.2.tar.gz"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def test_a_built_version_is_not_built_again(real_vtm, archive, capsys):
    record = vtm_cache_dir() / "VTM-22.2" / "build.json"
    before = record.stat().st_mtime_ns
    assert main([str(archive), "--sha256", ARCHIVE_SHA256]) == 0
    assert f"VTM 22.2 is already built: {record.parent}" in capsys.readouterr().out
    assert record.stat().st_mtime_ns == before


def test_an_archive_with_another_checksum_is_refused(archive, tmp_path):
    expected = f"{re.escape(str(archive.resolve()))} has sha256 {ARCHIVE_SHA256}, expected 0+: not the VTM"
    with pytest.raises(BuildError, match=expected):
        build(str(archive), sha256="0" * 64, root=tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("/nowhere/VTM.tar.gz", "VTM source archive /nowhere/VTM.tar.gz does not exist"),
        ("not a source", "VTM source 'not a source' is not a folder, a source archive"),
    ],
)
def test_sources_that_are_not_vtm_are_refused(source, message, tmp_path, capsys):
    assert main([source]) == 2
    assert message in capsys.readouterr().err


def test_a_folder_that_is_not_a_vtm_tree_is_refused(tmp_path):
    with pytest.raises(BuildError, match="is not a VTM source tree: source/Lib/CommonLib/version.h is "):
        build(str(tmp_path), root=tmp_path / "cache")


def test_a_git_source_needs_a_tag(tmp_path):
    with pytest.raises(BuildError, match="needs a tag"):
        build("https://vcgit.hhi.fraunhofer.de/jvet/VVCSoftware_VTM.git", root=tmp_path)
