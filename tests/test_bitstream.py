"""The GFVC bitstream container: layout, rate accounting, and refusal of bad files."""

from __future__ import annotations

import pytest

from models import bitstream
from models.bitstream import BitstreamError, GfvcBitstream

HASH = bytes(range(16))


def sample() -> GfvcBitstream:
    # a 140-byte payload needs a 2-byte length field
    payloads = [b"", b"\x7c", b"\x85\xe0" * 70, b"", b"\x01\x02\x03"]
    return GfvcBitstream("cfte", HASH, 256, 192, b"key-frame-bitstream" * 5, payloads)


def test_round_trip_and_fields():
    stream = sample()
    back = bitstream.unpack(bitstream.pack(stream), expect_model="cfte", expect_hash=HASH)
    assert back == stream
    assert back.frame_count == 5 and (back.width, back.height) == (256, 192)


def test_parts_add_up_to_the_file_size():
    stream = sample()
    parts = bitstream.bit_parts(stream)
    assert set(parts) == {"header", "key_frame", "features"}
    assert sum(parts.values()) == 8 * len(bitstream.pack(stream))
    assert parts["key_frame"] == 8 * len(stream.key_frame)
    assert parts["features"] == 8 * sum(len(p) for p in stream.payloads)


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
