"""The GFV SEI feature-coding mode: VTM 23.13's syntax, prediction, NAL wrapping, refusals.

What VTM 23.13 itself reads from our messages, and what we read from its messages, is checked
against the real reference software in ``test_gfv_vtm.py``; here, the syntax bit by bit where VTM's
source fixes it, and the options our writer uses only on demand.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from models.sei import ChromaKey, GfvMessage, GfvState, MatrixSet, NeuralNetwork, write_gfv
from models.sei_layout import GfvSeiParser, GfvSeiWriter, SeiLayout, gfv_payload_bits
from models.sei_nal import SUFFIX_SEI_NUT, BitWriter, SeiError, parse_sei_nal, sei_nal_unit
from models.sei_parse import parse_gfv

LAYOUTS = {  # the layouts of ctc/conf/codec/{fomm,cfte,fv2v}.yaml
    "fomm": (
        {
            "coordinate_precision": 6,
            "matrix_precision": 6,
            "coordinates": {"num": 10, "dims": 2},
            "matrices": [{"type_idx": 0, "offset": 20}],
        },
        60,
    ),
    "cfte": (
        {
            "coordinate_precision": 2,
            "matrix_precision": 2,
            "matrices": [{"type_idx": 2, "offset": 0, "width": 4, "height": 4}],
        },
        16,
    ),
    "fv2v": (
        {
            "coordinate_precision": 8,
            "matrix_precision": 8,
            "coordinates": {"num": 15, "dims": 3, "offset": 12},
            "matrices": [{"type_idx": 4, "offset": 0}, {"type_idx": 5, "offset": 9}],
        },
        57,
    ),
}


def sequence(size: int, frames: int = 6) -> np.ndarray:
    rng = np.random.default_rng(size)
    return np.cumsum(rng.normal(scale=0.03, size=(frames, size)), axis=0) + rng.normal(scale=0.5, size=size)


def bits_to_bytes(bits: str) -> bytes:
    if len(bits) % 8:
        bits += "1" + "0" * (-(len(bits) + 1) % 8)  # payload alignment
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


@pytest.mark.parametrize("base_kps_pred", [False, True])
@pytest.mark.parametrize("model", sorted(LAYOUTS))
def test_round_trip_is_exact_and_close(model, base_kps_pred):
    config, size = LAYOUTS[model]
    layout = SeiLayout.from_config({**config, "base_kps_pred": base_kps_pred}, size)
    writer, parser = GfvSeiWriter(layout), GfvSeiParser(layout, size)
    step = 1.0 / (1 << layout.coordinate_precision)
    for count, features in enumerate(sequence(size)):
        nal, rec = writer.write(features, count)
        assert np.array_equal(parser.read(nal, count), rec)
        assert np.abs(rec - features).max() <= 1.5 * step  # int(x + 0.5) truncates toward zero
        assert nal[:2] == bytes([0, SUFFIX_SEI_NUT << 3 | 1]) and gfv_payload_bits(nal) < 8 * len(nal)


def test_known_syntax_of_a_base_and_a_predicted_message():
    layout = SeiLayout.from_config(
        {"coordinate_precision": 1, "matrix_precision": 1, "coordinates": {"num": 1, "dims": 2}}, 2
    )
    writer = GfvSeiWriter(layout)
    nal, rec = writer.write([0.5, -1.0], 0)
    # gfv_id ue(0), gfv_cnt ue(0), base 1, nn 0, chroma key 0, low confidence 0, coordinates 1,
    # kps_pred 0, precision_minus1 ue(0), num_kps_minus1 ue(0), z 0, x: ue(1)=010 sign 0,
    # y: int(-2 + 0.5) = -1: ue(1)=010 sign 1, matrix_present 0
    payload = bits_to_bytes("11100010110010001010")
    assert nal == b"\x00\xc1" + bytes([223, len(payload)]) + payload + b"\x80"
    assert list(rec) == [0.5, -0.5]
    nal, rec = writer.write([1.0, -0.5], 1)
    # gfv_id ue(0), gfv_cnt ue(1)=010, no base flag, no gfv_fusion_pic_flag (gfv_cnt > 0), low
    # confidence 0, coordinates 1, kps_pred 1, dx = 0.5: ue(1) sign 0, dy = 0: ue(0), matrix_present 0
    payload = bits_to_bytes("1010011010010")
    assert nal == b"\x00\xc1" + bytes([223, len(payload)]) + payload + b"\x80"
    assert list(rec) == [1.0, -0.5]


def test_every_element_vtm_can_write_is_read():
    """The options our writer does not use for the models, written as VTM's writer does, read back."""
    state = GfvState()
    coordinates = np.array([[0.25, -0.5], [0.75, 0.125], [-1.0, 2.0]])
    base = GfvMessage(
        gfv_id=5,
        cnt=0,
        base=True,
        nn=NeuralNetwork(1, "tag", "urn:face"),
        chroma_key=ChromaKey(1, (22, None, 255), 21, 22),
        kps_pred=1,
        coordinate_precision=3,
        coordinates=coordinates,
        matrix_precision=4,
        matrices=[
            MatrixSet(0, np.full((2, 2, 2), 0.5), num_matrices_info=1),
            MatrixSet(7, np.arange(12.0).reshape(2, 2, 3) / 8),
            MatrixSet(3, np.array([[[-0.0625, 1.5]]])),
        ],
    )
    fusion = GfvMessage(
        gfv_id=5,
        cnt=0,
        base=False,
        fusion_pic_flag=1,
        kps_pred=1,
        coordinates=coordinates + 0.5,
        matrix_pred=1,
        matrices=[MatrixSet(m.type_idx, m.values + 0.25) for m in base.matrices],
    )
    network = GfvMessage(
        cnt=0,
        base=True,
        nn=NeuralNetwork(0, payload=b"\x01\x02NNR"),
        kps_pred=0,
        coordinate_precision=2,
        coordinates=None,
        matrix_precision=2,
        matrices=[MatrixSet(4, np.eye(3)[None], space_3d=1), MatrixSet(5, np.ones((1, 2, 1)), space_3d=0)],
    )
    read_state = GfvState()
    for message in (base, fusion, network):
        payload, rec = write_gfv(message, state)
        nal = sei_nal_unit([(223, payload)])
        (parsed,) = parse_sei_nal(nal)
        got = parse_gfv(parsed.payload, read_state)
        assert (got.gfv_id, got.cnt, got.base, got.nn, got.chroma_key, got.fusion_pic_flag) == (
            rec.gfv_id,
            rec.cnt,
            rec.base,
            rec.nn,
            rec.chroma_key,
            rec.fusion_pic_flag,
        )
        assert (got.coordinates is None) == (rec.coordinates is None)
        if got.coordinates is not None:
            assert np.array_equal(got.coordinates, rec.coordinates)
        assert [(m.type_idx, m.space_3d, m.num_matrices_info) for m in got.matrices] == [
            (m.type_idx, m.space_3d, m.num_matrices_info) for m in rec.matrices
        ]
        for mine, theirs in zip(got.matrices, rec.matrices, strict=True):
            assert np.array_equal(mine.values, theirs.values)
    assert np.array_equal(base.coordinates, coordinates)  # the base keypoints are exact at precision 3
    assert got.nn.payload == b"\x01\x02NNR"
    # gfv_num_matrices_info 1 with 3 keypoints: 2 matrices (info + 1, as info < num_kps - 1)
    (again,) = parse_sei_nal(sei_nal_unit([(223, write_gfv(base, GfvState())[0])]))
    assert parse_gfv(again.payload, GfvState()).matrices[0].values.shape == (2, 2, 2)


def test_emulation_prevention_round_trips():
    layout = SeiLayout.from_config(
        {
            "coordinate_precision": 32,
            "matrix_precision": 32,
            "matrices": [{"type_idx": 2, "offset": 0, "width": 4, "height": 1}],
        },
        4,
    )
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
    with pytest.raises(SeiError, match="gfv_matrix_pred_flag 1 before any base picture"):
        GfvSeiParser(layout, size).read(inter, 1)
    with pytest.raises(SeiError, match="truncated or corrupted|ends inside"):
        GfvSeiParser(layout, size).read(nal[:-2], 0)
    reshaped = [{**config["matrices"][0], "width": 2, "height": 8}]
    other = SeiLayout.from_config({**config, "matrices": reshaped}, size)
    with pytest.raises(SeiError, match=r"gfv_matrix_type_idx, count, height, width\) \[\(2, 1, 4, 4\)\]"):
        GfvSeiParser(other, size).read(nal, 0)
    fomm = SeiLayout.from_config(*LAYOUTS["fomm"])
    with pytest.raises(SeiError, match="gfv_coordinate_present_flag 0: the model's layout has 10 keypoints"):
        GfvSeiParser(fomm, 60).read(nal, 0)
    with pytest.raises(SeiError, match="gfv_cnt 1, expected 2"):
        parser = GfvSeiParser(layout, size)
        parser.read(nal, 0)
        parser.read(inter, 2)


def test_messages_the_writer_cannot_code_are_refused_by_what_they_lack():
    with pytest.raises(ValueError) as error:
        write_gfv(GfvMessage(cnt=1, base=False, coordinates=np.zeros((1, 2))), GfvState())
    assert str(error.value) == "a GFV message with gfv_cnt > 0 needs a base picture before it"
    with pytest.raises(ValueError) as error:
        write_gfv(GfvMessage(), GfvState())
    assert str(error.value) == "a GFV message needs coordinates or matrices"


@pytest.mark.parametrize(("z_max_value", "z_bits"), [(None, "1"), (3, "011")])
def test_known_syntax_of_a_3d_low_confidence_base_picture(z_max_value, z_bits):
    """gfv_id ue(0), gfv_cnt ue(0), base 1, nn 0, chroma key 0, low confidence 1, coordinates 1, kps_pred 0,
    precision_minus1 ue(0), num_kps_minus1 ue(0), z flag 1, z max minus1 (none: 1, ue(0)), x, y, z ue(0),
    matrix_present 0. The state keeps the z maximum of 3-D coordinates only."""
    message = GfvMessage(low_confidence=1, coordinate_precision=1, z_max_value=z_max_value)
    state = GfvState()
    out, _ = write_gfv(replace(message, coordinates=np.zeros((1, 3))), state)
    bits = "11100" + "11" + "0" + "11" + "1" + z_bits + "111" + "0"
    assert "".join(f"{byte:08b}" for byte in out.to_bytes()) == bits.ljust(-(-len(bits) // 8) * 8, "0")
    assert state.coordinate_params == (1, 1, 3, z_max_value)
    flat = GfvState()
    write_gfv(replace(message, coordinates=np.zeros((1, 2))), flat)
    assert flat.coordinate_params == (1, 1, 2, None)


def test_unpredicted_matrix_elements_round_their_fraction_and_clip_it_as_vtm():
    """Precision 1 (halves): 0.25 -> 0 + int(0.5 + 0.5) = 1 half; 0.8 -> int(1.6 + 0.5) = 2 halves, clipped
    to 1 (no carry into the integer part); -0.2 -> int(0.4 + 0.5) = 0: zero, no sign; 1.75 -> 1 + 1 half."""
    message = GfvMessage(matrix_precision=1, matrices=[MatrixSet(4, np.array([[[0.25, 0.8], [-0.2, 1.75]]]))])
    _, rec = write_gfv(message, GfvState())
    assert rec.matrices[0].values.tolist() == [[[0.5, 0.5], [0.0, 1.5]]]


def ue(value: int) -> str:
    """Exp-Golomb ue(v) (H.266 9.2): value + 1 in binary after as many zeros as it has bits less one."""
    code = f"{value + 1:b}"
    return "0" * (len(code) - 1) + code


BASE_HEAD = (
    "1" + "1" + "1" + "0"
)  # gfv_id ue(0), gfv_cnt ue(0), gfv_base_picture_flag 1, gfv_nn_present_flag 0


def matrix_message(type_idx: int, count: int, height: int, width: int, precision: int = 1) -> str:
    """A base picture with chroma key and coordinates absent and one matrix type of zeros."""
    size = (ue(count - 1) if type_idx >= 7 else "") + ue(width - 1) + ue(height - 1)
    head = BASE_HEAD + "0" + "0" + "0" + "1" + ue(precision - 1) + ue(0) + f"{type_idx:06b}" + size
    return head + ("1" + "0" * precision) * (count * height * width)


def test_the_readers_limits_are_h266s_ranges_inclusive():
    """VTM 23.13 / H.266 ranges: gfv_chroma_key_purpose_idc 0..2, gfv_chroma_key_thr_upper_delta_minus1
    0..255, the precision factors minus1 0..31, a matrix type's count, width and height at most 2^10: the
    last value inside is read, the first outside refused, naming the element."""
    one_zero = "1" + ue(0) + ue(0) + "000011" + ue(0) + ue(0) + "10"  # matrix_present 1, a 1x1 type 3: 0
    chroma = BASE_HEAD + "1" + "{purpose}" + "000" + "{threshold}" + "0" + "0" + one_zero
    with pytest.raises(SeiError, match="gfv_matrix_present_flag is 0 with gfv_coordinate_present_flag 0"):
        parse_gfv(bits_to_bytes(BASE_HEAD + "0" + "0" + "0" + "0"), GfvState())
    parsed = parse_gfv(bits_to_bytes(chroma.format(purpose=ue(2), threshold="0")), GfvState())
    assert parsed.chroma_key == ChromaKey(2, (None, None, None))
    with pytest.raises(SeiError, match="gfv_chroma_key_purpose_idc 3 is outside 0..2"):
        parse_gfv(bits_to_bytes(chroma.format(purpose=ue(3), threshold="0")), GfvState())
    threshold = "1" + "00000101" + "{}"  # thr_present 1, thr_lower u(8) 5, upper delta minus1 ue
    parsed = parse_gfv(
        bits_to_bytes(chroma.format(purpose=ue(0), threshold=threshold.format(ue(255)))), GfvState()
    )
    assert parsed.chroma_key == ChromaKey(0, (None, None, None), 5, 255)
    with pytest.raises(SeiError, match="gfv_chroma_key_thr_upper_delta_minus1 256 is outside 0..255"):
        parse_gfv(
            bits_to_bytes(chroma.format(purpose=ue(0), threshold=threshold.format(ue(256)))), GfvState()
        )
    # coordinates present, kps_pred 0, precision minus1, one 3-D keypoint with z max minus1 ue(2): z max 3
    coordinates = BASE_HEAD + "0" + "0" + "1" + "0" + "{}" + ue(0) + "1" + ue(2) + "111" + "0"
    parsed = parse_gfv(bits_to_bytes(coordinates.format(ue(31))), GfvState())
    assert (parsed.coordinate_precision, parsed.z_max_value, parsed.coordinates.tolist()) == (
        32,
        3,
        [[0, 0, 0]],
    )
    with pytest.raises(SeiError, match="gfv_coordinate_precision_factor_minus1 32 is outside 0..31"):
        parse_gfv(bits_to_bytes(coordinates.format(ue(32))), GfvState())
    assert parse_gfv(bits_to_bytes(matrix_message(3, 1, 1, 1, 32)), GfvState()).matrix_precision == 32
    with pytest.raises(SeiError, match="gfv_matrix_element_precision_factor_minus1 32 is outside 0..31"):
        parse_gfv(bits_to_bytes(matrix_message(3, 1, 1, 1, 33)), GfvState())
    for count, height, width in [(1024, 1, 1), (1, 1024, 1), (1, 1, 1024)]:
        (matrix,) = parse_gfv(bits_to_bytes(matrix_message(7, count, height, width)), GfvState()).matrices
        assert matrix.values.shape == (count, height, width)
    for count, height, width in [(1025, 1, 1), (1, 1025, 1), (1, 1, 1025)]:
        with pytest.raises(SeiError, match=f"{count} x {height} x {width}: each must be at most 2\\^10"):
            parse_gfv(bits_to_bytes(matrix_message(7, count, height, width)), GfvState())


def test_a_fusion_picture_predicts_from_the_base_picture_not_the_previous_message():
    """A non-base message with gfv_cnt 0 predicts keypoints and matrices from the base picture; gfv_cnt 1
    from the message before. Precision 1 (halves): base x 2 halves = 1.0 and matrix element int 1 = 1.0;
    the gfv_cnt 1 message adds 0.5 to each (1.5); the fusion picture adds 0: 1.0 again, not 1.5."""
    base = BASE_HEAD + "0" + "0" + "1" + "0" + ue(0) + ue(0) + "0" + ue(2) + "0" + ue(0)  # x 2 halves, y 0
    base += "1" + ue(0) + ue(0) + "000011" + ue(0) + ue(0) + ue(1) + "0" + "0"  # a 1x1 type 3: int 1, dec 0
    # gfv_cnt ue(1), low confidence 0, coordinates 1, kps_pred 1, dx ue(1) sign 0, dy ue(0);
    # matrices 1, matrix_pred 1, delta int ue(0), delta dec ue(1), sign 0
    second = "1" + ue(1) + "0" + "1" + "1" + ue(1) + "0" + ue(0) + "1" + "1" + ue(0) + ue(1) + "0"
    # gfv_cnt ue(0), base 0, fusion 0, low confidence 0, coordinates 1, kps_pred 1, dx dy ue(0); matrices 1,
    # matrix_pred 1, delta int and dec ue(0): a zero delta, no sign flag
    fusion = "1" + ue(0) + "0" + "0" + "0" + "1" + "1" + ue(0) + ue(0) + "1" + "1" + ue(0) + ue(0)
    state = GfvState()
    read = [parse_gfv(bits_to_bytes(bits), state) for bits in (base, second, fusion)]
    assert [(m.cnt, m.base) for m in read] == [(0, True), (1, False), (0, False)]
    assert [m.coordinates.tolist() for m in read] == [[[1.0, 0.0]], [[1.5, 0.0]], [[1.0, 0.0]]]
    assert [m.matrices[0].values.tolist() for m in read] == [[[[1.0]]], [[[1.5]]], [[[1.0]]]]


def test_layouts_from_config_take_the_documented_defaults_and_shapes():
    """Keypoints default to 2-D, gfv_id to 0, base_kps_pred to off; without keypoints a type 4 matrix is
    3x3 with space_3d and 2x2 without, type 5 and 6 are 3x1 / 2x1 columns, types >= 7 take count (1 by
    default), height and width; z max value 1 for 3-D keypoints (the module's stated guess)."""
    flat = SeiLayout.from_config(
        {"coordinate_precision": 1, "matrix_precision": 1, "coordinates": {"num": 1}}, 2
    )
    assert (flat.num_kps, flat.dims, flat.gfv_id, flat.base_kps_pred) == (1, 2, 0, False)
    assert flat.message(np.zeros(2), 0).z_max_value is None
    config = {"coordinate_precision": 32, "matrix_precision": 32, "id": 7, "base_kps_pred": True}
    deep = SeiLayout.from_config({**config, "coordinates": {"num": 1, "dims": 3}}, 3)
    base, second = deep.message(np.zeros(3), 0), deep.message(np.zeros(3), 1)
    assert (base.gfv_id, base.kps_pred, base.z_max_value, second.kps_pred) == (7, 1, 1, 1)
    matrices = [
        {"type_idx": 4, "offset": 0, "space_3d": 1},
        {"type_idx": 4, "offset": 9},
        {"type_idx": 5, "offset": 13, "space_3d": 1},
        {"type_idx": 6, "offset": 16},
        {"type_idx": 7, "offset": 18, "height": 1, "width": 2},
        {"type_idx": 63, "offset": 20, "count": 2, "height": 1, "width": 1},
    ]
    layout = SeiLayout.from_config({**config, "matrices": matrices}, 22)
    assert [(m.count, m.height, m.width) for m in layout.matrices] == [
        (1, 3, 3),
        (1, 2, 2),
        (1, 3, 1),
        (1, 2, 1),
        (1, 1, 2),
        (2, 1, 1),
    ]


@pytest.mark.parametrize(
    ("change", "size", "message"),
    [
        ({"coordinates": {"num": 1, "dims": 4}}, 4, "sei.coordinates.dims must be 2 or 3, got 4"),
        (
            {"matrices": [{"type_idx": 64, "offset": 0, "height": 1, "width": 1}]},
            1,
            "type_idx 64 is outside 0..63",
        ),
        ({"matrices": [{"type_idx": 1, "offset": 0}]}, 0, "sei matrix type 1 needs coordinates"),
        ({"matrices": [{"type_idx": 0, "offset": 0}]}, 0, "sei matrix type 0 needs coordinates"),
        (
            {"coordinates": {"num": 1}, "coordinate_precision": 33},
            2,
            "sei precision factor 33 is outside 1..32",
        ),
        ({"coordinates": {"num": 1}, "matrix_precision": 0}, 2, "sei precision factor 0 is outside 1..32"),
    ],
)
def test_layouts_outside_the_syntax_are_refused(change, size, message):
    """gfv_matrix_type_idx is u(6): 0..63; the precision factors minus1 are 0..31; types 0 and 1 are one
    matrix per keypoint."""
    with pytest.raises(ValueError) as error:
        SeiLayout.from_config({"coordinate_precision": 1, "matrix_precision": 1, **change}, size)
    assert message in str(error.value)


def test_gfv_payload_bits_count_the_gfv_payloads_only():
    """8 bits per payload byte of type 223 (3 + 2 bytes here); another payload type (5, user data) is not
    counted, nor the NAL and SEI headers."""

    def payload(size: int) -> BitWriter:
        writer = BitWriter()
        writer.bits = [0, 1] * (4 * size)  # whole bytes: no alignment bits added
        return writer

    nal = sei_nal_unit([(223, payload(3)), (5, payload(19)), (223, payload(2))])
    assert gfv_payload_bits(nal) == 40
