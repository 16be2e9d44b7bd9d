"""The FFmpeg anchors (vvenc, x265) on a few frames of a real talking-face clip, with real encoders."""

from __future__ import annotations

import re
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from anchor_helpers import FRAMES, HEIGHT, WIDTH, codec_config, face_clip, rgb_psnr

from ctc.codec import CodecError, IntraCodec, create_codec
from ctc.frames import read_rgb444
from ctc.testset.sequences import SequenceSpec
from ctc.tools import ffmpeg_exe

# IRAP NAL unit types: VVC 7-10 (IDR, CRA, GDR), HEVC 16-23; VCL NAL units: VVC 0-11, HEVC 0-31
IRAP_TYPES = {"vvenc": range(7, 11), "x265": range(16, 24)}
VCL_TYPES = {"vvenc": range(0, 12), "x265": range(0, 32)}


def stream_structure(bitstream: Path) -> dict[str, list[int]]:
    """NAL unit types, picture order counts (decoding order) and reorder limits from FFmpeg's parser."""
    trace = subprocess.run(
        [
            ffmpeg_exe(),
            "-hide_banner",
            "-nostdin",
            "-i",
            str(bitstream),
            "-c",
            "copy",
            "-bsf:v",
            "trace_headers",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    return {
        "nal_types": [int(v) for v in re.findall(r"\snal_unit_type\s+[01]+ = (\d+)", trace)],
        "pocs": [int(v) for v in re.findall(r"pic_order_cnt_lsb\s+[01]+ = (\d+)", trace)],
        "reorder": [int(v) for v in re.findall(r"max_num_reorder_pics\[\d+\]\s+[01]+ = (\d+)", trace)],
    }


@pytest.fixture(scope="module")
def clip(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[SequenceSpec, np.ndarray]:
    return face_clip(shared, tmp_path_factory.mktemp("clip"))


@pytest.fixture(params=["vvenc", "x265"])
def codec(request: pytest.FixtureRequest):
    return create_codec(codec_config(request.param))


@pytest.mark.slow
def test_rate_points_code_and_decode_the_clip(codec, clip, tmp_path: Path) -> None:
    spec, original = clip
    results = []
    for qp in (codec.rate_points[0], codec.rate_points[-1]):
        encoded = codec.encode(spec, qp, tmp_path)
        decoded = codec.decode(encoded.bitstream, spec, tmp_path)
        assert encoded.total_bits == encoded.bitstream.stat().st_size * 8 > 0
        assert encoded.bitstream.suffix == codec.suffix
        assert decoded.frames_file.stat().st_size == FRAMES * 3 * WIDTH * HEIGHT
        assert encoded.seconds > 0 and decoded.seconds > 0
        assert encoded.commands[0][0] == decoded.commands[0][0] == codec.ffmpeg
        assert f"{WIDTH}x{HEIGHT}" in encoded.commands[0] and str(qp) in encoded.commands[0]
        frames = read_rgb444(decoded.frames_file, WIDTH, HEIGHT)
        results.append((encoded.total_bits, rgb_psnr(frames, original)))
    (bits_high, psnr_high), (bits_low, psnr_low) = results
    assert bits_high > bits_low
    assert 28 < psnr_high < 45, psnr_high
    assert 18 < psnr_low < psnr_high - 3, psnr_low
    # nothing but the bitstream and the decoded frames stays behind
    assert sorted(p.suffix for p in tmp_path.iterdir()) == sorted([codec.suffix, ".rgb"] * 2)


def test_low_delay_one_intra_picture_and_deterministic(codec, clip, tmp_path: Path) -> None:
    spec, _ = clip
    first = codec.encode(spec, codec.rate_points[1], tmp_path / "a")
    second = codec.encode(spec, codec.rate_points[1], tmp_path / "b")
    assert first.bitstream.read_bytes() == second.bitstream.read_bytes()
    structure = stream_structure(first.bitstream)
    pictures = [t for t in structure["nal_types"] if t in VCL_TYPES[codec.name]]
    assert len(pictures) == FRAMES  # one slice per picture
    assert pictures[0] in IRAP_TYPES[codec.name]
    assert not any(t in IRAP_TYPES[codec.name] for t in pictures[1:])
    # decoding order = output order: POCs rise by one, and the stream promises no reordering
    pocs = structure["pocs"]
    assert pocs == list(range(FRAMES - len(pocs), FRAMES))
    assert structure["reorder"] and set(structure["reorder"]) == {0}


def test_intra_picture_round_trip(codec, clip, tmp_path: Path) -> None:
    _, original = clip
    assert isinstance(codec, IntraCodec)
    picture = np.ascontiguousarray(original[3])
    data = codec.encode_picture(picture, 32, tmp_path)
    assert data and data == codec.encode_picture(picture, 32, tmp_path)
    decoded = codec.decode_picture(data, WIDTH, HEIGHT, tmp_path)
    assert decoded.shape == (3, HEIGHT, WIDTH) and decoded.dtype == np.uint8
    assert 30 < rgb_psnr(decoded[None], picture[None]) < 50
    assert list(tmp_path.iterdir()) == []
    coarse = codec.encode_picture(picture, 47, tmp_path)
    assert len(coarse) < len(data)


def test_version_names_ffmpeg_and_the_library(codec) -> None:
    version = codec.version()
    assert version.startswith("ffmpeg version ")
    assert re.search(rf"{codec.library} \d+\.\d+", version), version
    assert codec.provenance()["version"] == version


def test_encoder_failure_names_the_program_and_carries_its_log(clip, tmp_path: Path) -> None:
    spec, _ = clip
    codec = create_codec(codec_config("vvenc", vvenc_params={"NoSuchParameter": 1}))
    with pytest.raises(CodecError, match=r"ffmpeg.* exited with status") as error:
        codec.encode(spec, 37, tmp_path)
    assert "NoSuchParameter" in str(error.value) or "Conversion failed" in str(error.value)
    assert list(tmp_path.iterdir()) == []  # the temporary raw input is gone too


def test_encoder_timeout_is_an_error(clip, tmp_path: Path) -> None:
    codec = create_codec(codec_config("x265", timeout_s=0.001))
    with pytest.raises(CodecError, match="timed out after"):
        codec.encode(clip[0], 37, tmp_path)


def test_short_sequence_file_is_refused_with_its_name(clip, tmp_path: Path) -> None:
    spec, _ = clip
    longer = replace(spec, frames=FRAMES + 2)
    expected = rf"{re.escape(str(spec.path))} holds {FRAMES} frames.*expected {FRAMES + 2}"
    with pytest.raises(CodecError, match=expected):
        create_codec(codec_config("x265")).encode(longer, 37, tmp_path)


def test_decoded_frame_count_is_checked(clip, tmp_path: Path) -> None:
    spec, _ = clip
    codec = create_codec(codec_config("x265"))
    encoded = codec.encode(spec, 37, tmp_path)
    truncated = tmp_path / "truncated.265"
    truncated.write_bytes(encoded.bitstream.read_bytes()[: encoded.total_bits // 16])
    with pytest.raises(CodecError, match=r"truncated_decoded\.yuv is \d+ bytes, expected"):
        codec.decode(truncated, spec, tmp_path)


def test_settings_outside_the_codec_are_refused(clip, tmp_path: Path) -> None:
    with pytest.raises(CodecError, match="QP 0 to 51, not 52"):
        create_codec(codec_config("x265")).encode_picture(np.zeros((3, 16, 16), np.uint8), 52, tmp_path)
    with pytest.raises(CodecError, match="YUV 4:2:0 only.*rgb444"):
        create_codec(codec_config("vvenc", input_format="rgb444"))
    with pytest.raises(ValueError, match=r"\(3, H, W\) uint8"):
        create_codec(codec_config("vvenc")).encode_picture(np.zeros((16, 16, 3), np.uint8), 32, tmp_path)
