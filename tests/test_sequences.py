"""Test sets of sequences.yaml: the CTC set's specs against a fake root, and every bad-file error."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf

from ctc.hashing import file_digest
from ctc.paths import PROJECT_ROOT
from ctc.testset.sequences import SequenceError, declared_specs, load_test_set, read_test_sets

FRAME_BYTES = 256 * 256 * 3


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GFVC_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GFVC_SEQUENCES", raising=False)


def fake_ctc_root(folder: Path, frames: int = 1) -> Path:
    """Every CTC file, holding ``frames`` frames only (the real ones are 49 MB each)."""
    folder.mkdir()
    for spec in declared_specs("ctc", root=folder):
        spec.path.write_bytes(bytes(frames * FRAME_BYTES))
    return folder


def one_sequence_set(folder: Path, content: bytes, md5: str | None = None) -> Path:
    """A sequences file with one 2-frame 256x256 sequence, whose file holds ``content``."""
    (folder / "ONE_001_256x256_25_8bit_444.rgb").write_bytes(content)
    entry = {"name": "ONE_001", "class": "ONE", "frames": 2, "md5": md5}
    document = {
        "file_template": "{name}_{width}x{height}_{fps}_{bit_depth}bit_444.rgb",
        "test_sets": {
            "one": {
                "root": str(folder),
                "sequences": [entry],
                "defaults": {"width": 256, "height": 256, "fps": 25},
            }
        },
    }
    path = folder / "sequences.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_the_ctc_set_declares_the_30_ctc_sequences():
    specs = declared_specs("ctc", root="/ctc")
    names = [spec.name for spec in specs]
    assert names == [f"VOXCELEB_{i:03d}" for i in range(1, 16)] + [f"CFVQA_{i:03d}" for i in range(1, 16)]
    for spec in specs:
        assert (spec.frames, spec.seq_class) == (
            (250, "VOXCELEB") if spec.name.startswith("VOX") else (125, "CFVQA")
        )
        assert (spec.width, spec.height, spec.fps, spec.bit_depth, spec.color_format) == (
            256,
            256,
            25,
            8,
            "rgb444",
        )
        assert spec.path == Path(f"/ctc/{spec.name}_256x256_25_8bit_444.rgb")
        assert spec.frame_bytes == FRAME_BYTES


def test_ctc_set_resolves_against_a_root_with_a_frame_limit(tmp_path):
    root = fake_ctc_root(tmp_path / "ctc", frames=2)
    specs = load_test_set({"name": "ctc", "root": str(root), "frames": 2})
    assert len(specs) == 30 and all(spec.frames == 2 and spec.path.parent == root for spec in specs)
    assert specs[0].read().shape == (2, 3, 256, 256)


def test_ctc_root_comes_from_the_environment_and_the_hydra_config(tmp_path, monkeypatch):
    root = fake_ctc_root(tmp_path / "ctc")
    monkeypatch.setenv("GFVC_SEQUENCES", str(root))
    config = OmegaConf.load(PROJECT_ROOT / "ctc" / "conf" / "testset" / "ctc.yaml")
    config.sequences, config.frames = ["CFVQA_003", "VOXCELEB_002"], 1
    specs = load_test_set(config)
    assert [(spec.name, spec.frames, spec.path.parent) for spec in specs] == [
        ("CFVQA_003", 1, root),
        ("VOXCELEB_002", 1, root),
    ]


def test_ctc_without_a_root_says_how_to_give_one():
    with pytest.raises(SequenceError, match="testset.root=FOLDER or the environment variable GFVC_SEQUENCES"):
        load_test_set({"name": "ctc"})


def test_missing_file_names_it_and_what_was_expected(tmp_path):
    root = fake_ctc_root(tmp_path / "ctc")
    (root / "CFVQA_007_256x256_25_8bit_444.rgb").unlink()
    with pytest.raises(SequenceError) as error:
        load_test_set({"name": "ctc", "root": str(root), "frames": 1})
    assert str(error.value) == (
        f"sequence CFVQA_007: file {root}/CFVQA_007_256x256_25_8bit_444.rgb does "
        "not exist; expected 125 frames of 256x256 8-bit planar RGB 4:4:4, 24576000 "
        "bytes"
    )


def test_file_of_partial_frames_is_rejected(tmp_path):
    root = fake_ctc_root(tmp_path / "ctc")
    with open(root / "VOXCELEB_004_256x256_25_8bit_444.rgb", "ab") as file:
        file.write(b"x")
    with pytest.raises(
        SequenceError,
        match=r"VOXCELEB_004_256x256_25_8bit_444.rgb is 196609 bytes, not a "
        r"whole number of 196608-byte frames",
    ):
        load_test_set({"name": "ctc", "root": str(root), "frames": 1})


def test_file_with_too_few_frames_is_rejected(tmp_path):
    root = fake_ctc_root(tmp_path / "ctc")
    with pytest.raises(SequenceError, match=r"VOXCELEB_001: file .* holds 1 frames, fewer than the 250 "):
        load_test_set({"name": "ctc", "root": str(root)})
    with pytest.raises(SequenceError, match="fewer than the 3 needed"):
        load_test_set({"name": "ctc", "root": str(root), "frames": 3})


def test_md5_is_checked_on_the_whole_file(tmp_path):
    content = np.arange(2 * FRAME_BYTES, dtype=np.uint32).astype(np.uint8).tobytes()
    good = one_sequence_set(tmp_path, content, hashlib.md5(content).hexdigest())
    assert load_test_set({"name": "one", "sequences_file": str(good), "frames": 1})[0].frames == 1
    bad = one_sequence_set(tmp_path, content, "0" * 32)
    with pytest.raises(
        SequenceError,
        match=rf"ONE_001: file .* has md5 {hashlib.md5(content).hexdigest()}, "
        r"expected 0{32} \(sequences.yaml\)",
    ):
        load_test_set({"name": "one", "sequences_file": str(bad), "frames": 1})


def test_md5_is_remembered_by_size_and_mtime(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"first")
    assert file_digest(path) == hashlib.md5(b"first").hexdigest()
    assert str(path.resolve()) in (tmp_path / "cache" / "digests.json").read_text()
    path.write_bytes(b"other")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert file_digest(path) == hashlib.md5(b"other").hexdigest()


def test_unknown_test_set_and_sequence_list_the_known_ones(tmp_path):
    with pytest.raises(
        SequenceError, match="unknown test set 'nope'; known test sets: ctc, demo, rehearsal, faces"
    ):
        load_test_set({"name": "nope"})
    with pytest.raises(
        SequenceError,
        match=r"unknown sequence VOXCELEB_016 in test set ctc; known "
        r"sequences: VOXCELEB_001, .*, CFVQA_015$",
    ):
        load_test_set({"name": "ctc", "root": str(tmp_path), "sequences": ["VOXCELEB_016"]})
    with pytest.raises(SequenceError, match="testset.sequences selects no sequence of test set ctc; known"):
        load_test_set({"name": "ctc", "root": str(tmp_path), "sequences": []})
    with pytest.raises(SequenceError, match="testset.frames must be a positive whole number.*, not 0"):
        load_test_set({"name": "ctc", "root": str(tmp_path), "frames": 0})


def test_each_set_file_name_fits_the_template_and_the_faces_keep_their_own_rates():
    sets = read_test_sets()
    assert set(sets) == {"ctc", "demo", "rehearsal", "faces"}
    faces = {spec.name: (spec.fps, spec.frames) for spec in declared_specs("faces")}
    assert faces == {
        "FACES_00": (30, 265),
        "FACES_04": (30, 211),
        "FACES_08": (35, 150),
        "FACES_10": (30, 444),
        "FACES_10B": (30, 270),
    }
    assert declared_specs("faces")[2].file == "FACES_08_256x256_35_8bit_444.rgb"
    assert [spec.frames for spec in declared_specs("demo")] == [50, 50]


def test_bad_sequences_files_are_named(tmp_path):
    with pytest.raises(SequenceError, match=f"sequences file {tmp_path}/absent.yaml does not exist"):
        read_test_sets(tmp_path / "absent.yaml")
    typo = tmp_path / "typo.yaml"
    typo.write_text("test_sets:\n  x: {sequence: []}\n")
    with pytest.raises(SequenceError, match=r"test set x in .*typo.yaml has unknown keys \['sequence'\]"):
        read_test_sets(typo)
    lacking = tmp_path / "lacking.yaml"
    lacking.write_text("test_sets:\n  x: {root: /r, sequences: [{name: A, class: C, file: a.rgb}]}\n")
    with pytest.raises(SequenceError, match="test set x: entry 'A' lacks width, height, frames, fps"):
        declared_specs("x", lacking)
