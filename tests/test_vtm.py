"""The VTM anchor's command path against a fake EncoderApp/DecoderApp; the real VTM when it is found."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from anchor_helpers import FRAMES, HEIGHT, WIDTH, codec_config, face_clip, install_fake_vtm, rgb_psnr

from anchors.vtm import DECODER_NAMES, ENCODER_NAMES, VTM_DIR_ENV, find_program
from ctc.codec import CodecError, IntraCodec, create_codec
from ctc.frames import read_rgb444


@pytest.fixture
def no_vtm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither $VTM_DIR nor a VTM on PATH (whatever this machine has)."""
    monkeypatch.delenv(VTM_DIR_ENV, raising=False)
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.fixture
def vtm_dir(tmp_path: Path, no_vtm: None, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = install_fake_vtm(tmp_path / "VVCSoftware_VTM")
    monkeypatch.setenv(VTM_DIR_ENV, str(root))
    return root


@pytest.fixture(scope="module")
def clip(shared: Path, tmp_path_factory: pytest.TempPathFactory):
    return face_clip(shared, tmp_path_factory.mktemp("clip"))


def option(command: list[str], name: str) -> str:
    values = [arg.split("=", 1)[1] for arg in command if arg.startswith(f"--{name}=")]
    assert len(values) == 1, (name, command)
    return values[0]


def test_vtm_dir_yuv420_round_trip(vtm_dir: Path, clip, tmp_path: Path) -> None:
    spec, original = clip
    codec = create_codec(codec_config("vtm"))
    assert codec.version() == "VTM 22.2"
    assert codec.encoder == vtm_dir / "bin" / "EncoderAppStatic"
    assert codec.provenance()["cfg"] == str(vtm_dir / "cfg" / "encoder_lowdelay_vtm.cfg")
    work = tmp_path / "job"
    results = []
    for qp in (37, 52):
        encoded = codec.encode(spec, qp, work)
        command = encoded.commands[0]
        assert command[:3] == [str(codec.encoder), "-c", str(codec.cfg)]
        assert (option(command, "SourceWidth"), option(command, "SourceHeight")) == (str(WIDTH), str(HEIGHT))
        assert option(command, "FrameRate") == "30" and option(command, "FramesToBeEncoded") == str(FRAMES)
        assert option(command, "QP") == str(qp) and option(command, "InputChromaFormat") == "420"
        assert option(command, "IntraPeriod") == "-1" and option(command, "Level") == "2.1"
        assert encoded.total_bits == encoded.bitstream.stat().st_size * 8 > 0
        decoded = codec.decode(encoded.bitstream, spec, work)
        assert decoded.commands[0][:5] == [str(codec.decoder), "-b", str(encoded.bitstream), "-o",
                                           str(work / f"face_qp{qp}_decoded.yuv")]
        frames = read_rgb444(decoded.frames_file, WIDTH, HEIGHT)
        assert frames.shape == (FRAMES, 3, HEIGHT, WIDTH)
        results.append((encoded.total_bits, rgb_psnr(frames, original)))
    assert results[0][0] > results[1][0] and 25 < results[1][1] < results[0][1]
    # input, recon and decoded YUV are removed: bitstreams and decoded RGB stay
    assert sorted(p.name for p in work.iterdir()) == ["face_qp37.bin", "face_qp37_decoded.rgb",
                                                      "face_qp52.bin", "face_qp52_decoded.rgb"]


def test_rgb444_codes_the_sequence_file_and_converts_colours_back(vtm_dir: Path, clip,
                                                                  tmp_path: Path) -> None:
    spec, original = clip
    codec = create_codec(codec_config("vtm", input_format="rgb444"))
    encoded = codec.encode(spec, 37, tmp_path)
    command = encoded.commands[0]
    assert option(command, "InputFile") == str(spec.path)  # no conversion: VTM reads planar RGB itself
    assert option(command, "InputChromaFormat") == "444"
    assert option(command, "InputColourSpaceConvert") == "RGBtoGBR"
    decoded = codec.decode(encoded.bitstream, spec, tmp_path)
    assert "--OutputColourSpaceConvert=GBRtoRGB" in decoded.commands[0]
    frames = read_rgb444(decoded.frames_file, WIDTH, HEIGHT)
    assert rgb_psnr(frames, original) > 40  # planes in R, G, B order again (only the fake's rounding lost)


@pytest.mark.parametrize("input_format", ["yuv420", "rgb444"])
def test_intra_picture(vtm_dir: Path, clip, tmp_path: Path, input_format: str) -> None:
    _, original = clip
    codec = create_codec(codec_config("vtm", input_format=input_format))
    assert isinstance(codec, IntraCodec)
    work = tmp_path / "key-frame"
    data = codec.encode_picture(original[0], 22, work)
    assert data == codec.encode_picture(original[0], 22, work)
    picture = codec.decode_picture(data, WIDTH, HEIGHT, work)
    assert picture.shape == (3, HEIGHT, WIDTH) and rgb_psnr(picture[None], original[:1]) > 30
    assert list(work.iterdir()) == []


def test_search_order_config_then_vtm_dir_then_path(tmp_path: Path, no_vtm: None,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    on_path = install_fake_vtm(tmp_path / "on-path", "22.3", names=("EncoderApp", "DecoderApp"))
    monkeypatch.setenv("PATH", str(on_path / "bin"))
    codec = create_codec(codec_config("vtm"))
    assert codec.version() == "VTM 22.3" and codec.encoder == on_path / "bin" / "EncoderApp"
    assert codec.cfg == on_path / "cfg" / "encoder_lowdelay_vtm.cfg"  # found above the binary
    # $VTM_DIR before PATH; CMake's bin/umake/<compiler>/<arch>/release layout
    umake = install_fake_vtm(tmp_path / "umake", "22.4", bin_dir="bin/umake/gcc-13.2/x86_64/release")
    monkeypatch.setenv(VTM_DIR_ENV, str(umake))
    assert create_codec(codec_config("vtm")).version() == "VTM 22.4"
    # codec.vtm_dir before $VTM_DIR, and explicit encoder/decoder paths before all
    configured = install_fake_vtm(tmp_path / "configured", "22.5")
    assert create_codec(codec_config("vtm", vtm_dir=str(configured))).version() == "VTM 22.5"
    explicit = install_fake_vtm(tmp_path / "explicit", "22.6", bin_dir="build")
    codec = create_codec(codec_config("vtm", encoder=str(explicit / "build" / "EncoderAppStatic"),
                                      decoder=str(explicit / "build" / "DecoderAppStatic")))
    assert codec.version() == "VTM 22.6"
    assert codec.cfg == umake / "cfg" / "encoder_lowdelay_vtm.cfg"  # relative cfg: $VTM_DIR first


def test_missing_vtm_says_where_it_looked(no_vtm: None) -> None:
    expected = r"VTM not found: no EncoderAppStatic or EncoderApp in PATH\. .*VTM_DIR="
    with pytest.raises(CodecError, match=expected):
        create_codec(codec_config("vtm"))
    with pytest.raises(CodecError, match=r"codec.encoder = /nowhere/EncoderApp is not an executable"):
        create_codec(codec_config("vtm", encoder="/nowhere/EncoderApp"))


def test_too_old_vtm_is_refused(tmp_path: Path, no_vtm: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VTM_DIR_ENV, str(install_fake_vtm(tmp_path / "old", "21.0")))
    with pytest.raises(CodecError, match=r"EncoderAppStatic is VTM 21\.0, older than the required 22\.0"):
        create_codec(codec_config("vtm"))
    assert create_codec(codec_config("vtm", min_version="21")).version() == "VTM 21.0"


def test_binary_without_vtm_banner_or_cfg_is_refused(vtm_dir: Path) -> None:
    impostor = vtm_dir / "bin" / "EncoderAppStatic"
    impostor.write_text("#!/bin/sh\necho hello\n")
    with pytest.raises(CodecError, match="printed no VTM banner"):
        create_codec(codec_config("vtm"))
    install_fake_vtm(vtm_dir)
    (vtm_dir / "cfg" / "encoder_lowdelay_vtm.cfg").unlink()
    with pytest.raises(CodecError, match=r"VTM encoder config cfg/encoder_lowdelay_vtm.cfg not found"):
        create_codec(codec_config("vtm"))


@pytest.mark.parametrize(("mode", "message"), [
    ("crash", r"EncoderAppStatic exited with status -6\n.*terminate called"),
    ("hang", r"EncoderAppStatic timed out after 1 s"),
    ("empty", r"EncoderAppStatic wrote no bitstream .*face_qp37\.bin"),
    ("short", rf"EncoderAppStatic reports {FRAMES - 1} frames coded into .*qp37\.bin, expected {FRAMES}"),
])
def test_encoder_failures(vtm_dir: Path, clip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          mode: str, message: str) -> None:
    codec = create_codec(codec_config("vtm", timeout_s=1))
    monkeypatch.setenv("FAKE_VTM_MODE", mode)
    with pytest.raises(CodecError, match=re.compile(message, re.S)):
        codec.encode(clip[0], 37, tmp_path)
    assert not (tmp_path / "face_qp37.bin").exists() or mode == "short"


def test_decoder_output_size_is_checked(vtm_dir: Path, clip, tmp_path: Path) -> None:
    spec, _ = clip
    codec = create_codec(codec_config("vtm"))
    encoded = codec.encode(spec, 42, tmp_path)
    longer = replace(spec, frames=FRAMES + 1)
    expected = rf"face_qp42_decoded\.yuv is \d+ bytes, expected .*{FRAMES + 1} decoded"
    with pytest.raises(CodecError, match=expected):
        codec.decode(encoded.bitstream, longer, tmp_path)


def real_vtm_found() -> bool:
    config = codec_config("vtm")
    try:
        find_program(config, "encoder", ENCODER_NAMES)
        find_program(config, "decoder", DECODER_NAMES)
    except CodecError:
        return False
    return True


@pytest.mark.vtm
@pytest.mark.slow
@pytest.mark.skipif(not real_vtm_found(), reason=f"no VTM build found (set {VTM_DIR_ENV})")
def test_real_vtm_codes_two_frames(clip, tmp_path: Path) -> None:
    spec, original = clip
    two = replace(spec, frames=2)
    codec = create_codec(codec_config("vtm"))
    assert re.fullmatch(r"VTM \d+\.\d+.*", codec.version())
    encoded = codec.encode(two, 37, tmp_path)
    decoded = codec.decode(encoded.bitstream, two, tmp_path)
    frames = read_rgb444(decoded.frames_file, WIDTH, HEIGHT)
    assert 25 < rgb_psnr(frames, original[:2]) < 50
    assert encoded.total_bits > 0
