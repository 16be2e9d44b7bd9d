"""Reading the generative face video SEI message (payload type 223) as VTM 23.13's
``SEIReader::xParseSEIGenerativeFaceVideo`` does: every stream its writer can produce is read, each
syntax element kept (:class:`models.sei.GfvMessage`); nothing is refused here but what cannot be
parsed, with the element's name.

Two points where we follow VTM's writer rather than its reader (they agree on every stream whose
matrix types 0/1 come first, then 4..6, then the others, and whose non-base ``gfv_cnt`` 0 messages do
not predict matrices): the reader's per-type arrays (``gfv_num_matrices_equal_to_num_kps_flag``,
``gfv_num_matrices_info``, ``gfv_Matrix3DSpaceFlag``) are indexed by matrix type, and a non-base
message with ``gfv_cnt`` 0 predicts matrices from the base picture (VTM's reader: from the previous).
"""

from __future__ import annotations

import numpy as np

from models.sei import ChromaKey, GfvMessage, GfvState, MatrixSet, NeuralNetwork, _matrix_size
from models.sei_nal import BitReader, SeiError


def parse_gfv(payload: bytes, state: GfvState, trace: list | None = None) -> GfvMessage:
    """One message from its payload bytes; updates ``state`` for the messages after it. With ``trace``
    a list, every syntax element read is appended to it as ``(name, value)``, named as VTM names it."""
    reader = BitReader(payload, trace=trace)
    message = GfvMessage(gfv_id=reader.ue("gfv_id"), cnt=reader.ue("gfv_cnt"), base=False)
    if message.cnt == 0:
        message.base = bool(reader.flag("gfv_base_picture_flag"))
    if message.base:
        if reader.flag("gfv_nn_present_flag"):
            message.nn = NeuralNetwork(reader.ue("gfv_mode_idc"))
            if message.nn.mode_idc == 1:
                reader.zero_bits_to_byte("gfv_nn_alignment_zero_bit_a")
                message.nn.uri_tag = reader.string("gfv_uri_tag")
                message.nn.uri = reader.string("gfv_uri")
        if reader.flag("gfv_chroma_key_info_present_flag"):
            message.chroma_key = _read_chroma_key(reader)
    elif message.cnt == 0:
        message.fusion_pic_flag = reader.flag("gfv_fusion_pic_flag")
    message.low_confidence = reader.flag("gfv_low_confidence_face_parameter_flag")
    coordinates = reader.flag("gfv_coordinate_present_flag")
    if coordinates:
        message.coordinates = _read_coordinates(reader, message, state)
    if reader.flag("gfv_matrix_present_flag"):
        message.matrices = _read_matrices(reader, message, state)
    elif not coordinates:
        raise SeiError("GFV SEI: gfv_matrix_present_flag is 0 with gfv_coordinate_present_flag 0")
    if message.nn is not None and message.nn.mode_idc == 0:
        reader.zero_bits_to_byte("gfv_nn_alignment_zero_bit_b")
        message.nn.payload = reader.rest()
    reader.finish()
    return message


def _read_chroma_key(reader: BitReader) -> ChromaKey:
    purpose = reader.ue("gfv_chroma_key_purpose_idc")
    if purpose > 2:
        raise SeiError(f"GFV SEI: gfv_chroma_key_purpose_idc {purpose} is outside 0..2")
    values = tuple(
        reader.code(8, "gfv_chroma_key_value[chromac]")
        if reader.flag("gfv_chroma_key_value_present_flag[c]")
        else None
        for _ in range(3)
    )
    if not reader.flag("gfv_chroma_key_thr_present_flag"):
        return ChromaKey(purpose, values)
    lower = reader.code(8, "gfv_chroma_key_thr_lower")
    upper = reader.ue("gfv_chroma_key_thr_upper_delta_minus1")
    if upper > 255:
        raise SeiError(f"GFV SEI: gfv_chroma_key_thr_upper_delta_minus1 {upper} is outside 0..255")
    return ChromaKey(purpose, values, lower, upper)


def _read_coordinates(reader: BitReader, message: GfvMessage, state: GfvState) -> np.ndarray:
    message.kps_pred = reader.flag("gfv_kps_pred_flag")
    if message.base or not message.kps_pred:
        precision = reader.ue("gfv_coordinate_precision_factor_minus1") + 1
        if precision > 32:
            raise SeiError(
                f"GFV SEI: gfv_coordinate_precision_factor_minus1 {precision - 1} is outside 0..31"
            )
        num = reader.ue("gfv_num_kps_minus1") + 1
        dims = 3 if reader.flag("gfv_coordinate_z_present_flag") else 2
        if dims == 3:
            message.z_max_value = reader.ue("gfv_coordinate_z_max_value_minus1") + 1
        message.coordinate_precision = precision
    elif state.coordinate_params is None:
        raise SeiError("GFV SEI: gfv_kps_pred_flag 1 before any base picture with coordinates")
    else:
        precision, num, dims, message.z_max_value = state.coordinate_params
    if not message.base and message.kps_pred:
        reference = state.base_coordinates if message.cnt == 0 else state.previous_coordinates
        if reference is None or reference.shape != (num, dims):
            raise SeiError("GFV SEI: predicted coordinates without a picture of as many to predict from")
    scale = 1 << precision
    rec = np.empty((num, dims), np.float64)
    names = ("x", "y", "z")
    for i in range(num):
        for axis in range(dims):
            name = f"gfv_coordinate_{'d' if message.kps_pred else ''}{names[axis]}"
            value = _signed_read(reader, name) / scale
            if message.kps_pred:
                if message.base:
                    value += 0.0 if i == 0 else rec[i - 1, axis]
                else:
                    value += reference[i, axis]
            rec[i, axis] = value
    if message.base:
        state.coordinate_params = (precision, num, dims, message.z_max_value)
        state.base_coordinates = rec
    state.previous_coordinates = rec
    return rec


def _signed_read(reader: BitReader, name: str) -> float:
    magnitude = reader.ue(f"{name}_abs[ i ]")
    return -float(magnitude) if magnitude and reader.flag(f"{name}_sign_flag") else float(magnitude)


def _read_matrices(reader: BitReader, message: GfvMessage, state: GfvState) -> list[MatrixSet]:
    message.matrix_pred = 0 if message.base else reader.flag("gfv_matrix_pred_flag")
    if message.matrix_pred:
        if state.matrix_sizes is None:
            raise SeiError("GFV SEI: gfv_matrix_pred_flag 1 before any base picture with matrices")
        precision, sizes = state.matrix_precision, state.matrix_sizes
        infos = [(None, None)] * len(sizes)
    else:
        precision = reader.ue("gfv_matrix_element_precision_factor_minus1") + 1
        if precision > 32:
            raise SeiError(
                f"GFV SEI: gfv_matrix_element_precision_factor_minus1 {precision - 1} is outside 0..31"
            )
        message.matrix_precision = precision
        sizes, infos = [], []
        for _ in range(reader.ue("gfv_num_matrix_types_minus1") + 1):
            size, info = _read_matrix_size(reader, message)
            sizes.append(size)
            infos.append(info)
    scale = 1 << precision
    reference_set = state.base_matrices if message.cnt == 0 else state.previous_matrices
    if message.matrix_pred and (
        reference_set is None or [m.shape for m in reference_set] != [size[1:] for size in sizes]
    ):
        raise SeiError("GFV SEI: predicted matrices without a picture of the same sizes to predict from")
    matrices = []
    for index, (type_idx, count, height, width) in enumerate(sizes):
        values = np.empty((count, height, width), np.float64)
        for position in np.ndindex(values.shape):
            prefix = "gfv_matrix_delta_element" if message.matrix_pred else "gfv_matrix_element"
            integer = reader.ue(f"{prefix}_int")
            fraction = (
                reader.ue(f"{prefix}_dec") if message.matrix_pred else reader.code(precision, f"{prefix}_dec")
            )
            magnitude = fraction / scale + integer
            if (integer or fraction) and reader.flag(f"{prefix}_sign_flag"):
                magnitude = -magnitude
            values[position] = magnitude + (reference_set[index][position] if message.matrix_pred else 0.0)
        space_3d, info = infos[index]
        matrices.append(MatrixSet(type_idx, values, space_3d, info))
    if message.base:
        state.matrix_precision, state.matrix_sizes = precision, sizes
        state.base_matrices = [m.values for m in matrices]
    state.previous_matrices = [m.values for m in matrices]
    return matrices


def _read_matrix_size(
    reader: BitReader, message: GfvMessage
) -> tuple[tuple[int, int, int, int], tuple[int | None, int | None]]:
    type_idx = reader.code(6, "gfv_matrix_type_idx")
    num_kps, dims = (0, 2) if message.coordinates is None else message.coordinates.shape
    space_3d = info = None
    count = height = width = 1
    if type_idx in (0, 1):
        if message.coordinates is None:
            raise SeiError(f"GFV SEI: gfv_matrix_type_idx {type_idx} with gfv_coordinate_present_flag 0")
        if not reader.flag("gfv_num_matrices_equal_to_num_kps_flag"):
            info = reader.ue("gfv_num_matrices_info")
    elif type_idx in (2, 3) or type_idx >= 7:
        if type_idx >= 7:
            count = reader.ue("gfv_num_matrices_minus1") + 1
        width = reader.ue("gfv_matrix_width_minus1") + 1
        height = reader.ue("gfv_matrix_height_minus1") + 1
        if max(count, width, height) > 1 << 10:
            raise SeiError(
                f"GFV SEI: matrix type {type_idx} of {count} x {height} x {width}: each must be at most 2^10"
            )
    elif message.coordinates is None:
        space_3d = reader.flag("gfv_Matrix3DSpaceFlag")
    size = _matrix_size(type_idx, dims, space_3d, num_kps, info, count, height, width)
    return (type_idx, *size), (space_3d, info)
