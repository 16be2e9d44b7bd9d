"""MRDAC's keypoint coder: residuals of quantised keypoints, one byte each, arithmetic-coded with an
adaptive order-0 model that persists over the whole video (upstream ``KpEntropyCoder``).

Per inter frame (golden README-dac-family section 9): ``sr = round((predictor + 1) * q_step)`` and
``dr = round((kp + 1) * q_step)`` in float32 (ties to even), ``residual = sr - dr``; each residual
is one byte symbol, coded in row-major (K, 2) order, then the end symbol 256, with Nayuki's 32-bit
arithmetic coder and an order-0 PPM model (257 symbols; a symbol not seen yet escapes to a flat
table). The frequency tables carry on from frame to frame, across references, on both sides. The
decoded keypoints ``(sr - residual) / q_step - 1`` (float32) are the next frame's predictor.

Upstream casts the residual to int8, so a keypoint that moves by more than 127 steps (0.248 in
[-1, 1] coordinates) wraps around and decodes off by 0.5. Ours codes such a residual, and -128, as
the byte 0x80 followed by its 16-bit two's complement (two more symbols of the same model); every
residual in [-127, 127] is coded exactly as upstream codes it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from models.entropy import ArithmeticDecoder, ArithmeticEncoder, EntropyError, pack_bits

STATE_BITS = 32
SYMBOLS = 257
END = 256  # end of a frame's residuals, and the escape of the order-0 context
ESCAPE_BYTE = 0x80  # int8 -128: a residual outside [-127, 127] follows as int16
_FLAT = (1,) * SYMBOLS


def quantise(kp: torch.Tensor, q_step: float) -> torch.Tensor:
    """``round((kp + 1) * q_step)`` in float32."""
    return torch.round((kp.detach().float().cpu() + 1.0) * q_step)


def residuals(predictor: torch.Tensor, kp: torch.Tensor, q_step: float) -> list[int]:
    """The integer residuals ``sr - dr`` of ``kp`` against ``predictor``, row-major."""
    return [int(v) for v in (quantise(predictor, q_step) - quantise(kp, q_step)).flatten().tolist()]


def reconstruct(predictor: torch.Tensor, residual: Sequence[int], q_step: float) -> torch.Tensor:
    """The decoded keypoints ``(sr - residual) / q_step - 1`` (float32, the predictor's shape)."""
    sr = quantise(predictor, q_step)
    values = torch.tensor(list(residual), dtype=torch.float32).view(sr.shape)
    return (sr - values) / q_step - 1.0


def to_symbols(values: Sequence[int]) -> list[int]:
    """Residuals to byte symbols: int8 two's complement, or the escape and an int16."""
    symbols = []
    for value in values:
        if -127 <= value <= 127:
            symbols.append(value & 0xFF)
        elif -32768 <= value <= 32767:
            symbols += [ESCAPE_BYTE, (value >> 8) & 0xFF, value & 0xFF]
        else:
            raise ValueError(f"keypoint residual {value} does not fit 16 bits")
    return symbols


def from_symbols(symbols: Sequence[int]) -> list[int]:
    """Inverse of :func:`to_symbols`."""
    values, pos = [], 0
    while pos < len(symbols):
        symbol = symbols[pos]
        if symbol == ESCAPE_BYTE:
            if pos + 3 > len(symbols):
                raise EntropyError("keypoint payload ends inside an escaped residual")
            raw = (symbols[pos + 1] << 8) | symbols[pos + 2]
            values.append(raw - 0x10000 if raw & 0x8000 else raw)
            pos += 3
        else:
            values.append(symbol - 0x100 if symbol & 0x80 else symbol)
            pos += 1
    return values


class _Order0Model:
    """Nayuki's order-0 PPM context: counts of the symbols seen so far; the end symbol starts at 1."""

    def __init__(self) -> None:
        self.freqs = [0] * SYMBOLS
        self.freqs[END] = 1

    def write(self, encoder: ArithmeticEncoder, symbol: int) -> None:
        if symbol != END and self.freqs[symbol] > 0:
            encoder.write(self.freqs, symbol)
            return
        encoder.write(self.freqs, END)
        encoder.write(_FLAT, symbol)

    def read(self, decoder: ArithmeticDecoder) -> int:
        symbol = decoder.read(self.freqs)
        return symbol if symbol != END else decoder.read(_FLAT)


class KeypointEncoder:
    """Codes one frame's residuals after another; the model persists over the calls."""

    def __init__(self) -> None:
        self.model = _Order0Model()

    def encode(self, values: Sequence[int]) -> bytes:
        encoder = ArithmeticEncoder(STATE_BITS)
        for symbol in to_symbols(values):
            self.model.write(encoder, symbol)
            self.model.freqs[symbol] += 1
        self.model.write(encoder, END)
        return pack_bits(encoder.finish())


class KeypointDecoder:
    """The decoder of :class:`KeypointEncoder`'s payloads, in the same order."""

    def __init__(self) -> None:
        self.model = _Order0Model()

    def decode(self, payload: bytes, count: int) -> list[int]:
        """One frame's ``count`` residuals; a payload that holds another number is refused."""
        decoder = ArithmeticDecoder(payload, STATE_BITS)
        symbols: list[int] = []
        while True:
            symbol = self.model.read(decoder)
            if symbol == END:
                break
            symbols.append(symbol)
            self.model.freqs[symbol] += 1
            if len(symbols) > 3 * count:
                raise EntropyError(
                    f"keypoint payload of {len(payload)} bytes holds more than {count} residuals (corrupt)"
                )
        values = from_symbols(symbols)
        if len(values) != count:
            raise EntropyError(f"keypoint payload holds {len(values)} residuals, expected {count}")
        return values
