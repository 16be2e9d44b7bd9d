"""The generative face video (GFV) SEI message, payload type 223, as VTM 23.13 writes and reads it.

Syntax and reconstruction follow ``SEIWriter::xWriteSEIGenerativeFaceVideo`` and
``SEIReader::xParseSEIGenerativeFaceVideo`` of VTM 23.13 (the reference software the VSEI drafting
follows), element by element:

* ``gfv_id`` ue(v), ``gfv_cnt`` ue(v); ``gfv_base_picture_flag`` only when ``gfv_cnt`` is 0. A base
  picture carries ``gfv_nn_present_flag`` (then ``gfv_mode_idc``; mode 1: byte-aligned URI tag and
  URI strings; mode 0: the network's bytes at the end of the payload) and the chroma-key information;
  a non-base message with ``gfv_cnt`` 0 carries ``gfv_fusion_pic_flag`` instead.
* ``gfv_low_confidence_face_parameter_flag``, ``gfv_coordinate_present_flag``; coordinates:
  ``gfv_kps_pred_flag``
  (a base picture predicts each keypoint from the previous one in the same picture; others from the
  base picture when ``gfv_cnt`` is 0, else from the previous message); precision, count and z flag
  are sent in a base picture or when not predicted. Per keypoint x, y (, z): ue(v) magnitude and a
  sign flag when non-zero; quantised as ``(int)(v * 2^p + 0.5)`` (truncation toward zero).
* ``gfv_matrix_present_flag``; ``gfv_matrix_pred_flag`` (not in a base picture); unpredicted: the
  element precision, the matrix types (6-bit ``gfv_matrix_type_idx``) and their sizes, elements as
  ue(v) integer part, u(p) fraction (clipped), sign; predicted: sizes and precision of the base
  picture, elements as ue(v) integer and ue(v) fraction deltas, sign.

Sizes per type: 0/1 one (d x d) matrix per keypoint (or ``gfv_num_matrices_info`` of them), 4 a
(d x d) matrix, 5/6 a (d x 1) vector, with d = 3 for 3-D coordinates (or ``gfv_Matrix3DSpaceFlag``
without coordinates), else 2; 2, 3 and >= 7 explicit width then height (>= 7 also a count).
Matrix elements run matrix type, matrix, row, column; keypoints run keypoint, then x, y, z.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from models.sei_nal import BitWriter

PAYLOAD_TYPE = 223


@dataclass
class NeuralNetwork:
    mode_idc: int
    uri_tag: str = ""
    uri: str = ""
    payload: bytes = b""  # mode 0: the network itself


@dataclass
class ChromaKey:
    purpose_idc: int
    values: tuple[int | None, int | None, int | None]  # None: gfv_chroma_key_value_present_flag[c] 0
    thr_lower: int | None = None  # None: gfv_chroma_key_thr_present_flag 0
    thr_upper_delta_minus1: int | None = None


@dataclass
class MatrixSet:
    """One matrix type of a message: ``values`` (count, height, width)."""

    type_idx: int
    values: np.ndarray
    space_3d: int | None = None  # gfv_Matrix3DSpaceFlag, sent for types 4..6 without coordinates
    num_matrices_info: int | None = None  # types 0/1 when not one matrix per keypoint


@dataclass
class GfvMessage:
    """Every syntax element of one message; ``coordinates``/``matrices`` reconstructed (after parsing)
    or the values to code (before writing)."""

    gfv_id: int = 0
    cnt: int = 0
    base: bool = True
    nn: NeuralNetwork | None = None
    chroma_key: ChromaKey | None = None
    fusion_pic_flag: int = 0
    low_confidence: int = 0
    kps_pred: int = 0
    coordinate_precision: int = 0  # 0 when not sent (taken from the base picture)
    z_max_value: int | None = None
    coordinates: np.ndarray | None = None  # (num_kps, 2 or 3); None: gfv_coordinate_present_flag 0
    matrix_pred: int = 0
    matrix_precision: int = 0  # 0 when not sent
    matrices: list[MatrixSet] = field(default_factory=list)  # empty: gfv_matrix_present_flag 0


@dataclass
class GfvState:
    """What later messages are predicted from (the base picture's and the previous message's)."""

    coordinate_params: tuple[int, int, int, int | None] | None = None  # precision, num, dims, z max
    base_coordinates: np.ndarray | None = None
    previous_coordinates: np.ndarray | None = None
    matrix_precision: int | None = None
    matrix_sizes: list[tuple[int, int, int, int]] | None = None  # type, count, height, width
    base_matrices: list[np.ndarray] | None = None
    previous_matrices: list[np.ndarray] | None = None


def _quantise(value: float, scale: int) -> int:
    return int(value * scale + 0.5)  # as VTM: C's (int) truncates toward zero


def _signed_write(out: BitWriter, q: int) -> None:
    out.ue(abs(q))
    if q:
        out.flag(q < 0)


def _coordinate_reference(message: GfvMessage, state: GfvState, rec: np.ndarray, i: int, axis: int) -> float:
    if not message.kps_pred:
        return 0.0
    if message.base:
        return 0.0 if i == 0 else float(rec[i - 1, axis])
    source = state.base_coordinates if message.cnt == 0 else state.previous_coordinates
    return float(source[i, axis])


def _matrix_size(
    type_idx: int,
    dims: int,
    space_3d: int | None,
    num_kps: int,
    num_matrices_info: int | None,
    count: int = 1,
    height: int = 0,
    width: int = 0,
) -> tuple[int, int, int]:
    """(count, height, width) of a matrix type as VTM's reader derives it."""
    if type_idx in (0, 1):
        if num_matrices_info is None:
            return num_kps, dims, dims
        info = num_matrices_info
        return (info + 1 if info < num_kps - 1 else info + 2), dims, dims
    side = (space_3d if space_3d is not None else dims - 2) + 2
    if type_idx == 4:
        return 1, side, side
    if type_idx in (5, 6):
        return 1, side, 1
    return count, height, width


def write_gfv(message: GfvMessage, state: GfvState) -> tuple[BitWriter, GfvMessage]:
    """The payload of ``message`` and the message as a reader reconstructs it; updates ``state``."""
    out = BitWriter()
    out.ue(message.gfv_id)
    out.ue(message.cnt)
    base = message.base and message.cnt == 0
    if message.cnt == 0:
        out.flag(base)
    if base:
        out.flag(message.nn is not None)
        if message.nn is not None:
            out.ue(message.nn.mode_idc)
            if message.nn.mode_idc == 1:
                out.align_zero()
                out.string(message.nn.uri_tag)
                out.string(message.nn.uri)
        _write_chroma_key(out, message.chroma_key)
    elif message.cnt == 0:
        out.flag(message.fusion_pic_flag)
    elif state.coordinate_params is None and state.matrix_sizes is None:
        raise ValueError("a GFV message with gfv_cnt > 0 needs a base picture before it")
    out.flag(message.low_confidence)
    rec = replace(message, base=base)
    out.flag(message.coordinates is not None)
    if message.coordinates is not None:
        rec.coordinates = _write_coordinates(out, message, base, state)
    if message.coordinates is None and not message.matrices:
        raise ValueError("a GFV message needs coordinates or matrices")
    out.flag(bool(message.matrices))
    if message.matrices:
        rec.matrices = _write_matrices(out, message, base, state)
    if base and message.nn is not None and message.nn.mode_idc == 0:
        out.align_zero()
        for byte in message.nn.payload:
            out.code(byte, 8)
    return out, rec


def _write_chroma_key(out: BitWriter, key: ChromaKey | None) -> None:
    out.flag(key is not None)
    if key is None:
        return
    out.ue(key.purpose_idc)
    for value in key.values:
        out.flag(value is not None)
        if value is not None:
            out.code(value, 8)
    out.flag(key.thr_lower is not None)
    if key.thr_lower is not None:
        out.code(key.thr_lower, 8)
        out.ue(int(key.thr_upper_delta_minus1 or 0))


def _write_coordinates(out: BitWriter, message: GfvMessage, base: bool, state: GfvState) -> np.ndarray:
    values = np.asarray(message.coordinates, np.float64)
    num, dims = values.shape
    out.flag(message.kps_pred)
    if base or not message.kps_pred:
        out.ue(message.coordinate_precision - 1)
        out.ue(num - 1)
        out.flag(dims == 3)
        if dims == 3:
            out.ue(int(message.z_max_value or 1) - 1)
        precision = message.coordinate_precision
    else:
        precision, base_num, base_dims, _ = state.coordinate_params
        if (base_num, base_dims) != (num, dims):
            raise ValueError(
                f"predicted coordinates {(num, dims)} differ from the base picture's {(base_num, base_dims)}"
            )
    scale = 1 << precision
    rec = np.empty_like(values)
    for i in range(num):
        for axis in range(dims):
            reference = _coordinate_reference(message, state, rec, i, axis)
            q = _quantise(values[i, axis] - reference, scale)
            _signed_write(out, q)
            rec[i, axis] = q / scale + reference
    if base:
        state.coordinate_params = (precision, num, dims, message.z_max_value if dims == 3 else None)
        state.base_coordinates = rec
    state.previous_coordinates = rec
    return rec


def _write_matrices(out: BitWriter, message: GfvMessage, base: bool, state: GfvState) -> list[MatrixSet]:
    predicted = 0 if base else message.matrix_pred
    if not base:
        out.flag(predicted)
    if predicted:
        precision = state.matrix_precision
        expected = [(t, c, h, w) for t, c, h, w in state.matrix_sizes]
        found = [(m.type_idx, *np.shape(m.values)) for m in message.matrices]
        if found != expected:
            raise ValueError(f"predicted matrices {found} differ from the base picture's {expected}")
    else:
        precision = message.matrix_precision
        out.ue(precision - 1)
        out.ue(len(message.matrices) - 1)
        for matrix in message.matrices:
            _write_matrix_size(out, matrix, message)
    scale = 1 << precision
    recs = []
    reference_set = state.base_matrices if message.cnt == 0 else state.previous_matrices
    for index, matrix in enumerate(message.matrices):
        values = np.asarray(matrix.values, np.float64)
        rec = np.empty_like(values)
        for position, value in np.ndenumerate(values):
            reference = float(reference_set[index][position]) if predicted else 0.0
            delta = value - reference
            integer = int(abs(delta))
            fraction = int((abs(delta) - integer) * scale + 0.5)
            out.ue(integer)
            if predicted:
                out.ue(fraction)
            else:
                fraction = min(fraction, scale - 1)  # VTM clips, it does not carry
                out.code(fraction, precision)
            if integer or fraction:
                out.flag(delta < 0)
            magnitude = integer + fraction / scale
            rec[position] = (-magnitude if delta < 0 and (integer or fraction) else magnitude) + reference
        recs.append(replace(matrix, values=rec))
    if base:
        state.matrix_precision = precision
        state.matrix_sizes = [(m.type_idx, *m.values.shape) for m in recs]
        state.base_matrices = [m.values for m in recs]
    state.previous_matrices = [m.values for m in recs]
    return recs


def _write_matrix_size(out: BitWriter, matrix: MatrixSet, message: GfvMessage) -> None:
    out.code(matrix.type_idx, 6)
    count, height, width = np.shape(matrix.values)
    num_kps, dims = (0, 2) if message.coordinates is None else np.shape(message.coordinates)
    derived = _matrix_size(
        matrix.type_idx, dims, matrix.space_3d, num_kps, matrix.num_matrices_info, count, height, width
    )
    if derived != (count, height, width):
        raise ValueError(
            f"matrix type {matrix.type_idx} of shape {(count, height, width)}: its syntax gives {derived}"
        )
    if matrix.type_idx in (0, 1):
        out.flag(matrix.num_matrices_info is None)
        if matrix.num_matrices_info is not None:
            out.ue(matrix.num_matrices_info)
    elif matrix.type_idx in (2, 3) or matrix.type_idx >= 7:
        if matrix.type_idx >= 7:
            out.ue(count - 1)
        out.ue(width - 1)
        out.ue(height - 1)
    elif message.coordinates is None:
        out.flag(height == 3)  # gfv_Matrix3DSpaceFlag
