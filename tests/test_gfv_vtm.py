"""Our GFV SEI streams against the real VTM 23.13, the reference software of the GFV SEI
(``make test`` builds it from ``../shared/vtm``).

Each real model (tiny golden configuration, random weights) writes its ``.266`` stream of 8 frames,
in one GOP and with ``gop_size`` 4, its key pictures coded by VTM 23.13 itself: VTM's decoder decodes
it (exit 0) to our key frames, and its SEI dump holds every message, element by element as our
reader reads it, with the values our encoder quantised. Then VTM's encoder, given the configuration
``ctc-gfv-cfg`` writes, writes the very same stream.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_gfvc_codec import as_sequence, resized, tiny_config

from anchors.files import INTRA_PICTURE_FPS
from ctc.conf import load_section
from ctc.frames import read_rgb444, read_yuv420, rgb_to_yuv420, write_yuv420, yuv420_to_rgb
from ctc.testset.sequences import load_test_set
from ctc.tools import run_tool
from models import gfv_cfg, gfv_stream
from models.gfv_conformance import GFVE_TITLE, our_syntax_elements, read_dump, syntax_elements, vtm_sei_dump
from models.gfvc import GfvcCodec
from models.sei import GfvState
from models.sei_gfve import enhancements
from models.sei_layout import GfvSeiParser, SeiLayout
from models.sei_nal import SUFFIX_SEI_NUT, nal_type, parse_sei_nal, split_annexb
from models.sei_parse import parse_gfv

pytestmark = [pytest.mark.vtm, pytest.mark.slow]
FRAMES = 8
QP = 42
# VTM prints reconstructed values with 6 significant digits
PRINTED = 5e-6


@pytest.fixture(scope="module")
def faces(shared) -> np.ndarray:
    (spec,) = load_test_set({"name": "faces", "sequences": ["FACES_00"], "frames": FRAMES})
    return np.asarray(spec.read())


def sei_codec(name: str, shared: Path, sei_vtm: dict, **overrides) -> tuple[GfvcCodec, int]:
    intra = {
        **load_section("picture_codec", "vtm"),
        "version": None,
        "encoder": str(sei_vtm["encoder"]),
        "decoder": str(sei_vtm["decoder"]),
    }
    config, size = tiny_config(
        name,
        shared,
        weights="random",
        feature_coding="sei",
        intra=intra,
        encoder_reconstruction=True,
        **overrides,
    )
    codec = GfvcCodec(config)
    assert "key frame: VTM 23.13" in codec.version()
    return codec, size


@pytest.mark.parametrize("gop_size", [None, 4])
@pytest.mark.parametrize("name", ["fomm", "cfte", "fv2v", "dac"])
def test_vtm_decodes_our_stream_and_dumps_what_we_coded(name, gop_size, shared, faces, sei_vtm, tmp_path):
    codec, size = sei_codec(name, shared, sei_vtm, gop_size=gop_size)
    sequence = as_sequence(resized(faces, size), tmp_path / "seq")
    result = codec.encode(sequence, QP, tmp_path / "enc")
    stream_file = result.bitstream
    assert stream_file.suffix == ".266" and result.total_bits == 8 * stream_file.stat().st_size
    decoded = codec.decode(stream_file, sequence, tmp_path / "dec")
    assert decoded.details["output_md5"] == result.details["reconstruction_md5"]  # closed loop

    dump, yuv = vtm_sei_dump(stream_file, tmp_path / "vtm")  # raises unless VTM exits with 0
    positions = result.details["key_frame_positions"]
    assert positions == ([0] if gop_size is None else [0, 4])
    ours = np.asarray(read_rgb444(decoded.frames_file, size, size))[positions]
    assert np.array_equal(yuv420_to_rgb(read_yuv420(yuv, size, size)), ours)  # VTM's key pictures are ours

    messages = read_dump(dump)
    assert len(messages) == FRAMES
    data = stream_file.read_bytes()
    assert [syntax_elements(message) for message in messages] == our_syntax_elements(data, str(stream_file))
    stream = gfv_stream.unpack(data, str(stream_file), codec.name, codec.setup_hash, size, size)
    encoded = codec.encode_frames(np.asarray(sequence.read()), QP, tmp_path / "again")
    layout = codec.sei_layout
    index = 0
    for gop, (start, end) in zip(encoded.gops, stream.gops(), strict=True):
        parser = GfvSeiParser(layout, codec.model.feature_size)
        for count, unit in enumerate(stream.payloads[start:end]):
            features = parser.read(unit, count)
            if count:
                assert np.array_equal(features, gop.features[count - 1])  # what the encoder quantised
            dumped = messages[index]
            message = parser.messages[-1]
            if message.coordinates is not None:
                for axis, tensor in enumerate("XYZ"[: message.coordinates.shape[1]]):
                    assert dumped.floats(f"gfv_coordinate_{tensor}tensor") == pytest.approx(
                        message.coordinates[:, axis], rel=PRINTED, abs=1e-300
                    )
            if message.matrices:
                elements = np.concatenate([m.values.ravel() for m in message.matrices])
                assert dumped.floats("gfv_MatrixElement") == pytest.approx(elements, rel=PRINTED, abs=1e-300)
            index += 1


def test_vtm_encoder_writes_our_stream_from_ctc_gfv_cfg(shared, faces, sei_vtm, tmp_path):
    """VTM 23.13's encoder, with the key picture's settings and ``ctc-gfv-cfg``'s configuration, writes
    our stream byte for byte; our decoder decodes it to the same frames."""
    codec, size = sei_codec("fomm", shared, sei_vtm)
    sequence = as_sequence(resized(faces, size), tmp_path / "seq")
    ours = codec.encode(sequence, QP, tmp_path / "enc").bitstream
    assert gfv_cfg.main([str(ours), "--out", str(tmp_path / "cfg")]) == 0
    (cfg,) = sorted((tmp_path / "cfg").glob("*.cfg"))
    assert cfg.name == "face00_qp42_gop0.cfg" and "SEIGenerativeFaceVideoNumber: 8" in cfg.read_text()

    source = tmp_path / "key.yuv"
    write_yuv420(source, rgb_to_yuv420(np.asarray(sequence.read())[:1]))
    theirs = tmp_path / "vtm.266"
    command = codec.intra.encoder_command(
        source, theirs, tmp_path / "recon.yuv", size, size, 1, INTRA_PICTURE_FPS, QP
    ) + ["-c", str(cfg)]
    run_tool(command, 600, cwd=tmp_path)
    assert theirs.read_bytes() == ours.read_bytes()
    decoded = codec.decode(theirs, sequence, tmp_path / "dec")
    again = codec.decode(ours, sequence, tmp_path / "dec-ours")
    assert decoded.details["output_md5"] == again.details["output_md5"]


def reduced(cfg: Path, messages: int) -> str:
    """VTM's example configuration with its first ``messages`` messages (arrays of one value per
    message cut; the others VTM indexes message by message)."""
    lines = []
    total = next(int(line.split(":")[1]) for line in cfg.read_text().splitlines() if "Number:" in line)
    for line in cfg.read_text().splitlines():
        key, colon, value = line.partition(":")
        tokens = value.split()
        if key.endswith("Number"):
            value = f" {messages}"
        elif len(tokens) == total and total > 1:
            value = " " + " ".join(tokens[:messages])
        lines.append(f"{key}:{value}" if colon else line)
    return "\n".join(lines) + "\n"


def test_vtm_example_streams_are_read_as_vtm_reads_them(shared, faces, sei_vtm, tmp_path):
    """VTM's own example GFV (10 keypoints with 2x2 matrices: FOMM's layout; base-picture keypoint
    prediction, a network URI, chroma key) and GFVE (pupils) configurations, 6 messages, written by
    VTM's encoder: our reader reads every element VTM's reader reads, with the same values."""
    codec, size = sei_codec("fomm", shared, sei_vtm)
    examples = Path(sei_vtm["cfg"]) / "sei_vui"
    configs = []
    for name in ("generative_face_video.cfg", "generative_face_video_enhancement.cfg"):
        configs += ["-c", str(tmp_path / name)]
        (tmp_path / name).write_text(reduced(examples / name, 6 if "enhancement" not in name else 4))
    source = tmp_path / "key.yuv"
    write_yuv420(source, rgb_to_yuv420(resized(faces[:1], size)))
    stream = tmp_path / "example.266"
    run_tool(
        codec.intra.encoder_command(
            source, stream, tmp_path / "recon.yuv", size, size, 1, INTRA_PICTURE_FPS, QP
        )
        + configs,
        600,
        cwd=tmp_path,
    )
    dump, _ = vtm_sei_dump(stream, tmp_path / "vtm")
    data = stream.read_bytes()
    gfv, gfve = read_dump(dump), read_dump(dump, GFVE_TITLE)
    assert (len(gfv), len(gfve)) == (6, 4)
    assert [syntax_elements(message) for message in gfv] == our_syntax_elements(data, str(stream))
    assert [syntax_elements(message) for message in gfve] == our_syntax_elements(data, str(stream), 224)
    state, fomm = GfvState(), SeiLayout.from_config(codec.config["sei"], codec.model.feature_size)
    messages = [
        parse_gfv(m.payload, state)
        for unit in split_annexb(data, str(stream))
        if nal_type(unit) == SUFFIX_SEI_NUT
        for m in parse_sei_nal(unit)
        if m.payload_type == 223
    ]
    assert messages[0].base and messages[0].kps_pred and messages[0].nn.uri == "gfv_uri"
    assert messages[0].chroma_key.values == (22, 144, 255) and messages[0].gfv_id == 1
    for message, dumped in zip(messages, gfv, strict=True):
        x = message.coordinates[:, 0]
        assert dumped.floats("gfv_coordinate_Xtensor") == pytest.approx(x, rel=PRINTED)
        assert dumped.floats("gfv_MatrixElement") == pytest.approx(
            message.matrices[0].values.ravel(), rel=PRINTED
        )
        assert fomm.features(message, codec.model.feature_size).shape == (codec.model.feature_size,)
    pupils = [value for message in enhancements(data, str(stream)) for value in message.pupils]
    assert pupils == pytest.approx(
        [value for d in gfve for value in d.floats("gfve_PupilCoordinate")], rel=PRINTED
    )
