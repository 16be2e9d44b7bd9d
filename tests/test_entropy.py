"""The GFVC feature entropy coder against the common software's bytes (../shared/golden/entropy)."""

from __future__ import annotations

import json

import pytest

from models import entropy


@pytest.fixture(scope="module")
def cases(shared):
    path = shared / "golden" / "entropy" / "cases.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return json.loads(path.read_text())


def test_every_case_is_bit_exact(cases):
    assert len(cases) == 20
    for case in cases:
        values = case["values"]
        bits = entropy.binarise(values)
        assert "".join(map(str, bits)) == case["binarized_bitstring"], case["name"]
        data, written = entropy.encode_bits(bits)
        assert data.hex() == case["bytes_hex"], case["name"]
        assert written == case["bits_written_before_zero_padding"], case["name"]
        assert 8 * len(data) == case["bits_as_counted_by_gfvc"], case["name"]
        assert entropy.encode_values(values) == data
        assert entropy.decode_values(data, len(values)) == case["decoded_values"] == values, case["name"]


def test_quantisation_matches_the_common_software_including_ties(cases):
    quantised = [c for c in cases if c["residual_floats"] is not None]
    assert {c["name"] for c in quantised} >= {"quant_ties_q64", "cfte_tiny_residual_q4"}
    for case in quantised:
        assert entropy.quantise(case["residual_floats"], case["q_step"]) == case["values"], case["name"]
    assert entropy.quantise([0.5 / 64, 1.5 / 64, -0.5 / 64, -2.5 / 64], 64) == [0, 2, 0, -2]


def test_sign_mapping_and_exp_golomb():
    assert [entropy.sign_map(v) for v in (0, 1, -1, 2, -2)] == [0, 1, 2, 3, 4]
    assert [entropy.sign_unmap(n) for n in range(5)] == [0, 1, -1, 2, -2]
    assert [entropy.exp_golomb(n) for n in (0, 1, 2, 3)] == [[1], [0, 1, 0], [0, 1, 1], [0, 0, 1, 0, 0]]


def test_long_and_wide_values_round_trip():
    values = [(-1) ** i * (i * 7919 % 5000) for i in range(600)] + [2**30, -(2**30)]
    assert entropy.decode_values(entropy.encode_values(values)) == values


def test_count_mismatch_and_garbage_are_refused():
    data = entropy.encode_values([3, -1, 0])
    with pytest.raises(entropy.EntropyError, match="holds 3 values, expected 4"):
        entropy.decode_values(data, 4)
    with pytest.raises(entropy.EntropyError):
        entropy.decode_values(b"\x00" * 4, 60)
