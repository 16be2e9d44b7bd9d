"""testset=rehearsal: the CTC's shape, generated with the frames a run needs only."""

from __future__ import annotations

from collections import Counter

import numpy as np

from ctc.testset.sequences import declared_specs, load_test_set


def shape(name: str) -> Counter:
    """How many sequences of each (frames, width, height, fps), and how many classes."""
    specs = declared_specs(name, root="/unused")  # the declarations only: no file is read
    return Counter((s.frames, s.width, s.height, s.fps) for s in specs) + Counter(
        {"classes": len({s.seq_class for s in specs})}
    )


def test_the_rehearsal_has_the_ctcs_shape():
    assert shape("rehearsal") == shape("ctc")


def test_only_the_frames_a_run_needs_are_built_and_more_are_built_when_asked(tmp_path):
    names = ["REHEARSAL_A01", "REHEARSAL_B15"]
    config = {"name": "rehearsal", "root": str(tmp_path), "sequences": names}
    three = load_test_set({**config, "frames": 3})
    assert [spec.frames for spec in three] == [3, 3]
    assert all(spec.path.stat().st_size == 3 * spec.frame_bytes for spec in three)
    first = [spec.read().copy() for spec in three]
    five = load_test_set({**config, "frames": 5})  # the files are too short: built again
    assert all(spec.path.stat().st_size == 5 * spec.frame_bytes for spec in five)
    for before, spec in zip(first, five, strict=True):
        np.testing.assert_array_equal(spec.read()[:3], before)  # the same motion, frame for frame
    assert not np.array_equal(first[0], first[1])  # two sequences, two motions
