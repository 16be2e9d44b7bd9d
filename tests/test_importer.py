"""Importing real footage (a real clip of ../shared/data/faces, a PNG folder) and the faces test set."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import yaml

from ctc.frames import read_rgb444, read_yuv420, yuv420_to_rgb
from ctc.hashing import compute_digest
from ctc.testset.importer import import_footage, main
from ctc.testset.sequences import SequenceError, declared_specs, load_test_set
from ctc.tools import ffmpeg_exe, run_tool


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GFVC_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def clip(shared):
    return shared / "data" / "faces" / "08.mp4"


def test_video_import_writes_rgb_and_its_entry(clip, tmp_path, capsys):
    argv = [str(clip), "--out", str(tmp_path), "--frames", "4", "--name", "CLIP_08", "--class", "FACES"]
    assert main(argv) == 0
    target = tmp_path / "CLIP_08_256x256_35_8bit_444.rgb"
    entry = yaml.safe_load((tmp_path / "CLIP_08_256x256_35_8bit_444.yaml").read_text())[0]
    assert entry == {
        "name": "CLIP_08",
        "class": "FACES",
        "file": target.name,
        "width": 256,
        "height": 256,
        "frames": 4,
        "fps": 35.0,
        "color_format": "rgb444",
        "bit_depth": 8,
        "md5": compute_digest(target),
        "source": str(clip),
    }
    assert "CLIP_08_256x256_35_8bit_444.rgb" in capsys.readouterr().out
    # the frames are FFmpeg's yuv420p decode converted by OpenCV's COLOR_YUV2RGB_I420
    run_tool(
        [
            ffmpeg_exe(),
            "-i",
            clip,
            "-frames:v",
            "4",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            tmp_path / "ref.yuv",
        ],
        timeout=60,
    )
    expected = yuv420_to_rgb(read_yuv420(tmp_path / "ref.yuv", 256, 256))
    np.testing.assert_array_equal(read_rgb444(target, 256, 256), expected)


def test_video_import_crops_and_scales(clip, tmp_path):
    spec = import_footage(clip, tmp_path / "small.rgb", "SMALL", "FACES", size=64, frames=3)
    assert (spec.width, spec.height, spec.frames, spec.fps) == (64, 64, 3, 35)
    assert (tmp_path / "small.rgb").stat().st_size == 3 * 3 * 64 * 64


def test_a_wrong_reference_md5_stops_the_import(clip, tmp_path):
    with pytest.raises(SequenceError, match=r"08.mp4: decoded yuv420p md5 09b24f59\w+, expected 0{32}"):
        import_footage(clip, tmp_path / "x.rgb", "X", "FACES", yuv420p_md5="0" * 32)
    assert list(tmp_path.iterdir()) == [], "no partial file may be left behind"


def test_png_folder_import_keeps_the_pixels_in_natural_order(tmp_path):
    folder = tmp_path / "pngs"
    folder.mkdir()
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (11, 3, 40, 60), dtype=np.uint8)
    for index, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"frame{index}.png"), frame.transpose(1, 2, 0)[:, :, ::-1])
    assert main([str(folder), "--out", str(tmp_path), "--fps", "30", "--frames", "10"]) == 0
    np.testing.assert_array_equal(read_rgb444(tmp_path / "PNGS_60x40_30_8bit_444.rgb", 60, 40), frames[:10])
    spec = import_footage(folder, tmp_path / "square.rgb", "SQ", "X", size=40, fps=25)
    np.testing.assert_array_equal(read_rgb444(spec.path, 40, 40), frames[:, :, :, 10:50])


def test_bad_sources_get_one_clear_message(tmp_path, capsys):
    folder = tmp_path / "pngs"
    folder.mkdir()
    with pytest.raises(SystemExit) as exit_:
        main([str(folder), "--fps", "25"])
    assert exit_.value.code == 2 and f"folder {folder} holds no .png files" in capsys.readouterr().err
    cv2.imwrite(str(folder / "1.png"), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(folder / "2.png"), np.zeros((8, 6, 3), np.uint8))
    with pytest.raises(SystemExit):
        main([str(folder), "--out", str(tmp_path)])
    assert "has no frame rate: give one (--fps)" in capsys.readouterr().err
    with pytest.raises(SequenceError, match=r"2.png is 6x8, expected 8x8 like the first PNG"):
        import_footage(folder, tmp_path / "x.rgb", "X", "X", fps=25)
    with pytest.raises(SequenceError, match=f"video {tmp_path}/absent.mp4 does not exist"):
        import_footage(tmp_path / "absent.mp4", tmp_path / "x.rgb", "X", "X")


@pytest.mark.slow
def test_faces_set_is_imported_checked_against_the_manifest_and_loaded(shared):
    manifest = json.loads((shared / "data" / "faces" / "manifest.json").read_text())
    declared = {spec.extra["source"]: spec for spec in declared_specs("faces")}
    assert {clip["file"]: (clip["fps"], clip["frames"]) for clip in manifest["clips"]} == {
        source: (spec.fps, spec.frames) for source, spec in declared.items()
    }
    # every clip is decoded, its yuv420p md5 checked against the manifest, and the RGB md5 against ours
    specs = load_test_set({"name": "faces", "frames": 6})
    assert [(spec.name, spec.seq_class, spec.fps, spec.frames) for spec in specs] == [
        ("FACES_00", "FACES", 30, 6),
        ("FACES_04", "FACES", 30, 6),
        ("FACES_08", "FACES", 35, 6),
        ("FACES_10", "FACES", 30, 6),
        ("FACES_10B", "FACES", 30, 6),
    ]
    for spec in specs:
        assert compute_digest(spec.path) == spec.md5
        assert spec.read().shape == (6, 3, 256, 256)


def test_faces_set_without_the_shared_folder_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("GFVC_SHARED", str(tmp_path / "nowhere"))
    with pytest.raises(
        SequenceError,
        match=f"{tmp_path}/nowhere/data/faces/manifest.json does not exist "
        r"\(set GFVC_SHARED",
    ):
        load_test_set({"name": "faces", "sequences": ["FACES_00"]})
