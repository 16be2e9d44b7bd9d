"""models/keyframes.py: where a GFVC codec codes key frames, against hand-computed PSNRs and running means."""

from __future__ import annotations

import numpy as np
import pytest

from ctc.conf import load_section
from models import keyframes
from models.keyframes import KeyFramePolicy, psnr

BLACK = np.zeros((2, 2, 3), np.uint8)
WHITE = np.full((2, 2, 3), 255, np.uint8)
ONE_GOP = KeyFramePolicy(None, "psnr", None)  # no key frame but the first, no adaptive refresh


def test_psnr_of_uint8_pictures_by_hand() -> None:
    """An MSE of 25 is 10 log10(255^2 / 25) = 10 log10(2601) = 34.1514 dB; 10 - 0 must not wrap in uint8
    (0 - 10 would be 246 there, an MSE of 4 * 246^2 / 12)."""
    decoded = BLACK.copy()
    decoded[0, 0] = 10  # 3 samples of 12 off by 10: MSE 300 / 12 = 25
    assert psnr(BLACK, decoded) == pytest.approx(34.15140352, abs=1e-8)
    assert psnr(BLACK, WHITE) == pytest.approx(0.0, abs=1e-12)  # MSE 255^2
    assert psnr(WHITE, WHITE) == 100.0  # identical: capped


def test_psnr_is_higher_is_better_for_refresh() -> None:
    assert keyframes.REFRESH_METRICS["psnr"] == (psnr, False)


@pytest.fixture(scope="module")
def base() -> dict:
    """The GFVC base config: the one place the key-frame settings' defaults are written."""
    return load_section("gfvc", "base")


def test_policy_from_config_defaults_and_conversions(base) -> None:
    assert KeyFramePolicy.from_config(base, "m") == ONE_GOP
    with pytest.raises(KeyError, match="gop_size"):  # no default in code: the config must set it
        KeyFramePolicy.from_config({"refresh": base["refresh"]}, "m")
    policy = KeyFramePolicy.from_config(
        {"gop_size": "8", "refresh": {"metric": "psnr", "threshold": "30"}}, "m"
    )
    assert policy == KeyFramePolicy(8, "psnr", 30.0)
    assert type(policy.gop_size) is int and type(policy.refresh_threshold) is float
    assert KeyFramePolicy.from_config({**base, "gop_size": 1}, "m").gop_size == 1  # smallest GOP


def test_policy_from_config_refuses_bad_values_by_name(base) -> None:
    with pytest.raises(ValueError) as error:
        KeyFramePolicy.from_config({**base, "gop_size": 0}, "model fomm")
    assert str(error.value) == "model fomm: gop_size 0: expected a positive number of frames or null"
    with pytest.raises(ValueError) as error:
        KeyFramePolicy.from_config({**base, "refresh": {"metric": "ssim", "threshold": None}}, "model fomm")
    assert str(error.value) == "model fomm: refresh.metric 'ssim': expected one of ['psnr']"


def test_gop_end() -> None:
    assert ONE_GOP.gop_end(0, 20) == 20  # one GOP: the whole sequence
    every_8 = KeyFramePolicy(8, "psnr", None)
    assert every_8.gop_end(0, 20) == 8
    assert every_8.gop_end(16, 20) == 20  # the last GOP is cut by the sequence's end
    assert every_8.gop_end(8, 16) == 16


def _gop(*animated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Originals all black; decoded: a key frame that is all wrong (the key frame is never measured),
    then ``animated``."""
    decoded = np.stack([WHITE, *animated])
    return np.zeros_like(decoded), decoded


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        # animated frames' PSNRs 100, 0, 0: running means 100, 50, 33.3 (the key frame, 0 dB, not counted)
        (None, None),
        (33.0, None),  # never below
        (100.0, 2),  # 100 is not below 100; 50 is
        (100.5, 1),
        (50.0, 3),  # 50 is not below 50; 33.3 is
        (50.01, 2),
        (33.34, 3),
    ],
)
def test_refresh_at_the_first_frame_where_the_running_mean_falls_below(threshold, expected) -> None:
    originals, decoded = _gop(BLACK, WHITE, WHITE)
    assert KeyFramePolicy(None, "psnr", threshold).refresh_at(originals, decoded) == expected


def test_refresh_for_a_lower_is_better_metric(monkeypatch: pytest.MonkeyPatch) -> None:
    """A metric where lower is better refreshes where the running mean rises above the threshold:
    here the fraction of wrong samples, 0, 1, 1 over the animated frames (means 0, 0.5, 0.667)."""

    def wrong(original: np.ndarray, decoded: np.ndarray) -> float:
        return float(np.mean(original != decoded))

    monkeypatch.setitem(keyframes.REFRESH_METRICS, "wrong", (wrong, True))
    originals, decoded = _gop(BLACK, WHITE, WHITE)
    policy = KeyFramePolicy.from_config(
        {"gop_size": None, "refresh": {"metric": "wrong", "threshold": 0.5}}, "m"
    )
    assert policy.refresh_at(originals, decoded) == 3  # 0.5 is not above 0.5
    assert KeyFramePolicy(None, "wrong", 0.49).refresh_at(originals, decoded) == 2
    assert KeyFramePolicy(None, "wrong", 0.7).refresh_at(originals, decoded) is None
