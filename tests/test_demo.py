"""The generated demo set: byte-identical on every run, equal to the md5s recorded in sequences.yaml."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ctc.hashing import compute_digest
from ctc.testset.demo import build_sequences, main, render
from ctc.testset.sequences import declared_specs, load_test_set


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GFVC_CACHE", str(tmp_path / "cache"))


@pytest.mark.slow
def test_generating_twice_gives_identical_bytes_and_the_recorded_md5(tmp_path, capsys):
    first, second = declared_specs("demo", root=tmp_path / "a"), declared_specs("demo", root=tmp_path / "b")
    build_sequences(first, {})
    assert main(["--root", str(tmp_path / "b")]) == 0  # the ctc-demo command
    assert capsys.readouterr().out.count("md5 ok") == 2
    for one, other in zip(first, second, strict=True):
        assert one.path.read_bytes() == other.path.read_bytes()
        assert one.path.stat().st_size == one.frames * one.frame_bytes
        assert compute_digest(one.path) == one.md5, f"{one.name} differs from the md5 in sequences.yaml"


def test_the_head_moves_smoothly():
    spec = replace(declared_specs("demo")[0], frames=13)
    frames = render(spec).astype(np.int16)
    step = np.abs(frames[1] - frames[0]).mean()
    assert 0.5 < step < np.abs(frames[12] - frames[0]).mean() / 2


def test_eyes_blink_and_mouth_opens_where_the_face_is():
    still = {
        "rotate_deg": 0,
        "shift_px": 0,
        "zoom": 0,
        "period_s": 1,
        "blinks_s": [0.0],
        "mouth_period_s": 0.48,
        "mirror": False,
    }
    spec = replace(declared_specs("demo")[0], frames=13, extra={"motion": still})
    frames = render(spec).astype(np.int16)
    # at 0.16 s the eyes are nearly shut and the mouth open; at 0.48 s both are back to rest
    rows, columns = np.nonzero(np.abs(frames[4] - frames[12]).sum(axis=0))
    assert len(rows) and (rows.max() - rows.min()) * (columns.max() - columns.min()) < 0.1 * 256 * 256
    eyes, mouth = rows[rows < 128], rows[rows >= 140]
    assert len(eyes) > 100 and len(mouth) > 100 and len(eyes) + len(mouth) == len(rows)
    np.testing.assert_array_equal(frames[0], frames[12])  # no motion: back to the same picture


def test_the_demo_set_is_built_once_into_the_cache_and_rebuilt_when_stale():
    specs = load_test_set({"name": "demo", "sequences": ["DEMO_002"], "frames": 10})
    assert [(spec.name, spec.frames, spec.fps) for spec in specs] == [("DEMO_002", 10, 25)]
    path = specs[0].path
    built = path.stat().st_mtime_ns
    load_test_set({"name": "demo", "sequences": ["DEMO_002"]})
    assert path.stat().st_mtime_ns == built
    with open(path, "r+b") as file:
        file.write(b"\x00\x01\x02")
    load_test_set({"name": "demo", "sequences": ["DEMO_002"]})
    assert compute_digest(path) == specs[0].md5
