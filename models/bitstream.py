"""The GFVC bitstream file: one per (sequence, rate point), everything the decoder reads.

Layout (integers big-endian)::

    magic "GFVC"  | format version u8 | model name (u8 length + ASCII)
    configuration hash (16 bytes)    | frame count u32 | width u16 | height u16
    key-frame length u32 | key-frame bitstream
    per frame (0 .. N-1): payload length (unsigned LEB128 varint) | feature payload
                          (frame 0's is empty in ``ae`` mode, the base-picture SEI in ``sei`` mode)
    CRC-32 of every byte before it (u32)

A file that is cut, altered, or written for another model or configuration is refused with a
:class:`BitstreamError` that says which, before any of it is decoded.

Rate accounting (:func:`bit_parts`): ``key_frame`` is the intra bitstream, ``features`` the
feature payloads exactly as the GFVC common software counts them (one file per frame, bits = 8 x
bytes), and ``header`` all container overhead (fixed header, length fields, checksum). The three
add up to the file size in bits.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

MAGIC = b"GFVC"
FORMAT_VERSION = 1
HASH_BYTES = 16
_FIXED = struct.Struct(">IHH")  # frame count, width, height
_U32 = struct.Struct(">I")


class BitstreamError(ValueError):
    """A GFVC bitstream file that must not be decoded; the message says why."""


@dataclass
class GfvcBitstream:
    model: str
    config_hash: bytes
    width: int
    height: int
    key_frame: bytes
    payloads: list[bytes] = field(default_factory=list)  # one per frame, frame 0 included

    @property
    def frame_count(self) -> int:
        return len(self.payloads)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def pack(stream: GfvcBitstream) -> bytes:
    """Serialise ``stream`` (see the module docstring for the layout)."""
    name = stream.model.encode("ascii")
    if not 0 < len(name) < 256:
        raise ValueError(f"model name {stream.model!r} must be 1 to 255 ASCII characters")
    if len(stream.config_hash) != HASH_BYTES:
        raise ValueError(f"configuration hash must be {HASH_BYTES} bytes, got {len(stream.config_hash)}")
    parts = [MAGIC, bytes([FORMAT_VERSION, len(name)]), name, stream.config_hash,
             _FIXED.pack(stream.frame_count, stream.width, stream.height),
             _U32.pack(len(stream.key_frame)), stream.key_frame]
    for payload in stream.payloads:
        parts += [_varint(len(payload)), payload]
    body = b"".join(parts)
    return body + _U32.pack(zlib.crc32(body))


def bit_parts(stream: GfvcBitstream) -> dict[str, int]:
    """Bits per part (header, key_frame, features); they add up to ``8 * len(pack(stream))``."""
    key_frame = 8 * len(stream.key_frame)
    features = 8 * sum(len(p) for p in stream.payloads)
    total = 8 * (len(MAGIC) + 2 + len(stream.model.encode("ascii")) + HASH_BYTES + _FIXED.size
                 + 2 * _U32.size + sum(len(_varint(len(p))) for p in stream.payloads)) + key_frame + features
    return {"header": total - key_frame - features, "key_frame": key_frame, "features": features}


class _Reader:
    def __init__(self, data: bytes, source: str) -> None:
        self.data, self.pos, self.source = data, 0, source

    def take(self, count: int, what: str) -> bytes:
        if self.pos + count > len(self.data):
            raise BitstreamError(f"{self.source}: truncated (ends inside the {what})")
        chunk = self.data[self.pos:self.pos + count]
        self.pos += count
        return chunk

    def varint(self, what: str) -> int:
        value, shift = 0, 0
        while True:
            byte = self.take(1, what)[0]
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value
            if shift > 28:
                raise BitstreamError(f"{self.source}: malformed {what}")


def unpack(data: bytes, source: str = "bitstream", expect_model: str | None = None,
           expect_hash: bytes | None = None) -> GfvcBitstream:
    """Parse and verify a GFVC bitstream; ``source`` names it in error messages.

    Refused: wrong magic or version, a cut or altered file (CRC-32 and lengths), and, when given,
    a model name or configuration hash other than the decoder's.
    """
    if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
        raise BitstreamError(f"{source}: not a GFVC bitstream (expected magic {MAGIC!r})")
    if len(data) < len(MAGIC) + 2 + _U32.size:
        raise BitstreamError(f"{source}: truncated ({len(data)} bytes)")
    body, stored_crc = data[:-_U32.size], _U32.unpack(data[-_U32.size:])[0]
    if zlib.crc32(body) != stored_crc:
        raise BitstreamError(f"{source}: checksum mismatch: the file is truncated or corrupted")
    reader = _Reader(body, source)
    reader.take(len(MAGIC), "magic")
    version, name_length = reader.take(2, "header")
    if version != FORMAT_VERSION:
        raise BitstreamError(f"{source}: format version {version}, "
                             f"this decoder reads version {FORMAT_VERSION}")
    model = reader.take(name_length, "header").decode("ascii", errors="replace")
    config_hash = reader.take(HASH_BYTES, "header")
    frame_count, width, height = _FIXED.unpack(reader.take(_FIXED.size, "header"))
    if expect_model is not None and model != expect_model:
        raise BitstreamError(f"{source}: made by model {model!r}, this decoder is {expect_model!r}")
    if expect_hash is not None and config_hash != expect_hash:
        raise BitstreamError(f"{source}: made with configuration {config_hash.hex()}, "
                             f"this decoder's is {expect_hash.hex()} "
                             "(other q_step, feature coding, intra codec, model or weights)")
    if frame_count < 1:
        raise BitstreamError(f"{source}: declares {frame_count} frames")
    key_length = _U32.unpack(reader.take(_U32.size, "key-frame length"))[0]
    key_frame = reader.take(key_length, "key-frame bitstream")
    payloads = []
    for index in range(frame_count):
        length = reader.varint(f"length of frame {index}")
        payloads.append(reader.take(length, f"feature payload of frame {index}"))
    if reader.pos != len(body):
        raise BitstreamError(f"{source}: {len(body) - reader.pos} unexpected bytes "
                             f"after frame {frame_count - 1}")
    return GfvcBitstream(model, config_hash, width, height, key_frame, payloads)
