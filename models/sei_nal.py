"""SEI NAL units of a VVC bitstream: bit-level reading and writing, ``sei_message()`` framing,
emulation prevention, and the Annex-B byte stream (ITU-T H.266 7.3.2, 7.3.6, B.2).

One SEI NAL unit holds one or more ``sei_message()`` (payload type and size as 0xFF-extended bytes,
the payload, its alignment bits) and ``rbsp_trailing_bits``. VTM writes every generative face video
message in its own NAL unit (``EncGOP::xWriteSEISeparately``); we do the same and read either.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.entropy import exp_golomb

PREFIX_SEI_NUT = 23
SUFFIX_SEI_NUT = 24
VCL_TYPES = range(0, 12)  # nal_unit_type 0..11: coded slices
NAL_TYPE_NAMES = {
    14: "VPS",
    15: "SPS",
    16: "PPS",
    19: "picture header",
    20: "AUD",
    23: "prefix SEI",
    24: "suffix SEI",
}
START_CODE = b"\x00\x00\x01"


class SeiError(ValueError):
    """An SEI NAL unit or message that cannot be parsed; the message names the syntax element."""


class BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def flag(self, value: int) -> None:
        self.bits.append(1 if value else 0)

    def code(self, value: int, length: int) -> None:
        if not 0 <= value < (1 << length):
            raise ValueError(f"{value} does not fit in {length} bits")
        self.bits.extend((value >> shift) & 1 for shift in range(length - 1, -1, -1))

    def ue(self, value: int) -> None:
        self.bits.extend(exp_golomb(value))

    def align_zero(self) -> None:
        self.bits.extend([0] * (-len(self.bits) % 8))

    def string(self, text: str) -> None:
        """``st(v)``: the bytes, then a zero byte (byte-aligned, as VTM writes it)."""
        for byte in text.encode() + b"\x00":
            self.code(byte, 8)

    def to_bytes(self) -> bytes:
        bits = self.bits + [0] * (-len(self.bits) % 8)
        return bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))


class BitReader:
    """Reads syntax elements; with ``trace`` a list, appends ``(name, value)`` for each one read."""

    def __init__(self, data: bytes, what: str = "GFV SEI payload", trace: list | None = None) -> None:
        self.data, self.pos, self.limit, self.what = data, 0, 8 * len(data), what
        self.trace = trace

    def _bit(self, name: str) -> int:
        if self.pos >= self.limit:
            raise SeiError(f"{self.what} ends inside {name} (truncated, or a wrong payload size)")
        bit = (self.data[self.pos >> 3] >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return bit

    def _bits(self, length: int, name: str) -> int:
        value = 0
        for _ in range(length):
            value = (value << 1) | self._bit(name)
        return value

    def _traced(self, name: str, value: int | str) -> int | str:
        if self.trace is not None:
            self.trace.append((name, value))
        return value

    def flag(self, name: str) -> int:
        return self._traced(name, self._bit(name))

    def code(self, length: int, name: str) -> int:
        return self._traced(name, self._bits(length, name))

    def ue(self, name: str) -> int:
        zeros = 0
        while not self._bit(name):
            zeros += 1
            if zeros > 31:
                raise SeiError(f"{self.what}: {name} is an over-long ue(v) code (corrupted)")
        return self._traced(name, (1 << zeros) - 1 + self._bits(zeros, name))

    def byte_aligned(self) -> bool:
        return self.pos % 8 == 0

    def zero_bits_to_byte(self, name: str) -> None:
        while not self.byte_aligned():
            if self.flag(name):
                raise SeiError(f"{self.what}: {name} is not 0")

    def string(self, name: str) -> str:
        out = bytearray()
        while (byte := self._bits(8, name)) != 0:
            out.append(byte)
        return self._traced(name, out.decode(errors="replace"))

    def rest(self) -> bytes:
        """The remaining whole bytes (the reader must be byte-aligned)."""
        data = self.data[self.pos // 8 :]
        self.pos = self.limit
        return data

    def finish(self) -> None:
        """Only the payload alignment bits (``1`` then zeros) may remain."""
        left = self.limit - self.pos
        if left == 0:
            return
        if left >= 8 or self._bits(left, "the payload alignment bits") != 1 << (left - 1):
            raise SeiError(
                f"{self.what}: {left} bits left after the last syntax element that are not the "
                "payload alignment bits (wrong payload size, or syntax this reader does not know)"
            )


@dataclass(frozen=True)
class SeiMessage:
    payload_type: int
    payload: bytes  # payload_size bytes, alignment bits included


def sei_nal_unit(
    messages: list[tuple[int, BitWriter]], nal_type: int = SUFFIX_SEI_NUT, temporal_id: int = 0
) -> bytes:
    """An SEI NAL unit (no start code) holding ``(payload type, payload bits)`` messages."""
    rbsp = bytearray()
    for payload_type, payload in messages:
        bits = list(payload.bits)
        if len(bits) % 8:
            bits += [1] + [0] * (-(len(bits) + 1) % 8)  # payload_bit_equal_to_one, then zeros
        aligned = BitWriter()
        aligned.bits = bits
        body = aligned.to_bytes()
        rbsp += _ff_coded(payload_type) + _ff_coded(len(body)) + body
    rbsp += b"\x80"  # rbsp_trailing_bits
    header = bytes([0x00, (nal_type << 3) | (temporal_id + 1)])  # layer 0
    return header + emulation_prevented(bytes(rbsp))


def _ff_coded(value: int) -> bytes:
    return b"\xff" * (value // 255) + bytes([value % 255])


def emulation_prevented(rbsp: bytes) -> bytes:
    out, zeros = bytearray(), 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def rbsp_of(payload: bytes) -> bytes:
    out, zeros = bytearray(), 0
    for byte in payload:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def nal_type(nal: bytes) -> int:
    if len(nal) < 2:
        raise SeiError(f"a NAL unit of {len(nal)} bytes has no NAL unit header")
    if nal[0] & 0x80:
        raise SeiError("NAL unit header with forbidden_zero_bit set (not a VVC stream, or corrupted)")
    return nal[1] >> 3


def parse_sei_nal(nal: bytes) -> list[SeiMessage]:
    """The ``sei_message()`` list of a prefix or suffix SEI NAL unit."""
    if nal_type(nal) not in (PREFIX_SEI_NUT, SUFFIX_SEI_NUT):
        raise SeiError(f"NAL unit type {nal_type(nal)} is not an SEI NAL unit")
    rbsp = rbsp_of(nal[2:])
    pos, messages = 0, []
    while True:
        if pos >= len(rbsp):
            raise SeiError("SEI NAL unit without rbsp_trailing_bits (truncated)")
        if rbsp[pos:] == b"\x80":
            return messages
        values = []
        for what in ("payload type", "payload size"):
            value = 0
            while pos < len(rbsp) and rbsp[pos] == 0xFF:
                value, pos = value + 255, pos + 1
            if pos >= len(rbsp):
                raise SeiError(f"SEI NAL unit ends inside an SEI message's {what}")
            values.append(value + rbsp[pos])
            pos += 1
        payload_type, size = values
        if pos + size > len(rbsp) - 1:
            raise SeiError(
                f"SEI message (payload type {payload_type}) declares {size} bytes, the NAL unit "
                f"holds {len(rbsp) - 1 - pos} before its trailing bits (truncated or corrupted)"
            )
        messages.append(SeiMessage(payload_type, rbsp[pos : pos + size]))
        pos += size


def split_annexb(data: bytes, source: str) -> list[bytes]:
    """The NAL units (without start codes) of an Annex-B byte stream."""
    if not data.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")):
        raise SeiError(f"{source}: not an Annex-B VVC byte stream (no start code at its beginning)")
    units, pos = [], data.index(START_CODE) + 3
    while True:
        following = data.find(START_CODE, pos)
        end = len(data) if following < 0 else following
        unit = data[pos:end].rstrip(b"\x00") if following >= 0 else data[pos:end]
        if unit:
            units.append(unit)
        if following < 0:
            return units
        pos = following + 3


def annexb(units: list[bytes]) -> bytes:
    """Units with start codes: 4 bytes before parameter sets and AUDs, 3 before the others (as VTM)."""
    return b"".join(
        (b"\x00" if nal_type(unit) in (14, 15, 16, 20) else b"") + START_CODE + unit for unit in units
    )
