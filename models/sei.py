"""The ``sei`` feature-coding mode: features written as the generative face video (GFV) SEI message.

The GFV SEI message (JVET-AJ0207 and follow-ups, in the VSEI working draft; payload type 223 in
the JVET reference software) carries a face picture's parameters as keypoint coordinates with a
precision factor and as matrices with an element precision, each optionally predicted from the
base picture or the previous picture, with ``ue(v)`` Exp-Golomb and fixed-length syntax elements.

What we implement, following the syntax of the public reference software's GFV SEI writer and
parser (HM/VTM branch, macro ``JVET_AJ0207_GFV``):

* ``gfv_id``, ``gfv_cnt``, ``gfv_base_picture_flag``; the base picture (the key frame, ``gfv_cnt``
  0) carries its parameters unpredicted and sets the prediction state; every other picture
  (``gfv_cnt`` = frame index) predicts coordinates and matrices from the previous picture.
  ``gfv_nn_present_flag``, chroma-key info, ``gfv_drive_picture_fusion_flag`` and
  ``gfv_low_confidence_face_parameter_flag`` are written as 0 (no network is carried in-band).
* Coordinates: ``gfv_coordinate_precision_factor_minus1``, ``gfv_num_kps_minus1``,
  ``gfv_coordinate_z_present_flag`` (+ ``gfv_coordinate_z_max_value_minus1``) in the base picture;
  per keypoint ``ue(v)`` magnitude and a sign flag when non-zero, quantised as the reference
  writer does: ``int(value × 2^p + 0.5)`` truncated toward zero.
* Matrices: ``gfv_matrix_element_precision_factor_minus1``, ``gfv_num_matrix_types_minus1``, per
  type the 6-bit ``gfv_matrix_type_idx`` and its size syntax; unpredicted elements as ``ue(v)``
  integer part, ``u(m)`` fraction and sign; predicted deltas as ``ue(v)`` integer part, ``ue(v)``
  fraction and sign. Sizes follow the parser: types 0/1 one (d × d) matrix per keypoint, type 4 a
  (d × d) matrix, types 5/6 a (d × 1) vector (d = 3 with 3-D coordinates, else 2), types 2/3/≥7
  explicit width and height.
* Each message is wrapped as the video bitstream carries it: ``sei_message()`` (payload type and
  size bytes, payload alignment bits) in a prefix SEI NAL unit (2-byte VVC NAL header,
  ``rbsp_trailing_bits``, emulation prevention). The bits we count are the whole NAL unit.

Guessed (the public documents we could read do not settle them): which ``gfv_matrix_type_idx``
each model's parameters use (our mapping lives in the codec config: FOMM = 2-D coordinates +
type 0 per-keypoint 2×2 matrices, CFTE = one 4×4 type-2 matrix, FV2V = 15 3-D coordinates for the
expression + type-4 rotation + type-5 translation), ``gfv_cnt`` = frame index, z max value 1,
and the precision factors (config; we use log2 of the ``AE`` mode's q_step so both quantise alike).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.entropy import exp_golomb

PAYLOAD_TYPE = 223  # generative face video, as in the JVET reference software
PREFIX_SEI_NUT = 23  # VVC nal_unit_type of a prefix SEI NAL unit
_NAL_HEADER = bytes([0x00, (PREFIX_SEI_NUT << 3) | 1])  # layer 0, temporal id plus 1 = 1


class SeiError(ValueError):
    """A GFV SEI NAL unit that cannot be parsed or does not fit the configured layout."""


@dataclass(frozen=True)
class MatrixLayout:
    type_idx: int
    offset: int  # first feature index; elements follow row-major, matrix after matrix
    count: int
    height: int
    width: int

    @property
    def size(self) -> int:
        return self.count * self.height * self.width


@dataclass(frozen=True)
class SeiLayout:
    """Where the SEI's coordinates and matrices sit in a model's flat feature vector."""

    coordinate_precision: int
    matrix_precision: int
    num_kps: int = 0  # 0: no coordinates
    dims: int = 2  # 2 or 3 (z present)
    coordinate_offset: int = 0
    matrices: tuple[MatrixLayout, ...] = ()

    @classmethod
    def from_config(cls, config: Mapping[str, Any], feature_size: int) -> SeiLayout:
        """Build from the codec config's ``sei`` section and check it covers every feature once."""
        coordinates = config.get("coordinates") or {}
        num_kps, dims = int(coordinates.get("num", 0)), int(coordinates.get("dims", 2))
        if dims not in (2, 3):
            raise ValueError(f"sei.coordinates.dims must be 2 or 3, got {dims}")
        matrices = []
        for entry in config.get("matrices") or []:
            type_idx = int(entry["type_idx"])
            space = dims if num_kps else (3 if entry.get("space_3d") else 2)
            if type_idx in (0, 1):
                if not num_kps:
                    raise ValueError(f"sei matrix type {type_idx} needs coordinates "
                                     "(one matrix per keypoint)")
                shape = (num_kps, dims, dims)
            elif type_idx == 4:
                shape = (1, space, space)
            elif type_idx in (5, 6):
                shape = (1, space, 1)
            else:
                count = int(entry.get("count", 1)) if type_idx >= 7 else 1
                shape = (count, int(entry["height"]), int(entry["width"]))
            if not 0 <= type_idx <= 63:
                raise ValueError(f"sei matrix type_idx {type_idx} is outside 0..63")
            matrices.append(MatrixLayout(type_idx, int(entry["offset"]), *shape))
        layout = cls(int(config["coordinate_precision"]), int(config["matrix_precision"]), num_kps, dims,
                     int(coordinates.get("offset", 0)), tuple(matrices))
        covered = sorted(layout._index_lists(), key=lambda indices: indices[0] if indices else 0)
        flat = [i for indices in covered for i in indices]
        if sorted(flat) != list(range(feature_size)):
            raise ValueError(f"sei layout covers feature indices {sorted(flat)[:5]}… ({len(flat)} values); "
                             f"the model has {feature_size} features, each must be covered once")
        for precision in (layout.coordinate_precision, layout.matrix_precision):
            if not 1 <= precision <= 32:
                raise ValueError(f"sei precision factor {precision} is outside 1..32")
        return layout

    def _index_lists(self) -> list[list[int]]:
        lists = [list(range(self.coordinate_offset, self.coordinate_offset + self.num_kps * self.dims))]
        lists += [list(range(m.offset, m.offset + m.size)) for m in self.matrices]
        return [indices for indices in lists if indices]


class _BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def flag(self, value: int) -> None:
        self.bits.append(1 if value else 0)

    def code(self, value: int, length: int) -> None:
        self.bits.extend((value >> shift) & 1 for shift in range(length - 1, -1, -1))

    def ue(self, value: int) -> None:
        self.bits.extend(exp_golomb(value))

    def to_bytes(self) -> bytes:
        bits = self.bits + [0] * (-len(self.bits) % 8)
        return bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8))


class _BitReader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.limit = data, 0, 8 * len(data)

    def flag(self) -> int:
        if self.pos >= self.limit:
            raise SeiError("GFV SEI payload ends inside a syntax element")
        bit = (self.data[self.pos >> 3] >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return bit

    def code(self, length: int) -> int:
        value = 0
        for _ in range(length):
            value = (value << 1) | self.flag()
        return value

    def ue(self) -> int:
        zeros = 0
        while not self.flag():
            zeros += 1
            if zeros > 32:
                raise SeiError("GFV SEI payload holds an over-long ue(v) code")
        return (1 << zeros) - 1 + self.code(zeros)


def _signed(magnitude: int, negative: int) -> int:
    return -magnitude if negative else magnitude


def _write_signed(writer: _BitWriter, value: int) -> None:
    writer.ue(abs(value))
    if value:
        writer.flag(value < 0)


def _read_signed(reader: _BitReader) -> int:
    magnitude = reader.ue()
    return _signed(magnitude, reader.flag()) if magnitude else 0


def _coordinate_value(q: int, precision: int, prediction: float) -> float:
    """Reconstruction shared by writer and parser, so both sides hold the same doubles."""
    return q / (1 << precision) + prediction


def _matrix_value(integer: int, fraction: int, negative: int, precision: int, prediction: float) -> float:
    magnitude = integer + fraction / (1 << precision)
    return (-magnitude if negative else magnitude) + prediction


class GfvSeiWriter:
    """Writes one GFV SEI NAL unit per picture and keeps the reconstruction it implies."""

    def __init__(self, layout: SeiLayout) -> None:
        self.layout = layout
        self.previous: np.ndarray | None = None

    def write(self, features: Sequence[float], count: int) -> tuple[bytes, np.ndarray]:
        """Code ``features`` of picture ``count`` (0 = base picture); returns (NAL unit, reconstruction)."""
        layout = self.layout
        values = np.asarray(features, np.float64)
        base = count == 0
        if not base and self.previous is None:
            raise ValueError("the base picture (count 0) must be written first")
        predicted = not base
        rec = np.empty_like(values)
        out = _BitWriter()
        out.ue(0)  # gfv_id
        out.ue(count)  # gfv_cnt
        if base:
            out.flag(1)  # gfv_base_picture_flag
            out.flag(0)  # gfv_nn_present_flag
            out.flag(0)  # gfv_chroma_key_info_present_flag
        else:
            out.flag(0)  # gfv_drive_picture_fusion_flag
        out.flag(0)  # gfv_low_confidence_face_parameter_flag
        out.flag(layout.num_kps > 0)  # gfv_coordinate_present_flag
        if layout.num_kps:
            out.flag(predicted)  # gfv_kps_pred_flag
            if base:
                out.ue(layout.coordinate_precision - 1)
                out.ue(layout.num_kps - 1)
                out.flag(layout.dims == 3)  # gfv_coordinate_z_present_flag
                if layout.dims == 3:
                    out.ue(0)  # gfv_coordinate_z_max_value_minus1
            scale = 1 << layout.coordinate_precision
            for i in range(layout.coordinate_offset, layout.coordinate_offset + layout.num_kps * layout.dims):
                prediction = self.previous[i] if predicted else 0.0
                q = int((values[i] - prediction) * scale + 0.5)  # the reference writer's rounding
                _write_signed(out, q)
                rec[i] = _coordinate_value(q, layout.coordinate_precision, prediction)
        out.flag(bool(layout.matrices))  # gfv_matrix_present_flag
        if layout.matrices:
            if not base:
                out.flag(1)  # gfv_matrix_pred_flag
            else:
                out.ue(layout.matrix_precision - 1)
                out.ue(len(layout.matrices) - 1)
                for matrix in layout.matrices:
                    self._write_matrix_size(out, matrix)
            self._write_elements(out, values, rec, predicted)
        self.previous = rec
        return _nal_unit(_sei_message(out)), rec

    def _write_matrix_size(self, out: _BitWriter, matrix: MatrixLayout) -> None:
        out.code(matrix.type_idx, 6)
        if matrix.type_idx in (0, 1):
            out.flag(1)  # gfv_num_matrices_equal_to_num_kps_flag
        elif matrix.type_idx in (2, 3) or matrix.type_idx >= 7:
            if matrix.type_idx >= 7:
                out.ue(matrix.count - 1)
            out.ue(matrix.width - 1)
            out.ue(matrix.height - 1)
        elif not self.layout.num_kps:
            out.flag(matrix.height == 3)  # gfv_matrix_3d_space_flag (types 4 to 6 without coordinates)

    def _write_elements(self, out: _BitWriter, values: np.ndarray, rec: np.ndarray, predicted: bool) -> None:
        precision = self.layout.matrix_precision
        scale = 1 << precision
        for matrix in self.layout.matrices:
            for i in range(matrix.offset, matrix.offset + matrix.size):
                prediction = self.previous[i] if predicted else 0.0
                delta = values[i] - prediction
                magnitude = abs(delta)
                integer = int(magnitude)
                fraction = int((magnitude - integer) * scale + 0.5)
                out.ue(integer)
                if predicted:
                    out.ue(fraction)
                else:
                    fraction = min(fraction, scale - 1)  # the reference writer clips, it does not carry
                    out.code(fraction, precision)
                negative = int(delta < 0)
                if integer or fraction:
                    out.flag(negative)
                else:
                    negative = 0
                rec[i] = _matrix_value(integer, fraction, negative, precision, prediction)


class GfvSeiParser:
    """Parses the NAL units of :class:`GfvSeiWriter` back into feature vectors."""

    def __init__(self, layout: SeiLayout, feature_size: int) -> None:
        self.layout = layout
        self.feature_size = feature_size
        self.previous: np.ndarray | None = None

    def read(self, nal_unit: bytes, count: int) -> np.ndarray:
        """Features of picture ``count`` from its NAL unit; checks the syntax against the layout."""
        reader = _BitReader(_sei_payload(nal_unit))
        layout = self.layout
        if reader.ue() != 0:
            raise SeiError("GFV SEI gfv_id is not 0")
        if reader.ue() != count:
            raise SeiError(f"GFV SEI gfv_cnt does not match picture {count}")
        base = count == 0 and reader.flag() == 1
        if count == 0 and not base:
            raise SeiError("the first GFV SEI message is not a base picture")
        if base:
            if reader.flag() or reader.flag():
                raise SeiError("GFV SEI with an in-band network or chroma key is not supported")
        elif self.previous is None:
            raise SeiError("GFV SEI predicted picture before any base picture")
        else:
            reader.flag()  # gfv_drive_picture_fusion_flag (no effect on the features)
        reader.flag()  # gfv_low_confidence_face_parameter_flag
        rec = np.empty(self.feature_size, np.float64)
        if reader.flag() != (layout.num_kps > 0):
            raise SeiError("GFV SEI coordinate_present_flag does not match the model's layout")
        if layout.num_kps:
            predicted = reader.flag()
            if base or not predicted:
                found = (reader.ue() + 1, reader.ue() + 1, 3 if reader.flag() else 2)
                if found[2] == 3:
                    reader.ue()  # gfv_coordinate_z_max_value_minus1
                if found != (layout.coordinate_precision, layout.num_kps, layout.dims):
                    raise SeiError(f"GFV SEI coordinates (precision, kps, dims) {found} do not match the "
                                   f"layout {(layout.coordinate_precision, layout.num_kps, layout.dims)}")
            if predicted and base:
                raise SeiError("GFV SEI base picture with intra-picture keypoint prediction is not supported")
            for i in range(layout.coordinate_offset, layout.coordinate_offset + layout.num_kps * layout.dims):
                prediction = self.previous[i] if predicted else 0.0
                rec[i] = _coordinate_value(_read_signed(reader), layout.coordinate_precision, prediction)
        if reader.flag() != bool(layout.matrices):
            raise SeiError("GFV SEI matrix_present_flag does not match the model's layout")
        if layout.matrices:
            predicted = 0 if base else reader.flag()
            if not predicted:
                self._check_matrix_sizes(reader)
            elif self.previous is None:
                raise SeiError("GFV SEI predicted matrices before any base picture")
            precision = layout.matrix_precision
            for matrix in layout.matrices:
                for i in range(matrix.offset, matrix.offset + matrix.size):
                    integer = reader.ue()
                    fraction = reader.ue() if predicted else reader.code(precision)
                    negative = reader.flag() if integer or fraction else 0
                    prediction = self.previous[i] if predicted else 0.0
                    rec[i] = _matrix_value(integer, fraction, negative, precision, prediction)
        if reader.limit - reader.pos >= 8:
            raise SeiError("GFV SEI payload has unparsed data")
        self.previous = rec
        return rec

    def _check_matrix_sizes(self, reader: _BitReader) -> None:
        layout = self.layout
        precision, types = reader.ue() + 1, reader.ue() + 1
        if (precision, types) != (layout.matrix_precision, len(layout.matrices)):
            raise SeiError(f"GFV SEI matrix precision/types ({precision}, {types}) do not match the layout "
                           f"({layout.matrix_precision}, {len(layout.matrices)})")
        for matrix in layout.matrices:
            type_idx = reader.code(6)
            if type_idx != matrix.type_idx:
                raise SeiError(f"GFV SEI matrix type {type_idx}, the layout expects {matrix.type_idx}")
            if type_idx in (0, 1):
                if not reader.flag():
                    raise SeiError("GFV SEI matrices per keypoint with an explicit count are not supported")
            elif type_idx in (2, 3) or type_idx >= 7:
                count = reader.ue() + 1 if type_idx >= 7 else 1
                width, height = reader.ue() + 1, reader.ue() + 1
                if (count, height, width) != (matrix.count, matrix.height, matrix.width):
                    raise SeiError(f"GFV SEI matrix type {type_idx} size {(count, height, width)} does not "
                                   f"match the layout {(matrix.count, matrix.height, matrix.width)}")
            elif not layout.num_kps:
                reader.flag()  # 3-D space flag; the size is checked through the layout's element count


def _sei_message(payload: _BitWriter) -> bytes:
    """``sei_message()``: payload type and size bytes, then the payload with its alignment bits."""
    bits = list(payload.bits)
    if len(bits) % 8:
        bits += [1] + [0] * (-(len(bits) + 1) % 8)  # payload_bit_equal_to_one, then zeros
    aligned = _BitWriter()
    aligned.bits = bits
    body = aligned.to_bytes()
    return _ff_coded(PAYLOAD_TYPE) + _ff_coded(len(body)) + body


def _ff_coded(value: int) -> bytes:
    return b"\xff" * (value // 255) + bytes([value % 255])


def _nal_unit(sei_message: bytes) -> bytes:
    """Prefix SEI NAL unit: header, RBSP (message + trailing bits) with emulation prevention."""
    rbsp = sei_message + b"\x80"
    out, zeros = bytearray(_NAL_HEADER), 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _sei_payload(nal_unit: bytes) -> bytes:
    """The GFV payload bytes inside a NAL unit from :func:`_nal_unit`, alignment bits included."""
    if nal_unit[:2] != _NAL_HEADER:
        raise SeiError("not a prefix SEI NAL unit")
    rbsp, zeros = bytearray(), 0
    for byte in nal_unit[2:]:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        rbsp.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    pos, values = 0, []
    for _ in range(2):
        value = 0
        while pos < len(rbsp) and rbsp[pos] == 0xFF:
            value, pos = value + 255, pos + 1
        if pos >= len(rbsp):
            raise SeiError("SEI NAL unit ends inside the message header")
        values.append(value + rbsp[pos])
        pos += 1
    payload_type, size = values
    if payload_type != PAYLOAD_TYPE:
        raise SeiError(f"SEI payload type {payload_type}, expected {PAYLOAD_TYPE} (generative face video)")
    if rbsp[pos + size:] != b"\x80":
        raise SeiError("SEI NAL unit size or trailing bits are wrong (truncated or corrupted)")
    return bytes(rbsp[pos:pos + size])


def gfv_payload_bits(nal_unit: bytes) -> int:
    """Bits of the GFV SEI payload alone (no NAL header, message header or trailing bits)."""
    return 8 * len(_sei_payload(nal_unit))
