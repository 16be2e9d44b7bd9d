"""A model's features as generative face video SEI messages, and back (the ``sei`` feature coding).

The codec config's ``sei`` section says where the message's keypoints and matrices sit in the
model's flat feature vector (:class:`SeiLayout`). Per GOP, the key picture's features are the base
picture (``gfv_cnt`` 0, ``gfv_base_picture_flag`` 1); the GOP's n-th generated frame is the message
with ``gfv_cnt`` n, its keypoints and matrices predicted from the previous message
(``gfv_kps_pred_flag`` = ``gfv_matrix_pred_flag`` = 1). ``gfv_id`` is the configured ``id`` (0).
Each message is its own suffix SEI NAL unit (:mod:`models.sei_nal`), as VTM writes them.

Guessed (the public documents we could read do not settle them): which ``gfv_matrix_type_idx``
each model's parameters use (FOMM = 2-D keypoints + type-0 per-keypoint 2x2 matrices, CFTE = one
4x4 type-2 matrix, FV2V = 15 3-D keypoints + type-4 rotation + type-5 translation), z max value 1,
and the precision factors (config; log2 of the ``ae`` mode's q_step so both quantise alike).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.sei import PAYLOAD_TYPE, GfvMessage, GfvState, MatrixSet, write_gfv
from models.sei_nal import SeiError, parse_sei_nal, sei_nal_unit
from models.sei_parse import parse_gfv


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
    gfv_id: int = 0
    base_kps_pred: bool = False  # base picture: each keypoint predicted from the one before it

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
            if not 0 <= type_idx <= 63:
                raise ValueError(f"sei matrix type_idx {type_idx} is outside 0..63")
            space = dims if num_kps else (3 if entry.get("space_3d") else 2)
            if type_idx in (0, 1) and not num_kps:
                raise ValueError(f"sei matrix type {type_idx} needs coordinates (one matrix per keypoint)")
            shape = (
                (num_kps, dims, dims)
                if type_idx in (0, 1)
                else (1, space, space)
                if type_idx == 4
                else (1, space, 1)
                if type_idx in (5, 6)
                else (
                    int(entry.get("count", 1)) if type_idx >= 7 else 1,
                    int(entry["height"]),
                    int(entry["width"]),
                )
            )
            matrices.append(MatrixLayout(type_idx, int(entry["offset"]), *shape))
        layout = cls(
            int(config["coordinate_precision"]),
            int(config["matrix_precision"]),
            num_kps,
            dims,
            int(coordinates.get("offset", 0)),
            tuple(matrices),
            int(config.get("id", 0)),
            bool(config.get("base_kps_pred", False)),
        )
        flat = sorted(i for indices in layout._index_lists() for i in indices)
        if flat != list(range(feature_size)):
            raise ValueError(
                f"sei layout covers feature indices {flat[:5]}… ({len(flat)} values); "
                f"the model has {feature_size} features, each must be covered once"
            )
        for precision in (layout.coordinate_precision, layout.matrix_precision):
            if not 1 <= precision <= 32:
                raise ValueError(f"sei precision factor {precision} is outside 1..32")
        return layout

    def _index_lists(self) -> list[range]:
        lists = [range(self.coordinate_offset, self.coordinate_offset + self.num_kps * self.dims)]
        lists += [range(m.offset, m.offset + m.size) for m in self.matrices]
        return [indices for indices in lists if indices]

    def message(self, features: np.ndarray, cnt: int) -> GfvMessage:
        """The message that codes ``features`` as picture ``cnt`` of its GOP (0: the base picture)."""
        base = cnt == 0
        coordinates = None
        if self.num_kps:
            start = self.coordinate_offset
            coordinates = features[start : start + self.num_kps * self.dims].reshape(self.num_kps, self.dims)
        matrices = [
            MatrixSet(m.type_idx, features[m.offset : m.offset + m.size].reshape(m.count, m.height, m.width))
            for m in self.matrices
        ]
        return GfvMessage(
            gfv_id=self.gfv_id,
            cnt=cnt,
            base=base,
            kps_pred=int(self.base_kps_pred if base else 1),
            coordinate_precision=self.coordinate_precision,
            z_max_value=1 if self.dims == 3 else None,
            coordinates=coordinates,
            matrix_pred=int(not base),
            matrix_precision=self.matrix_precision,
            matrices=matrices,
        )

    def features(self, message: GfvMessage, size: int) -> np.ndarray:
        """The flat feature vector of a parsed message; refuses one whose shape the model cannot use."""
        out = np.empty(size, np.float64)
        if (message.coordinates is not None) != bool(self.num_kps):
            raise SeiError(
                f"GFV SEI gfv_coordinate_present_flag {int(message.coordinates is not None)}: the "
                f"model's layout has {self.num_kps} keypoints"
            )
        if self.num_kps:
            found = message.coordinates.shape
            if found != (self.num_kps, self.dims):
                raise SeiError(
                    f"GFV SEI gfv_num_kps_minus1 + 1 = {found[0]} with "
                    f"gfv_coordinate_z_present_flag {int(found[1] == 3)}: the model's layout has "
                    f"{self.num_kps} keypoints in "
                    f"{self.dims}-D"
                )
            start = self.coordinate_offset
            out[start : start + message.coordinates.size] = message.coordinates.ravel()
        found = [(m.type_idx, *m.values.shape) for m in message.matrices]
        expected = [(m.type_idx, m.count, m.height, m.width) for m in self.matrices]
        if found != expected:
            raise SeiError(
                f"GFV SEI matrices (gfv_matrix_type_idx, count, height, width) {found}: the "
                f"model's layout has {expected}"
            )
        for matrix, values in zip(self.matrices, message.matrices, strict=True):
            out[matrix.offset : matrix.offset + matrix.size] = values.values.ravel()
        return out


class GfvSeiWriter:
    """Writes one GFV suffix SEI NAL unit per picture of a GOP and keeps the reconstruction it implies."""

    def __init__(self, layout: SeiLayout) -> None:
        self.layout = layout
        self.state = GfvState()

    def write(self, features: Sequence[float], count: int) -> tuple[bytes, np.ndarray]:
        """Code ``features`` of picture ``count`` (0 = base picture); returns (NAL unit, reconstruction)."""
        values = np.asarray(features, np.float64)
        if count and self.state.previous_coordinates is None and self.state.previous_matrices is None:
            raise ValueError("the base picture (count 0) must be written first")
        payload, rec = write_gfv(self.layout.message(values, count), self.state)
        return sei_nal_unit([(PAYLOAD_TYPE, payload)]), self.layout.features(rec, values.size)


class GfvSeiParser:
    """Reads the GFV messages of a GOP's NAL units back into feature vectors."""

    def __init__(self, layout: SeiLayout, feature_size: int) -> None:
        self.layout = layout
        self.feature_size = feature_size
        self.state = GfvState()
        self.messages: list[GfvMessage] = []  # every message read, every syntax element kept

    def read(self, nal_unit: bytes, count: int) -> np.ndarray:
        """Features of picture ``count`` of the GOP from its NAL unit (its one GFV message)."""
        gfv = [m for m in parse_sei_nal(nal_unit) if m.payload_type == PAYLOAD_TYPE]
        if len(gfv) != 1:
            raise SeiError(f"picture {count}'s SEI NAL unit holds {len(gfv)} GFV messages, expected 1")
        message = parse_gfv(gfv[0].payload, self.state)
        if count == 0 and not message.base:
            raise SeiError(
                "the first GFV SEI message of a GOP is not a base picture (gfv_cnt 0, "
                "gfv_base_picture_flag 1)"
            )
        if message.cnt != count:
            raise SeiError(
                f"GFV SEI gfv_cnt {message.cnt}, expected {count} (the message's place in its GOP)"
            )
        self.messages.append(message)
        return self.layout.features(message, self.feature_size)


def gfv_payload_bits(nal_unit: bytes) -> int:
    """Bits of the GFV SEI payloads alone (no NAL header, message header or trailing bits)."""
    return 8 * sum(len(m.payload) for m in parse_sei_nal(nal_unit) if m.payload_type == PAYLOAD_TYPE)
