"""The GFVC feature entropy coder, bit-exact with the GFVC common software (``AE`` mode).

The common software codes each inter frame's quantised feature residuals with
``final_encoder_expgolomb``: sign mapping, order-0 exp-Golomb binarisation behind a marker bit,
then an adaptive order-0 PPM model over the symbols {0, 1, escape/EOF} driving Nayuki's binary
arithmetic coder with a 256-bit state. We reimplement it (no library provides this exact
bitstream) so that our feature rates equal theirs; ``../shared/golden/entropy/cases.json`` holds
the reference bytes and the algorithm in words (golden README, section 6).

Python integers carry the 256-bit state; each coded bit costs a few big-integer operations and the
bit strings are lists, so coding is linear in the number of bits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

STATE_BITS = 256  # the common software's precision; a 32/64-bit state gives different bytes

ESCAPE = 2  # escape and end-of-stream share one symbol, as in the common software
_FLAT = (1, 1, 1)  # order -1 table: every symbol equally likely


class EntropyError(ValueError):
    """A feature payload that cannot be decoded (malformed or truncated)."""


def quantise(residuals: Iterable[float], q_step: float) -> list[int]:
    """``round(residual × q_step)`` with Python's ``round`` (halves to even), as the common software."""
    return [round(float(r) * q_step) for r in residuals]


def sign_map(value: int) -> int:
    """0, 1, -1, 2, -2, … -> 0, 1, 2, 3, 4, …"""
    return -2 * value if value <= 0 else 2 * value - 1


def sign_unmap(code: int) -> int:
    return (code + 1) // 2 if code % 2 else -(code // 2)


def exp_golomb(n: int) -> list[int]:
    """Order-0 exp-Golomb code of ``n >= 0`` (the ``ue(v)`` of the video standards)."""
    code = n + 1
    length = code.bit_length()
    return [0] * (length - 1) + [(code >> shift) & 1 for shift in range(length - 1, -1, -1)]


def binarise(values: Sequence[int]) -> list[int]:
    """Marker bit ``1`` then the order-0 exp-Golomb code of each sign-mapped value."""
    bits = [1]
    for value in values:
        bits.extend(exp_golomb(sign_map(int(value))))
    return bits


def debinarise(bits: Sequence[int]) -> list[int]:
    """Inverse of :func:`binarise`; refuses a string without the marker or with a cut code."""
    if not bits or bits[0] != 1:
        raise EntropyError("feature payload does not start with the marker bit")
    values, pos, end = [], 1, len(bits)
    while pos < end:
        zeros = 0
        while pos < end and bits[pos] == 0:
            zeros += 1
            pos += 1
        if pos + zeros + 1 > end:
            raise EntropyError("feature payload ends inside an exp-Golomb code")
        code = 0
        for bit in bits[pos : pos + zeros + 1]:
            code = (code << 1) | bit
        pos += zeros + 1
        values.append(sign_unmap(code - 1))
    return values


def _interval(freqs: Sequence[int], symbol: int) -> tuple[int, int, int]:
    low = sum(freqs[:symbol])
    return low, low + freqs[symbol], sum(freqs)


class ArithmeticEncoder:
    """Nayuki's arithmetic encoder with a ``state_bits``-bit state (the common software's 256, MRDAC's 32)."""

    def __init__(self, state_bits: int = STATE_BITS) -> None:
        self.state_bits = state_bits
        self.mask = (1 << state_bits) - 1
        self.half, self.quarter = 1 << (state_bits - 1), 1 << (state_bits - 2)
        self.low, self.high = 0, self.mask
        self.pending = 0
        self.bits: list[int] = []

    def write(self, freqs: Sequence[int], symbol: int) -> None:
        sym_low, sym_high, total = _interval(freqs, symbol)
        mask, half = self.mask, self.half
        span = self.high - self.low + 1
        low = self.low
        self.low = low + sym_low * span // total
        self.high = low + sym_high * span // total - 1
        while not (self.low ^ self.high) & half:
            bit = self.low >> (self.state_bits - 1)
            self.bits.append(bit)
            self.bits.extend([bit ^ 1] * self.pending)
            self.pending = 0
            self.low = (self.low << 1) & mask
            self.high = ((self.high << 1) & mask) | 1
        while self.low & ~self.high & self.quarter:
            self.pending += 1
            self.low = (self.low << 1) ^ half
            self.high = ((self.high ^ half) << 1) | half | 1

    def finish(self) -> list[int]:
        """The coded bits: a final ``1``; pending underflow bits are dropped (as the reference does)."""
        self.bits.append(1)
        return self.bits


class ArithmeticDecoder:
    """Nayuki's decoder; bits past the end of the payload read as 0."""

    def __init__(self, data: bytes, state_bits: int = STATE_BITS) -> None:
        self.data = data
        self.limit = len(data) * 8
        self.pos = 0
        self.mask = (1 << state_bits) - 1
        self.half, self.quarter = 1 << (state_bits - 1), 1 << (state_bits - 2)
        self.low, self.high = 0, self.mask
        self.code = 0
        for _ in range(state_bits):
            self.code = (self.code << 1) | self._bit()

    def _bit(self) -> int:
        pos = self.pos
        self.pos += 1
        if pos >= self.limit:
            return 0
        return (self.data[pos >> 3] >> (7 - (pos & 7))) & 1

    def read(self, freqs: Sequence[int]) -> int:
        mask, half = self.mask, self.half
        total = sum(freqs)
        span = self.high - self.low + 1
        value = ((self.code - self.low + 1) * total - 1) // span
        symbol, cumulative = 0, 0
        while cumulative + freqs[symbol] <= value:
            cumulative += freqs[symbol]
            symbol += 1
            if symbol == len(freqs):
                raise EntropyError("arithmetic decoder state left the coding interval")
        sym_low, sym_high = cumulative, cumulative + freqs[symbol]
        low = self.low
        self.low = low + sym_low * span // total
        self.high = low + sym_high * span // total - 1
        while not (self.low ^ self.high) & half:
            self.code = ((self.code << 1) & mask) | self._bit()
            self.low = (self.low << 1) & mask
            self.high = ((self.high << 1) & mask) | 1
        while self.low & ~self.high & self.quarter:
            self.code = (self.code & half) | ((self.code << 1) & (mask >> 1)) | self._bit()
            self.low = (self.low << 1) ^ half
            self.high = ((self.high ^ half) << 1) | half | 1
        return symbol


def pack_bits(bits: Sequence[int]) -> bytes:
    """MSB-first packing; the last byte is padded with 0 bits."""
    padded = list(bits) + [0] * (-len(bits) % 8)
    return bytes(int("".join(map(str, padded[i : i + 8])), 2) for i in range(0, len(padded), 8))


def encode_bits(bits: Sequence[int]) -> tuple[bytes, int]:
    """Code a bit string with the adaptive order-0 PPM model; returns (bytes, bits before padding)."""
    encoder = ArithmeticEncoder()
    freqs = [0, 0, 1]
    for bit in bits:
        if freqs[bit]:
            encoder.write(freqs, bit)
        else:
            encoder.write(freqs, ESCAPE)
            encoder.write(_FLAT, bit)
        freqs[bit] += 1
    encoder.write(freqs, ESCAPE)
    encoder.write(_FLAT, ESCAPE)
    coded = encoder.finish()
    return pack_bits(coded), len(coded)


def decode_bits(data: bytes, max_bits: int | None = None) -> list[int]:
    """Inverse of :func:`encode_bits`. ``max_bits`` bounds the output (a corrupt payload never ends)."""
    limit = max_bits if max_bits is not None else 64 * len(data) + 64
    decoder = ArithmeticDecoder(data)
    freqs = [0, 0, 1]
    bits: list[int] = []
    while True:
        symbol = decoder.read(freqs)
        if symbol == ESCAPE:
            symbol = decoder.read(_FLAT)
            if symbol == ESCAPE:
                return bits
        bits.append(symbol)
        freqs[symbol] += 1
        if len(bits) > limit:
            raise EntropyError(
                f"feature payload of {len(data)} bytes decodes to more than {limit} bits "
                "without an end marker (corrupt)"
            )


def encode_values(values: Sequence[int]) -> bytes:
    """A frame's quantised features -> payload bytes, identical to ``final_encoder_expgolomb``'s file."""
    return encode_bits(binarise(values))[0]


def decode_values(data: bytes, count: int | None = None) -> list[int]:
    """Payload bytes -> values; ``count``, when given, is checked (a mismatch means corruption)."""
    max_bits = None if count is None else 1 + count * 2 * 64
    values = debinarise(decode_bits(data, max_bits))
    if count is not None and len(values) != count:
        raise EntropyError(f"feature payload holds {len(values)} values, expected {count}")
    return values
