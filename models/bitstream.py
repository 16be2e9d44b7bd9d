"""The GFVC bitstream file: one per (sequence, rate point), everything the decoder reads.

Layout (integers big-endian; ``v`` = unsigned LEB128 varint)::

    magic "GFVC"  | format version u8 | model name (u8 length + ASCII)
    configuration hash (16 bytes)    | frame count u32 | width u16 | height u16
    key frames: count v | per key frame: frame index v | length u32 | intra bitstream
    per frame (0 .. N-1): payload length v | feature payload
                          (a key frame's is empty in ``ae`` mode, its base-picture SEI in ``sei`` mode)
    layers: count u8 | per layer: name (u8 length + ASCII) | length u32 | bytes
                          (a model's sequence-level bitstream, e.g. HDAC's base layer)
    frame layers: count u8 | per layer: name (u8 length + ASCII) | per frame: length v | bytes
                          (a model's per-frame data, e.g. RDAC's residuals; empty = none)
    CRC-32 of every byte before it (u32)

Frame 0 is always a key frame; a key frame refreshes the reference (a new GOP starts there).
A file that is cut, altered, or written for another model or configuration is refused with a
:class:`BitstreamError` that says which, before any of it is decoded.

Rate accounting (:func:`bit_parts`): ``key_frame`` is every intra bitstream, ``features`` the
feature payloads exactly as the GFVC common software counts them (one file per frame, bits = 8 x
bytes), one part per layer and frame layer under its name, and ``header`` all container overhead
(fixed header, key-frame positions, length fields, checksum). The parts add up to the file size in bits.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

MAGIC = b"GFVC"
FORMAT_VERSION = 2
HASH_BYTES = 16
_FIXED = struct.Struct(">IHH")  # frame count, width, height
_U32 = struct.Struct(">I")


class BitstreamError(ValueError):
    """A GFVC bitstream file that must not be decoded; the message says why."""


@dataclass
class GfvcBitstream:
    model: str
    setup_hash: bytes
    width: int
    height: int
    key_frames: dict[int, bytes]  # frame index -> intra bitstream; frame 0 is always one
    payloads: list[bytes] = field(default_factory=list)  # one per frame, key frames included
    layers: dict[str, bytes] = field(default_factory=dict)  # sequence-level model bitstreams
    frame_layers: dict[str, list[bytes]] = field(default_factory=dict)  # per-frame model data

    @property
    def frame_count(self) -> int:
        return len(self.payloads)

    @property
    def key_frame_positions(self) -> list[int]:
        return sorted(self.key_frames)

    def gops(self) -> list[tuple[int, int]]:
        """``(start, end)`` of every group of pictures: a key frame and the frames up to the next."""
        starts = self.key_frame_positions
        return list(zip(starts, starts[1:] + [self.frame_count], strict=True))


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _name(name: str) -> bytes:
    raw = name.encode("ascii")
    if not 0 < len(raw) < 256:
        raise ValueError(f"name {name!r} must be 1 to 255 ASCII characters")
    return bytes([len(raw)]) + raw


def _check(stream: GfvcBitstream) -> None:
    if len(stream.setup_hash) != HASH_BYTES:
        raise ValueError(f"configuration hash must be {HASH_BYTES} bytes, got {len(stream.setup_hash)}")
    if 0 not in stream.key_frames or not all(0 <= i < stream.frame_count for i in stream.key_frames):
        raise ValueError(
            f"key frames at {stream.key_frame_positions}: frame 0 must be one, and every "
            f"position inside the {stream.frame_count} frames"
        )
    for name, payloads in stream.frame_layers.items():
        if len(payloads) != stream.frame_count:
            raise ValueError(
                f"frame layer {name!r} has {len(payloads)} entries for {stream.frame_count} frames"
            )


def pack(stream: GfvcBitstream) -> bytes:
    """Serialise ``stream`` (see the module docstring for the layout)."""
    _check(stream)
    parts = [
        MAGIC,
        bytes([FORMAT_VERSION]),
        _name(stream.model),
        stream.setup_hash,
        _FIXED.pack(stream.frame_count, stream.width, stream.height),
        _varint(len(stream.key_frames)),
    ]
    for index in stream.key_frame_positions:
        parts += [_varint(index), _U32.pack(len(stream.key_frames[index])), stream.key_frames[index]]
    for payload in stream.payloads:
        parts += [_varint(len(payload)), payload]
    parts.append(bytes([len(stream.layers)]))
    for name, data in stream.layers.items():
        parts += [_name(name), _U32.pack(len(data)), data]
    parts.append(bytes([len(stream.frame_layers)]))
    for name, payloads in stream.frame_layers.items():
        parts.append(_name(name))
        for payload in payloads:
            parts += [_varint(len(payload)), payload]
    body = b"".join(parts)
    return body + _U32.pack(zlib.crc32(body))


def bit_parts(stream: GfvcBitstream) -> dict[str, int]:
    """Bits per part (header, key_frame, features, then each layer); they add up to the file's bits."""
    parts = {
        "key_frame": 8 * sum(map(len, stream.key_frames.values())),
        "features": 8 * sum(map(len, stream.payloads)),
    }
    parts.update({name: 8 * len(data) for name, data in stream.layers.items()})
    parts.update({name: 8 * sum(map(len, payloads)) for name, payloads in stream.frame_layers.items()})
    return {"header": 8 * len(pack(stream)) - sum(parts.values()), **parts}


class _Reader:
    def __init__(self, data: bytes, source: str) -> None:
        self.data, self.pos, self.source = data, 0, source

    def take(self, count: int, what: str) -> bytes:
        if self.pos + count > len(self.data):
            raise BitstreamError(f"{self.source}: truncated (ends inside the {what})")
        chunk = self.data[self.pos : self.pos + count]
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

    def name(self, what: str) -> str:
        length = self.take(1, what)[0]
        return self.take(length, what).decode("ascii", errors="replace")


def header_model(data: bytes) -> str | None:
    """The model name in the header of an intact GFVC bitstream (None where there is none: then
    :func:`unpack` says what is wrong)."""
    start = len(MAGIC) + 1
    if (
        data[: len(MAGIC)] != MAGIC
        or len(data) < start + 1 + _U32.size
        or zlib.crc32(data[: -_U32.size]) != _U32.unpack(data[-_U32.size :])[0]
        or len(data) < start + 1 + data[start]
    ):
        return None
    return data[start + 1 : start + 1 + data[start]].decode("ascii", errors="replace")


def unpack(
    data: bytes, source: str = "bitstream", expect_model: str | None = None, expect_hash: bytes | None = None
) -> GfvcBitstream:
    """Parse and verify a GFVC bitstream; ``source`` names it in error messages.

    Refused: wrong magic or version, a cut or altered file (CRC-32 and lengths), and, when given,
    a model name or configuration hash other than the decoder's.
    """
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise BitstreamError(f"{source}: not a GFVC bitstream (expected magic {MAGIC!r})")
    if len(data) < len(MAGIC) + 2 + _U32.size:
        raise BitstreamError(f"{source}: truncated ({len(data)} bytes)")
    body, stored_crc = data[: -_U32.size], _U32.unpack(data[-_U32.size :])[0]
    if zlib.crc32(body) != stored_crc:
        raise BitstreamError(f"{source}: checksum mismatch: the file is truncated or corrupted")
    reader = _Reader(body, source)
    reader.take(len(MAGIC), "magic")
    version = reader.take(1, "header")[0]
    if version != FORMAT_VERSION:
        raise BitstreamError(
            f"{source}: format version {version}, this decoder reads version {FORMAT_VERSION}"
        )
    model = reader.name("header")
    setup_hash = reader.take(HASH_BYTES, "header")
    frame_count, width, height = _FIXED.unpack(reader.take(_FIXED.size, "header"))
    if expect_model is not None and model != expect_model:
        raise BitstreamError(f"{source}: made by model {model!r}, this decoder is {expect_model!r}")
    if expect_hash is not None and setup_hash != expect_hash:
        raise BitstreamError(
            f"{source}: made with configuration {setup_hash.hex()}, "
            f"this decoder's is {expect_hash.hex()} "
            "(other q_step, feature coding, intra codec, model or weights)"
        )
    if frame_count < 1:
        raise BitstreamError(f"{source}: declares {frame_count} frames")
    key_frames: dict[int, bytes] = {}
    for _ in range(reader.varint("key-frame count")):
        index = reader.varint("key-frame position")
        length = _U32.unpack(reader.take(_U32.size, "key-frame length"))[0]
        if index in key_frames or index >= frame_count:
            raise BitstreamError(f"{source}: key frame at {index} repeated or beyond frame {frame_count - 1}")
        key_frames[index] = reader.take(length, f"key frame {index}")
    if 0 not in key_frames:
        raise BitstreamError(f"{source}: frame 0 is not a key frame")
    payloads = [
        reader.take(reader.varint(f"length of frame {i}"), f"feature payload of frame {i}")
        for i in range(frame_count)
    ]
    layers = {}
    for _ in range(reader.take(1, "layer count")[0]):
        name = reader.name("layer name")
        layers[name] = reader.take(_U32.unpack(reader.take(_U32.size, f"{name} length"))[0], f"{name} layer")
    frame_layers = {}
    for _ in range(reader.take(1, "frame-layer count")[0]):
        name = reader.name("frame-layer name")
        frame_layers[name] = [
            reader.take(reader.varint(f"{name} length of frame {i}"), f"{name} of frame {i}")
            for i in range(frame_count)
        ]
    if reader.pos != len(body):
        raise BitstreamError(f"{source}: {len(body) - reader.pos} unexpected bytes at the end")
    return GfvcBitstream(model, setup_hash, width, height, key_frames, payloads, layers, frame_layers)
