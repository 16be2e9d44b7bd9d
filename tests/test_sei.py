"""The GFV SEI feature-coding mode: syntax round trips, prediction, NAL wrapping, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from models import sei
from models.sei import GfvSeiParser, GfvSeiWriter, SeiError, SeiLayout

LAYOUTS = {  # the layouts of ctc/conf/codec/{fomm,cfte,fv2v}.yaml
    "fomm": ({"coordinate_precision": 6, "matrix_precision": 6, "coordinates": {"num": 10, "dims": 2},
              "matrices": [{"type_idx": 0, "offset": 20}]}, 60),
    "cfte": ({"coordinate_precision": 2, "matrix_precision": 2,
              "matrices": [{"type_idx": 2, "offset": 0, "width": 4, "height": 4}]}, 16),
    "fv2v": ({"coordinate_precision": 8, "matrix_precision": 8,
              "coordinates": {"num": 15, "dims": 3, "offset": 12},
              "matrices": [{"type_idx": 4, "offset": 0}, {"type_idx": 5, "offset": 9}]}, 57),
}


def sequence(size: int, frames: int = 6) -> np.ndarray:
    rng = np.random.default_rng(size)
    return np.cumsum(rng.normal(scale=0.03, size=(frames, size)), axis=0) + rng.normal(scale=0.5, size=size)


@pytest.mark.parametrize("model", sorted(LAYOUTS))
def test_round_trip_is_exact_and_close(model):
    config, size = LAYOUTS[model]
    layout = SeiLayout.from_config(config, size)
    writer, parser = GfvSeiWriter(layout), GfvSeiParser(layout, size)
    step = 1.0 / (1 << layout.coordinate_precision)
    for count, features in enumerate(sequence(size)):
        nal, rec = writer.write(features, count)
        assert np.array_equal(parser.read(nal, count), rec)
        assert np.abs(rec - features).max() <= 1.5 * step  # int(x + 0.5) truncates toward zero
        assert nal[:2] == b"\x00\xb9" and sei.gfv_payload_bits(nal) < 8 * len(nal)


def test_prediction_makes_inter_pictures_cheaper():
    config, size = LAYOUTS["fomm"]
    layout = SeiLayout.from_config(config, size)
    writer = GfvSeiWriter(layout)
    features = sequence(size)
    base = len(writer.write(features[0], 0)[0])
    inter = len(writer.write(features[0] + 0.001, 1)[0])
    assert inter < base / 2


def test_known_syntax_of_a_tiny_message():
    layout = SeiLayout.from_config({"coordinate_precision": 1, "matrix_precision": 1,
                                    "coordinates": {"num": 1, "dims": 2}}, 2)
    nal, rec = GfvSeiWriter(layout).write([0.5, -1.0], 0)
    # gfv_id ue(0)=1, gfv_cnt ue(0)=1, base 1, nn 0, chroma key 0, low confidence 0, coordinates 1,
    # kps_pred 0, precision_minus1 ue(0)=1, num_kps_minus1 ue(0)=1, z 0, x: ue(1)=010 sign 0,
    # y: int(-2 + 0.5) = -1: ue(1)=010 sign 1, matrix_present 0, then alignment 1 000...
    bits = "11" "1" "0" "0" "0" "1" "0" "1" "1" "0" "0100" "0101" "0" "1"
    bits += "0" * (-len(bits) % 8)
    payload = int(bits, 2).to_bytes(len(bits) // 8, "big")
    assert nal == b"\x00\xb9" + bytes([sei.PAYLOAD_TYPE, len(payload)]) + payload + b"\x80"
    assert list(rec) == [0.5, -0.5]


def test_emulation_prevention_round_trips():
    layout = SeiLayout.from_config({"coordinate_precision": 32, "matrix_precision": 32,
                                    "matrices": [{"type_idx": 2, "offset": 0, "width": 4, "height": 1}]}, 4)
    writer, parser = GfvSeiWriter(layout), GfvSeiParser(layout, 4)
    nal, rec = writer.write(np.zeros(4), 0)  # u(32) zero fractions: runs of zero bytes
    assert b"\x00\x00\x03" in nal
    assert np.array_equal(parser.read(nal, 0), rec)


def test_bad_layouts_and_messages_are_refused():
    with pytest.raises(ValueError, match="each must be covered once"):
        SeiLayout.from_config(LAYOUTS["fomm"][0], 61)
    config, size = LAYOUTS["cfte"]
    layout = SeiLayout.from_config(config, size)
    writer = GfvSeiWriter(layout)
    nal, _ = writer.write(np.zeros(size), 0)
    inter, _ = writer.write(np.ones(size), 1)
    with pytest.raises(SeiError, match="predicted picture before any base"):
        GfvSeiParser(layout, size).read(inter, 1)
    with pytest.raises(SeiError, match="truncated or corrupted|ends inside"):
        GfvSeiParser(layout, size).read(nal[:-2], 0)
    other = SeiLayout.from_config({**config, "matrix_precision": 3}, size)
    with pytest.raises(SeiError, match="do not match the layout"):
        GfvSeiParser(other, size).read(nal, 0)
