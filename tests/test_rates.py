"""The CTC bitrate formula: all bits, the sequence's own frame count and frame rate."""

import pytest

from ctc.rates import kbps


def test_kbps_uses_the_sequences_own_frames_and_fps():
    assert kbps(1_000_000, frames=250, fps=25) == pytest.approx(100.0)
    assert kbps(1_000_000, frames=125, fps=25) == pytest.approx(200.0)
    assert kbps(1_000_000, frames=250, fps=30) == pytest.approx(120.0)
    assert kbps(8 * 1234, frames=3, fps=29.97) == pytest.approx(8 * 1234 / 1000 * 29.97 / 3)


@pytest.mark.parametrize(
    ("bits", "frames", "fps", "message"),
    [(100, 0, 25, "at least one frame"), (100, 10, 0, "positive frame rate"), (-1, 10, 25, "negative")],
)
def test_kbps_rejects_impossible_inputs(bits, frames, fps, message):
    with pytest.raises(ValueError, match=message):
        kbps(bits, frames, fps)


def test_kbps_at_the_edges_of_the_valid_inputs():
    """One frame, a frame rate below 1 fps and an empty bitstream are valid (the limits of the checks)."""
    assert kbps(8000, frames=1, fps=25) == pytest.approx(200.0)
    assert kbps(8000, frames=2, fps=0.5) == pytest.approx(2.0)
    assert kbps(0, frames=10, fps=25) == 0.0
