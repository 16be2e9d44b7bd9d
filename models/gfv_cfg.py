"""``ctc-gfv-cfg``: the VTM 23.13 encoder configuration that makes VTM write a stream's GFV SEI messages.

    ctc-gfv-cfg STREAM.266 [--out FOLDER]      (or a folder: every .266 file in it, e.g. a result's)

For each key picture of a ``.266`` stream of ``feature_coding: sei`` (one GOP), a ``.cfg`` of
``SEIGenerativeFaceVideo*`` keys, as the GFVC common software v3 generates VTM SEI configs from its
features: give it to ``EncoderAppStatic -c encoder_intra_vtm.cfg -c THAT.cfg`` with the key picture
as input, and VTM's own writer puts the same messages in the key picture's access unit (VTM writes
every configured message in the first picture's access unit, hence one file per GOP).

VTM's writer quantises the values it is given; we give it, for every syntax value of the stream,
the value in the middle of the interval VTM's quantiser maps to it (``(int)(x * 2^p + 0.5)``, which
truncates toward zero), predicted from VTM's reconstruction, which is ours bit for bit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ctc.cli import finish
from models.gfv_stream import SUFFIX
from models.sei import PAYLOAD_TYPE, GfvMessage, GfvState
from models.sei_nal import SUFFIX_SEI_NUT, VCL_TYPES, SeiError, nal_type, parse_sei_nal, split_annexb
from models.sei_parse import parse_gfv


def stream_gops(data: bytes, source: str) -> list[list[tuple[GfvMessage, list]]]:
    """The GFV messages of each key picture's access unit, in order, each with its syntax trace."""
    gops: list[list[tuple[GfvMessage, list]]] = []
    state = GfvState()
    for unit in split_annexb(data, source):
        if nal_type(unit) in VCL_TYPES:
            if not gops or gops[-1]:
                gops.append([])
        elif nal_type(unit) == SUFFIX_SEI_NUT:
            for message in parse_sei_nal(unit):
                if message.payload_type == PAYLOAD_TYPE:
                    if not gops:
                        raise SeiError(f"{source}: a GFV SEI message before any key picture")
                    trace: list = []
                    gops[-1].append((parse_gfv(message.payload, state, trace), trace))
    return [gop for gop in gops if gop]


def _coordinate_input(q: int) -> float:
    """Where VTM's coordinate quantiser ``(int)(x + 0.5)`` (toward zero) maps to ``q``: the middle."""
    return q if q > 0 else -0.5 if q == 0 else q - 1


def _coded_values(trace: list) -> tuple[list[int], list[tuple[int, int, int]]]:
    """The coordinates' signed values and the matrix elements' (integer, fraction, sign) as coded."""
    coordinates, elements = [], []
    for index, (name, value) in enumerate(trace):
        following = trace[index + 1][0] if index + 1 < len(trace) else ""
        if name.startswith("gfv_coordinate_") and name.endswith("_abs[ i ]"):
            negative = following.endswith("_sign_flag") and trace[index + 1][1]
            coordinates.append(-value if negative else value)
        elif name.endswith("element_int"):
            fraction = trace[index + 1][1]
            after = trace[index + 2][0] if index + 2 < len(trace) else ""
            elements.append((value, fraction, int(after.endswith("sign_flag") and trace[index + 2][1])))
    return coordinates, elements


def vtm_inputs(gop: list[tuple[GfvMessage, list]]) -> list[tuple[np.ndarray | None, list[np.ndarray]]]:
    """Per message, the coordinates and matrix elements that VTM's writer codes as the stream does."""
    base = previous = None  # (coordinates, matrices) reconstructed
    coordinate_precision = matrix_precision = 0
    out = []
    for message, trace in gop:
        coded_coordinates, coded_elements = _coded_values(trace)
        coordinates = None
        if message.coordinates is not None:
            coordinate_precision = message.coordinate_precision or coordinate_precision
            rec = message.coordinates
            if message.kps_pred and message.base:
                reference = np.vstack([np.zeros((1, rec.shape[1])), rec[:-1]])
            elif message.kps_pred:
                reference = (base if message.cnt == 0 else previous)[0]
            else:
                reference = np.zeros_like(rec)
            offsets = np.array([_coordinate_input(q) for q in coded_coordinates]).reshape(rec.shape)
            coordinates = reference + offsets / (1 << coordinate_precision)
        matrices = []
        if message.matrices:
            matrix_precision = message.matrix_precision or matrix_precision
            scale = 1 << matrix_precision
            values = iter(coded_elements)
            for index, matrix in enumerate(message.matrices):
                reference = (
                    (base if message.cnt == 0 else previous)[1][index]
                    if message.matrix_pred
                    else np.zeros_like(matrix.values)
                )
                inputs = np.empty_like(matrix.values)
                for position in np.ndindex(inputs.shape):
                    integer, fraction, negative = next(values)
                    nudged = fraction + (0.25 if fraction < scale else -0.25)  # inside its rounding interval
                    magnitude = integer + nudged / scale
                    inputs[position] = reference[position] + (-magnitude if negative else magnitude)
                matrices.append(inputs)
        state = (message.coordinates, [m.values for m in message.matrices])
        base = state if message.base else base
        previous = state
        out.append((coordinates, matrices))
    return out


def _join(values) -> str:
    return " ".join(repr(float(v)) if isinstance(v, float | np.floating) else str(int(v)) for v in values)


def gfv_cfg(gop: list[tuple[GfvMessage, list]]) -> str:
    """The ``SEIGenerativeFaceVideo*`` keys of one access unit's messages (VTM 23.13's EncAppCfg)."""
    messages = [message for message, _ in gop]
    inputs = vtm_inputs(gop)
    first = messages[0]
    keys: dict[str, str] = {"Enabled": "1", "Number": str(len(messages)), "BasePicFlag": str(int(first.base))}
    if first.nn is not None:
        keys.update(
            NNPresentFlag="1", NNModeIdc=str(first.nn.mode_idc), NNTagURI=first.nn.uri_tag, NNURI=first.nn.uri
        )
    if first.chroma_key is not None:
        key = first.chroma_key
        keys.update(
            ChromaKeyInfoPresentFlag="1",
            ChromaKeyPurposeIdc=str(key.purpose_idc),
            ChromaKeyValuePresentFlag=_join(v is not None for v in key.values),
            ChromaKeyValue=_join(v or 0 for v in key.values),
            ChromaKeyThrPresentFlag=str(int(key.thr_lower is not None)),
            ChromaKeyThrLower=str(key.thr_lower or 0),
            ChromaKeyThrUpperDeltaMinus1=str(key.thr_upper_delta_minus1 or 0),
        )
    per_message = {
        name: []
        for name in (
            "Id",
            "Cnt",
            "FusionPicFlag",
            "LowConfidenceFaceParameterFlag",
            "CoordinatePresentFlag",
            "CoordinatePredFlag",
            "CoordinateQuantizationFactor",
            "3DCoordinateFlag",
            "CoordinatePointNum",
            "ZCoordinateMaxValue",
            "XCoordinate",
            "YCoordinate",
            "ZCoordinate",
            "MatrixPresentFlag",
            "MatrixPredFlag",
            "MatrixElementPrecisionFactor",
            "NumMatrixType",
            "MatrixTypeIdx",
            "Matrix3DSpaceFlag",
            "NumMatrices",
            "MatrixWidth",
            "MatrixHeight",
            "NumMatricestoNumKpsFlag",
            "NumMatricesInfo",
            "MatrixElement",
        )
    }
    base_coordinates = (first.coordinate_precision, first.coordinates)
    base_types = first.matrices
    for message, (coordinates, matrices) in zip(messages, inputs, strict=True):
        add = {name: per_message[name].append for name in per_message}
        add["Id"](message.gfv_id)
        add["Cnt"](message.cnt)
        add["FusionPicFlag"](message.fusion_pic_flag)
        add["LowConfidenceFaceParameterFlag"](message.low_confidence)
        add["CoordinatePresentFlag"](int(coordinates is not None))
        add["CoordinatePredFlag"](message.kps_pred)
        shape = base_coordinates[1].shape if base_coordinates[1] is not None else (1, 2)
        add["CoordinateQuantizationFactor"](message.coordinate_precision or base_coordinates[0] or 1)
        add["3DCoordinateFlag"](int(shape[1] == 3))
        add["CoordinatePointNum"](shape[0])
        add["ZCoordinateMaxValue"](message.z_max_value or 1)
        if coordinates is not None:
            per_message["XCoordinate"] += list(coordinates[:, 0])
            per_message["YCoordinate"] += list(coordinates[:, 1])
            if coordinates.shape[1] == 3:
                per_message["ZCoordinate"] += list(coordinates[:, 2])
        add["MatrixPresentFlag"](int(bool(matrices)))
        add["MatrixPredFlag"](message.matrix_pred)
        add["MatrixElementPrecisionFactor"](message.matrix_precision or first.matrix_precision or 1)
        types = message.matrices if not message.matrix_pred else base_types
        add["NumMatrixType"](len(types) if matrices else 0)
        for matrix in types or [None]:  # VTM steps one entry for a message without matrices
            count, height, width = matrix.values.shape if matrix is not None else (1, 1, 1)
            add["MatrixTypeIdx"](matrix.type_idx if matrix is not None else 0)
            add["Matrix3DSpaceFlag"](int(height == 3) if matrix is not None else 0)
            add["NumMatrices"](count)
            add["MatrixWidth"](width)
            add["MatrixHeight"](height)
            add["NumMatricestoNumKpsFlag"](int(matrix is None or matrix.num_matrices_info is None))
            add["NumMatricesInfo"](
                0 if matrix is None or matrix.num_matrices_info is None else matrix.num_matrices_info
            )
        for values in matrices:
            per_message["MatrixElement"] += list(values.ravel())
    keys.update({name: _join(values) for name, values in per_message.items() if values})
    return "".join(f"SEIGenerativeFaceVideo{name}: {value}\n" for name, value in keys.items())


def write_cfgs(stream: Path, out: Path) -> list[Path]:
    """One ``<stream>_gop<first frame>.cfg`` per key picture of ``stream``."""
    gops = stream_gops(stream.read_bytes(), str(stream))
    if not gops:
        raise SeiError(f"{stream}: no GFV SEI message in it")
    out.mkdir(parents=True, exist_ok=True)
    written, frame = [], 0
    for gop in gops:
        path = out / f"{stream.stem}_gop{frame}.cfg"
        path.write_text(gfv_cfg(gop))
        written.append(path)
        frame += len(gop)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ctc-gfv-cfg", description=__doc__.split("\n")[0])
    parser.add_argument(
        "source", type=Path, help=f"a {SUFFIX} stream of feature_coding sei, or a folder of them"
    )
    parser.add_argument(
        "--out", type=Path, help="where to write the .cfg files (default: beside each stream)"
    )
    args = parser.parse_args(argv)
    streams = sorted(args.source.rglob(f"*{SUFFIX}")) if args.source.is_dir() else [args.source]
    if not streams or not all(path.is_file() for path in streams):
        print(f"ctc-gfv-cfg: error: no {SUFFIX} stream at {args.source}", file=sys.stderr)
        return 2
    return finish("ctc-gfv-cfg", lambda: _write_all(streams, args.out), (SeiError,))


def _write_all(streams: list[Path], out: Path | None) -> None:
    for stream in streams:
        for path in write_cfgs(stream, out or stream.parent):
            print(path)


if __name__ == "__main__":
    sys.exit(main())
