"""The GFVC bitstream container: layout, rate accounting, and refusal of bad files."""

from __future__ import annotations

import pytest

from models import bitstream
from models.bitstream import BitstreamError, GfvcBitstream

HASH = bytes(range(16))


def sample() -> GfvcBitstream:
    # a 140-byte payload needs a 2-byte length field; key frames at 0 and 3 (two GOPs)
    payloads = [b"", b"\x7c", b"\x85\xe0" * 70, b"", b"\x01\x02\x03"]
    key_frames = {0: b"key-frame-bitstream" * 5, 3: b"second key frame"}
    return GfvcBitstream(
        "cfte",
        HASH,
        256,
        192,
        key_frames,
        payloads,
        {"base_layer": b"\x00\x01" * 9},
        {"residual": [b"", b"r1", b"", b"", b"r4" * 3]},
    )


def test_round_trip_and_fields():
    stream = sample()
    back = bitstream.unpack(bitstream.pack(stream), expect_model="cfte", expect_hash=HASH)
    assert back == stream
    assert back.frame_count == 5 and (back.width, back.height) == (256, 192)
    assert back.key_frame_positions == [0, 3] and back.gops() == [(0, 3), (3, 5)]


def test_parts_add_up_to_the_file_size():
    stream = sample()
    parts = bitstream.bit_parts(stream)
    assert set(parts) == {"header", "key_frame", "features", "base_layer", "residual"}
    assert sum(parts.values()) == 8 * len(bitstream.pack(stream))
    assert parts["key_frame"] == 8 * sum(len(k) for k in stream.key_frames.values())
    assert parts["features"] == 8 * sum(len(p) for p in stream.payloads)
    assert parts["base_layer"] == 8 * 18 and parts["residual"] == 8 * 8
    assert 0 < parts["header"] < 8 * 100


def test_frame_zero_must_be_a_key_frame():
    stream = sample()
    stream.key_frames = {3: b"x"}
    with pytest.raises(ValueError, match="frame 0 must be one"):
        bitstream.pack(stream)


def test_every_truncation_is_refused():
    data = bitstream.pack(sample())
    for cut in range(len(data)):
        with pytest.raises(BitstreamError, match="truncated|checksum|not a GFVC"):
            bitstream.unpack(data[:cut], "x.gfvc")


def test_every_single_byte_corruption_is_refused():
    data = bytearray(bitstream.pack(sample()))
    for pos in range(len(data)):
        corrupt = data.copy()
        corrupt[pos] ^= 0x40
        with pytest.raises(BitstreamError, match="x.gfvc"):
            bitstream.unpack(bytes(corrupt), "x.gfvc")


def test_other_model_configuration_or_format_is_refused():
    data = bitstream.pack(sample())
    with pytest.raises(BitstreamError, match="made by model 'cfte', this decoder is 'fomm'"):
        bitstream.unpack(data, "x.gfvc", expect_model="fomm")
    with pytest.raises(BitstreamError, match="configuration"):
        bitstream.unpack(data, "x.gfvc", expect_hash=bytes(16))
    with pytest.raises(BitstreamError, match="not a GFVC bitstream"):
        bitstream.unpack(b"\x00\x00\x01\xb0" + data[4:], "x.gfvc")
    with pytest.raises(BitstreamError, match="trailing|unexpected bytes|checksum"):
        bitstream.unpack(data + b"\x00", "x.gfvc")
