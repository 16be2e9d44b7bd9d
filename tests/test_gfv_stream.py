"""The ``.266`` stream of ``feature_coding: sei``: layout, rate, and refusal of bad streams.

The key pictures are real vvenc pictures of a real face; that VTM 23.13 decodes the streams and
reads their messages is ``test_gfv_vtm.py``'s part.
"""

from __future__ import annotations

import numpy as np
import pytest

from ctc.codec import create_codec
from ctc.conf import load_section
from ctc.testset.sequences import load_test_set
from models import bitstream
from models.bitstream import BitstreamError, GfvcBitstream
from models.features import decode
from models.gfv_stream import bit_parts, pack, unpack
from models.sei_layout import GfvSeiWriter, SeiLayout
from models.sei_nal import START_CODE, SUFFIX_SEI_NUT, nal_type, split_annexb

LAYOUT = SeiLayout.from_config(
    {"coordinate_precision": 6, "matrix_precision": 6, "coordinates": {"num": 10, "dims": 2}}, 20
)
HASH = bytes(16)
SIZE = 64


@pytest.fixture(scope="module")
def key_pictures(shared, tmp_path_factory) -> list[bytes]:
    """Two vvenc intra pictures of the real clip FACES_00 (cropped)."""
    (spec,) = load_test_set({"name": "faces", "sequences": ["FACES_00"], "frames": 2})
    frames = np.ascontiguousarray(np.asarray(spec.read())[:, :, :SIZE, :SIZE])
    vvenc = create_codec(load_section("picture_codec", "vvenc"))
    folder = tmp_path_factory.mktemp("key")
    return [vvenc.encode_picture(frame, 42, folder) for frame in frames]


def gfv_units(frames: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    writer = GfvSeiWriter(LAYOUT)
    features = np.cumsum(rng.normal(scale=0.05, size=(frames, 20)), axis=0)
    return [writer.write(values, count)[0] for count, values in enumerate(features)]


def sample(key_pictures: list[bytes]) -> GfvcBitstream:
    """Two GOPs: frames 0..2 and 3..4."""
    return GfvcBitstream(
        "fomm",
        HASH,
        SIZE,
        SIZE,
        {0: key_pictures[0], 3: key_pictures[1]},
        gfv_units(3) + gfv_units(2, seed=1),
    )


def read(data: bytes) -> GfvcBitstream:
    return unpack(data, "s.266", "fomm", HASH, SIZE, SIZE)


def test_one_vvc_stream_key_pictures_then_their_suffix_sei(key_pictures):
    stream = sample(key_pictures)
    data = pack(stream)
    units = split_annexb(data, "s.266")
    kinds = [nal_type(unit) for unit in units]
    first_gfv = kinds.index(SUFFIX_SEI_NUT)
    assert kinds[first_gfv : first_gfv + 3] == [SUFFIX_SEI_NUT] * 3 and kinds[-2:] == [SUFFIX_SEI_NUT] * 2
    assert all(kind < 12 for kind in kinds[first_gfv - 1 : first_gfv])  # right after the key picture's slice
    back = read(data)
    assert back.key_frame_positions == [0, 3] and back.payloads == stream.payloads
    assert [split_annexb(back.key_frames[i], "k") for i in (0, 3)] == [
        split_annexb(stream.key_frames[i], "k") for i in (0, 3)
    ]
    parts = bit_parts(stream)
    assert sum(parts.values()) == 8 * len(data)
    assert parts["features"] == sum(8 * (len(START_CODE) + len(unit)) for unit in stream.payloads)
    features = decode(back.payloads[:3], np.zeros(20), "sei", 64.0, LAYOUT, "s.266")
    assert features.shape == (2, 20)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no_key_picture", "GFV SEI message before any key picture"),
        ("no_base", "gfv_kps_pred_flag 1 before any base picture"),
        ("no_messages", "key picture 0 .* carries no GFV SEI message"),
        ("payload_size", "declares .* bytes|bits left after the last syntax element|ends inside"),
        ("truncated", "truncated|ends inside"),
        ("gfvc_container", "not an Annex-B VVC byte stream"),
        ("empty", "not an Annex-B VVC byte stream"),
        ("reordered", "gfv_cnt 2"),
    ],
)
def test_bad_streams_are_refused_saying_what_is_wrong(key_pictures, damage, message):
    stream = sample(key_pictures)
    data = pack(stream)
    units = split_annexb(data, "s.266")
    gfv = [i for i, unit in enumerate(units) if nal_type(unit) == SUFFIX_SEI_NUT]
    if damage == "no_key_picture":
        data = b"".join(START_CODE + units[i] for i in gfv)
    elif damage == "no_base":
        data = data.replace(START_CODE + units[gfv[0]], b"", 1)
    elif damage == "no_messages":
        data = stream.key_frames[0]
    elif damage == "payload_size":  # the first message's payload_size byte, one too large / small
        first = units[gfv[0]]
        data = data.replace(first, first[:3] + bytes([first[3] + 1]) + first[4:], 1)
    elif damage == "truncated":
        data = data[:-3]
    elif damage == "gfvc_container":
        data = bitstream.pack(GfvcBitstream("fomm", HASH, SIZE, SIZE, {0: stream.key_frames[0]}, [b""]))
    elif damage == "empty":
        data = b""
    elif damage == "reordered":
        second, third = START_CODE + units[gfv[1]], START_CODE + units[gfv[2]]
        data = data.replace(second + third, third + second, 1)
    with pytest.raises(BitstreamError, match=message):
        read(data)


def test_random_bytes_and_cut_streams_never_crash(key_pictures):
    data = pack(sample(key_pictures))
    rng = np.random.default_rng(7)
    for cut in range(0, len(data), max(1, len(data) // 40)):
        candidate = bytearray(data[:cut])
        if candidate and rng.random() < 0.5:
            candidate[rng.integers(len(candidate))] ^= 1 << int(rng.integers(8))
        try:
            stream = read(bytes(candidate))
            decode(stream.payloads[: stream.gops()[0][1]], np.zeros(20), "sei", 64.0, LAYOUT, "s.266")
        except BitstreamError:
            pass


def test_the_codec_refuses_what_the_stream_cannot_carry():
    from test_gfvc_codec import StandInModel

    from models.gfvc import GfvcCodec

    config = {
        **load_section("codec", "cfte"),
        "feature_coding": "sei",
        "intra": load_section("picture_codec", "x265"),
        "rate_points": [22, 32, 42, 51],  # QPs HEVC has (0 to 51): refused for its format only
    }
    with pytest.raises(ValueError, match="key-frame codec 'x265' is not VVC"):
        GfvcCodec(config, model=StandInModel())
    for name, layer in (("hdac", "HDAC's base layer"), ("rdac", "RDAC's learned residuals")):
        with pytest.raises(ValueError, match=f"{name}: feature_coding sei .* no place for {layer}"):
            create_codec({**load_section("codec", name), "feature_coding": "sei", "weights": "random"})


def test_ctc_gfv_cfg_writes_one_configuration_per_key_picture(key_pictures, tmp_path, capsys):
    """What VTM makes of them is ``test_gfv_vtm.py``'s part; here the files and the refusals."""
    from models import gfv_cfg

    stream = tmp_path / "clip_qp42.266"
    stream.write_bytes(pack(sample(key_pictures)))
    assert gfv_cfg.main([str(tmp_path)]) == 0
    first, second = sorted(tmp_path.glob("*.cfg"))
    assert (first.name, second.name) == ("clip_qp42_gop0.cfg", "clip_qp42_gop3.cfg")
    keys = dict(line.split(": ", 1) for line in second.read_text().splitlines())
    assert keys["SEIGenerativeFaceVideoNumber"] == "2" and keys["SEIGenerativeFaceVideoCnt"] == "0 1"
    assert len(keys["SEIGenerativeFaceVideoXCoordinate"].split()) == 2 * 10
    empty = tmp_path / "empty"
    empty.mkdir()
    assert gfv_cfg.main([str(empty)]) == 2
    assert "no .266 stream at" in capsys.readouterr().err
    stream.write_bytes(key_pictures[0])
    assert gfv_cfg.main([str(stream)]) == 2
    assert "no GFV SEI message in it" in capsys.readouterr().err
