"""The VTM anchor's search, version checks and failure handling.

What the real VTM 22.2 does (coding, the log it prints) is tested against the real build in
``test_vtm_real.py``; the fake EncoderApp/DecoderApp here (``tests/fake_vtm``, printing only lines of
the real VTM's output) stands in only for what the real one cannot be made to do on demand: be
another version, crash, hang, write no bitstream or print no closing summary.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from anchor_helpers import codec_config, face_clip, install_fake_vtm

from anchors.vtm_tools import VTM_DIR_ENV, parse_summary
from ctc.codec import CodecError, create_codec

RECORDED_LOG = Path(__file__).parent / "fake_vtm" / "encoder_22.2.log"
RECORDED_FRAMES = 4


@pytest.fixture
def vtm_dir(tmp_path: Path, no_vtm: None, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = install_fake_vtm(tmp_path / "VVCSoftware_VTM")
    monkeypatch.setenv(VTM_DIR_ENV, str(root))
    return root


@pytest.fixture(scope="module")
def clip(shared: Path, tmp_path_factory: pytest.TempPathFactory):
    return face_clip(shared, tmp_path_factory.mktemp("clip"))


def test_search_order_config_then_vtm_dir_then_path(
    tmp_path: Path, no_vtm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_path = install_fake_vtm(tmp_path / "on-path", "22.3", names=("EncoderApp", "DecoderApp"))
    monkeypatch.setenv("PATH", str(on_path / "bin"))
    codec = create_codec(codec_config("vtm", version=None))
    assert codec.version() == "VTM 22.3" and codec.encoder == on_path / "bin" / "EncoderApp"
    assert codec.cfg == on_path / "cfg" / "encoder_lowdelay_vtm.cfg"  # found above the binary
    # $VTM_DIR before PATH; CMake's bin/umake/<compiler>/<arch>/release layout
    umake = install_fake_vtm(tmp_path / "umake", "22.4", bin_dir="bin/umake/gcc-13.2/x86_64/release")
    monkeypatch.setenv(VTM_DIR_ENV, str(umake))
    assert create_codec(codec_config("vtm", version=None)).version() == "VTM 22.4"
    # codec.vtm_dir before $VTM_DIR, and explicit encoder/decoder paths before all
    configured = install_fake_vtm(tmp_path / "configured", "22.5")
    assert create_codec(codec_config("vtm", vtm_dir=str(configured), version="22.5")).version() == "VTM 22.5"
    explicit = install_fake_vtm(tmp_path / "explicit", "22.6", bin_dir="build")
    codec = create_codec(
        codec_config(
            "vtm",
            encoder=str(explicit / "build" / "EncoderAppStatic"),
            decoder=str(explicit / "build" / "DecoderAppStatic"),
        )
    )
    assert codec.version() == "VTM 22.6"
    assert codec.cfg == umake / "cfg" / "encoder_lowdelay_vtm.cfg"  # relative cfg: $VTM_DIR first


def test_the_build_cache_of_make_vtm_comes_last(
    tmp_path: Path, no_vtm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = tmp_path / "tools"
    monkeypatch.setenv("GFVC_TOOLS", str(tools))
    install_fake_vtm(tools / "vtm" / "VTM-22.1", "22.1")
    newest = install_fake_vtm(tools / "vtm" / "VTM-22.10", "22.10")
    codec = create_codec(codec_config("vtm", version=None))
    assert codec.version() == "VTM 22.10" and codec.encoder == newest / "bin" / "EncoderAppStatic"
    assert codec.cfg == newest / "cfg" / "encoder_lowdelay_vtm.cfg"
    on_path = install_fake_vtm(tmp_path / "on-path", "22.3")
    monkeypatch.setenv("PATH", str(on_path / "bin"))
    assert create_codec(codec_config("vtm", version=None)).version() == "VTM 22.3"


def test_the_anchor_takes_the_ctc_version_not_the_newest(
    tmp_path: Path, no_vtm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """22.2 (the CTC anchor) and 23.13 (the GFV SEI reference) side by side in the cache."""
    from anchors.vtm_tools import DECODER_NAMES, VersionWanted, find_program

    tools = tmp_path / "tools"
    monkeypatch.setenv("GFVC_TOOLS", str(tools))
    sei_reference = install_fake_vtm(tools / "vtm" / "VTM-23.13", "23.13")
    with pytest.raises(
        CodecError,
        match=r"VTM 22\.2 not found, only VTM 23\.13 at .*VTM-23\.13.*"
        r"make vtm VTM_TAG=VTM-22\.2.*codec.other_version=true",
    ):
        create_codec(codec_config("vtm"))
    assert create_codec(codec_config("vtm", other_version=True)).version() == "VTM 23.13"
    anchor = install_fake_vtm(tools / "vtm" / "VTM-22.2", "22.2")
    codec = create_codec(codec_config("vtm"))
    assert codec.version() == "VTM 22.2" and codec.encoder == anchor / "bin" / "EncoderAppStatic"
    found = find_program({}, "decoder", DECODER_NAMES, VersionWanted(at_least="23.7"))
    assert found == sei_reference / "bin" / "DecoderAppStatic"


def test_missing_vtm_says_where_it_looked(no_vtm: None) -> None:
    expected = r"VTM not found: no EncoderAppStatic or EncoderApp in PATH, the build cache .*make vtm"
    with pytest.raises(CodecError, match=expected):
        create_codec(codec_config("vtm"))
    with pytest.raises(CodecError, match=r"codec.encoder = /nowhere/EncoderApp is not an executable"):
        create_codec(codec_config("vtm", encoder="/nowhere/EncoderApp"))


def test_too_old_vtm_is_refused(tmp_path: Path, no_vtm: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VTM_DIR_ENV, str(install_fake_vtm(tmp_path / "old", "21.0")))
    with pytest.raises(CodecError, match=r"EncoderAppStatic is VTM 21\.0, older than the required 22\.0"):
        create_codec(codec_config("vtm", version=None))
    assert create_codec(codec_config("vtm", version=None, min_version="21")).version() == "VTM 21.0"


def test_binary_without_vtm_banner_or_cfg_is_refused(vtm_dir: Path) -> None:
    impostor = vtm_dir / "bin" / "EncoderAppStatic"
    impostor.write_text("#!/bin/sh\necho hello\n")
    with pytest.raises(CodecError, match="printed no VTM banner"):
        create_codec(codec_config("vtm"))
    install_fake_vtm(vtm_dir)
    (vtm_dir / "cfg" / "encoder_lowdelay_vtm.cfg").unlink()
    with pytest.raises(CodecError, match=r"VTM encoder config cfg/encoder_lowdelay_vtm.cfg not found"):
        create_codec(codec_config("vtm"))


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("crash", r"EncoderAppStatic exited with status -6\n.*VVCSoftware: VTM Encoder Version 22\.2"),
        ("hang", r"EncoderAppStatic timed out after 1 s"),
        ("empty", r"EncoderAppStatic wrote no bitstream .*face_qp37\.bin"),
        (
            "no-summary",
            r"EncoderAppStatic printed no closing summary \('Total Frames \| Bitrate \.\.\.'\) for "
            r".*face_qp37\.bin; its log:\n.*POC",
        ),
    ],
)
def test_encoder_failures(
    vtm_dir: Path, clip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, message: str
) -> None:
    codec = create_codec(codec_config("vtm", timeout_s=1))
    monkeypatch.setenv("FAKE_VTM_MODE", mode)
    with pytest.raises(CodecError, match=re.compile(message, re.S)):
        codec.encode(clip[0], 37, tmp_path)


def test_the_closing_summary_of_the_real_log_is_read() -> None:
    """The summary VTM 22.2 printed for 4 frames of a real clip (recorded by test_vtm_real.py's setup)."""
    (layer,) = parse_summary(RECORDED_LOG.read_text())
    assert layer["layer"] == 0 and layer["frames"] == RECORDED_FRAMES
    assert set(layer) >= {"kbps", "psnr_y", "psnr_u", "psnr_v", "psnr_yuv"}
    assert 0 < layer["kbps"] < 1000 and 25 < layer["psnr_y"] < 60


def test_multi_layer_summaries_are_read_layer_by_layer() -> None:
    """VTM prints one closing summary per layer, its all-frames row labelled ``a`` then ``a1``, ``a2``
    (EncGOP::printOutSummary); the rows of the I, P and B slices (``i``, ``p``, ``b``) are not taken."""
    log = RECORDED_LOG.read_text()
    single = log[log.index("LayerId") :]
    second = single.replace("LayerId  0", "LayerId  1").replace(" a ", " a1", 1)
    slices = "\n".join(line.replace(" a ", " b ", 1) for line in single.splitlines())
    layers = parse_summary(log + "\n" + second + "\n" + slices)
    assert [layer["layer"] for layer in layers] == [0, 1]
    assert layers[0]["kbps"] == layers[1]["kbps"] == parse_summary(log)[0]["kbps"]
    assert parse_summary("POC 0 ... no summary") == []
