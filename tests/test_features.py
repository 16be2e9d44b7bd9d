"""Coding one GOP's features (models.features) on vectors small enough to quantise by hand: the ``ae``
residuals against the previous *reconstruction* and their reconstruction, the ``sei`` messages' closed
loop, and the frame a bad payload is reported at."""

from __future__ import annotations

import numpy as np
import pytest

from models import entropy
from models.bitstream import BitstreamError
from models.features import code_ae, code_sei, decode
from models.sei_layout import SeiLayout

REFERENCE = np.array([0.0, 1.0])
DRIVING = np.array([[0.3, 0.9], [0.3, 1.2]])
# q_step 4. Frame 1: residuals (0.3, -0.1) x 4 = (1.2, -0.4), quantised (1, 0), reconstruction
# (0.25, 1.0). Frame 2: residuals from that reconstruction (0.05, 0.2) x 4 = (0.2, 0.8), quantised
# (0, 1), reconstruction (0.25, 1.25). (Against the previous *input* frame they would be (0, 0.3 x 4).)
VALUES = [[1, 0], [0, 1]]
RECONSTRUCTION = [[0.25, 1.0], [0.25, 1.25]]


def test_ae_quantises_each_residual_against_the_previous_reconstruction() -> None:
    payloads, recon = code_ae(REFERENCE, DRIVING, 4.0)
    assert payloads == [b"", *(entropy.encode_values(values) for values in VALUES)]
    assert recon.dtype == np.float64 and recon.tolist() == RECONSTRUCTION
    decoded = decode(payloads, REFERENCE, "ae", 4.0, None, "f.gfvc")
    assert decoded.dtype == np.float64 and decoded.tolist() == RECONSTRUCTION


def test_a_gop_of_its_key_frame_alone_has_no_features() -> None:
    payloads, recon = code_ae(REFERENCE, DRIVING[:0], 4.0)
    assert payloads == [b""] and recon.shape == (0, 2)
    assert decode(payloads, REFERENCE, "ae", 4.0, None, "f.gfvc").shape == (0, 2)


def test_a_bad_ae_payload_is_refused_naming_its_frame() -> None:
    """The GOP's key frame is frame 8: its inter frames are 9 and 10."""
    payloads, _ = code_ae(REFERENCE, DRIVING, 4.0)
    with pytest.raises(BitstreamError) as error:
        decode([b"\x80", *payloads[1:]], REFERENCE, "ae", 4.0, None, "f.gfvc", start=8)
    assert str(error.value) == "f.gfvc: key frame 8 carries a feature payload in ae mode"
    with pytest.raises(BitstreamError) as error:  # a stream's first GOP: its key frame is frame 0
        decode([b"\x80"], REFERENCE, "ae", 4.0, None, "f.gfvc")
    assert str(error.value) == "f.gfvc: key frame 0 carries a feature payload in ae mode"
    three = entropy.encode_values([1, 0, 0])
    with pytest.raises(BitstreamError) as error:
        decode([b"", payloads[1], three], REFERENCE, "ae", 4.0, None, "f.gfvc", start=8)
    assert str(error.value) == "f.gfvc: frame 10: feature payload holds 3 values, expected 2"


# one keypoint (x, y), 6 fractional bits: each coordinate coded as the integer part of 64 x its change from
# the previous reconstruction, plus 0.5 (VTM's rounding: the integer part truncates toward zero).
SEI_LAYOUT = SeiLayout.from_config(
    {"coordinate_precision": 6, "matrix_precision": 6, "coordinates": {"num": 1, "dims": 2}}, 2
)
# frame 1, from the key frame's (0, 1): 64 x (0.3, -0.1) + 0.5 = (19.7, -5.9) -> (19, -5);
# frame 2: 64 x (0.003125, 0.278125) + 0.5 = (0.7, 18.3) -> (0, 18) -> (0.296875, 1.203125)
SEI_RECONSTRUCTION = [[19 / 64, 1 - 5 / 64], [19 / 64, 1 - 5 / 64 + 18 / 64]]


def test_sei_messages_carry_the_features_in_steps_of_their_precision_and_decode_to_the_same() -> None:
    payloads, recon = code_sei(REFERENCE, DRIVING, SEI_LAYOUT)
    assert len(payloads) == 3 and recon.dtype == np.float64 and recon.tolist() == SEI_RECONSTRUCTION
    decoded = decode(payloads, REFERENCE, "sei", 4.0, SEI_LAYOUT, "f.266", start=8)
    assert decoded.tolist() == SEI_RECONSTRUCTION
    with pytest.raises(BitstreamError) as error:
        decode([payloads[0], payloads[1], payloads[1]], REFERENCE, "sei", 4.0, SEI_LAYOUT, "f.266", start=8)
    assert str(error.value).startswith("f.266: frame 10: ")
