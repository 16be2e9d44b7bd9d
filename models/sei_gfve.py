"""The generative face video enhancement SEI message (payload type 224), read as VTM 23.13's
``SEIReader::xParseSEIGenerativeFaceVideoEnhancement`` reads it: enhancement matrices and the pupil
coordinates of both eyes, each predicted from the base picture (``gfve_gfv_cnt`` 0) or the previous
message. Exposed to a model that wants them (:func:`enhancements` of a ``.266`` stream).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.sei import NeuralNetwork
from models.sei_nal import SUFFIX_SEI_NUT, BitReader, SeiError, nal_type, parse_sei_nal, split_annexb

PAYLOAD_TYPE = 224


@dataclass
class GfveMessage:
    gfve_id: int
    gfv_id: int
    gfv_cnt: int
    base: bool
    nn: NeuralNetwork | None = None
    matrix_pred: int = 0
    matrices: list[np.ndarray] = field(default_factory=list)  # (height, width) each, reconstructed
    pupil_present_idx: int = 0  # 1 left, 2 right, 3 both
    pupils: tuple[float, float, float, float] | None = None  # left x, y, right x, y


@dataclass
class GfveState:
    precision: int | None = None
    sizes: list[tuple[int, int]] | None = None
    base_matrices: list[np.ndarray] | None = None
    previous_matrices: list[np.ndarray] | None = None
    pupil_precision: int | None = None
    base_pupils: tuple[float, float, float, float] | None = None
    previous_pupils: tuple[float, float, float, float] | None = None


def parse_gfve(payload: bytes, state: GfveState, trace: list | None = None) -> GfveMessage:
    reader = BitReader(payload, "GFVE SEI payload", trace)
    message = GfveMessage(reader.ue("gfve_id"), reader.ue("gfve_gfv_id"), reader.ue("gfve_gfv_cnt"), False)
    if message.gfv_cnt == 0:
        message.base = bool(reader.flag("gfve_base_picture_flag"))
    if message.base and reader.flag("gfve_nn_present_flag"):
        message.nn = NeuralNetwork(reader.ue("gfve_nn_mode_idc"))
        if message.nn.mode_idc == 1:
            reader.zero_bits_to_byte("gfve_nn_alignment_zero_bit_a")
            message.nn.uri_tag = reader.string("gfve_nn_uri_tag")
            message.nn.uri = reader.string("gfve_nn_uri")
    if reader.flag("gfve_matrix_present_flag"):
        message.matrices = _read_matrices(reader, message, state)
    message.pupil_present_idx = reader.code(2, "gfve_pupil_coordinate_present_idx")
    if message.pupil_present_idx and message.base:
        state.pupil_precision = reader.ue("gfve_pupil_coordinate_precision_factor_minus1") + 1
    if message.pupil_present_idx and state.pupil_precision is None:
        raise SeiError("GFVE SEI: gfve_pupil_coordinate_present_idx > 0 before any base picture with pupils")
    if state.pupil_precision is not None:  # VTM: once a base picture had pupils, every message has them
        message.pupils = _read_pupils(reader, message, state)
    if message.nn is not None and message.nn.mode_idc == 0:
        reader.zero_bits_to_byte("gfve_nn_alignment_zero_bit_b")
        message.nn.payload = reader.rest()
    reader.finish()
    return message


def _read_matrices(reader: BitReader, message: GfveMessage, state: GfveState) -> list[np.ndarray]:
    message.matrix_pred = 0 if message.base else reader.flag("gfve_matrix_pred_flag")
    if message.matrix_pred:
        if state.sizes is None:
            raise SeiError("GFVE SEI: gfve_matrix_pred_flag 1 before any base picture with matrices")
        precision, sizes = state.precision, state.sizes
    else:
        precision = reader.ue("gfve_matrix_element_precision_factor_minus1") + 1
        sizes = [
            (reader.ue("gfve_matrix_height_minus1") + 1, reader.ue("gfve_matrix_width_minus1") + 1)
            for _ in range(reader.ue("gfve_num_matrices_minus1") + 1)
        ]
    reference = state.base_matrices if message.gfv_cnt == 0 else state.previous_matrices
    if message.matrix_pred and (reference is None or [m.shape for m in reference] != sizes):
        raise SeiError("GFVE SEI: predicted matrices without a picture of the same sizes to predict from")
    scale = 1 << precision
    prefix = "gfve_matrix_delta_element" if message.matrix_pred else "gfve_matrix_element"
    matrices = []
    for index, shape in enumerate(sizes):
        values = np.empty(shape, np.float64)
        for position in np.ndindex(shape):
            integer = reader.ue(f"{prefix}_int")
            fraction = reader.code(precision, f"{prefix}_dec")
            magnitude = fraction / scale + integer
            if (integer or fraction) and reader.flag(f"{prefix}_sign_flag"):
                magnitude = -magnitude
            values[position] = magnitude + (reference[index][position] if message.matrix_pred else 0.0)
        matrices.append(values)
    if message.base:
        state.precision, state.sizes, state.base_matrices = precision, sizes, matrices
    state.previous_matrices = matrices
    return matrices


def _read_pupils(
    reader: BitReader, message: GfveMessage, state: GfveState
) -> tuple[float, float, float, float]:
    scale = 1 << state.pupil_precision
    if message.gfv_cnt != 0:
        reference = state.previous_pupils
    elif not message.base:
        reference = state.base_pupils
    else:
        reference = (0.0, 0.0, 0.0, 0.0)
    if reference is None:
        raise SeiError("GFVE SEI: pupil coordinates predicted before any base picture")
    out = list(reference)

    def read(eye: str, axis: str, ref: float) -> float:
        name = f"gfve_pupil_{eye}_eye_d{axis}_coordinate"
        magnitude = reader.ue(f"{name}_abs")
        if magnitude > 1 << (state.pupil_precision + 1):
            raise SeiError(f"GFVE SEI: {name}_abs {magnitude} is above 2^(precision + 1)")
        value = magnitude / scale
        if magnitude and reader.flag(f"{name}_sign_flag"):
            value = -value
        return value + ref

    if message.pupil_present_idx in (1, 3):
        out[0], out[1] = read("left", "x", reference[0]), read("left", "y", reference[1])
    if message.base:
        reference = (*reference[:2], out[0], out[1])  # the right eye is predicted from the left one
        out[2], out[3] = reference[2], reference[3]
    if message.pupil_present_idx in (2, 3):
        out[2], out[3] = read("right", "x", reference[2]), read("right", "y", reference[3])
    pupils = (out[0], out[1], out[2], out[3])
    if message.base:
        state.base_pupils = pupils
    state.previous_pupils = pupils
    return pupils


def enhancements(stream: bytes, source: str) -> list[GfveMessage]:
    """Every enhancement message of a ``.266`` stream, in order (pupil coordinates for a model)."""
    state, out = GfveState(), []
    for unit in split_annexb(stream, source):
        if nal_type(unit) == SUFFIX_SEI_NUT or nal_type(unit) == 23:
            out += [
                parse_gfve(m.payload, state) for m in parse_sei_nal(unit) if m.payload_type == PAYLOAD_TYPE
            ]
    return out
