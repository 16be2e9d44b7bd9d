"""Shared by the anchor tests: codec configs, a real face clip as a test sequence, RGB PSNR."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ctc.conf import load_section
from ctc.testset.sequences import SequenceSpec
from ctc.tools import ffmpeg_exe

CLIP = "00.mp4"
FRAMES = 6
WIDTH, HEIGHT = 192, 128  # a crop: nothing may assume 256x256


def codec_config(name: str, **overrides) -> dict:
    """``ctc/conf/codec/<name>.yaml`` with ``overrides``."""
    return {**load_section("codec", name), **overrides}


def rgb_frames(source: Path, frames: int, width: int, height: int, filters: Sequence[str] = ()) -> np.ndarray:
    """The first ``frames`` frames of a video file (after FFmpeg's ``filters``) as planar RGB 4:4:4,
    shaped (frames, 3, height, width)."""
    raw = subprocess.run(
        [
            ffmpeg_exe(),
            "-v",
            "error",
            "-nostdin",
            "-i",
            str(source),
            "-frames:v",
            str(frames),
            *filters,
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    packed = np.frombuffer(raw, np.uint8).reshape(frames, height, width, 3)
    return np.ascontiguousarray(packed.transpose(0, 3, 1, 2))


def face_clip(shared: Path, folder: Path) -> tuple[SequenceSpec, np.ndarray]:
    """The first frames of a real face clip, cropped, as a planar RGB 4:4:4 sequence at its own fps."""
    manifest = json.loads((shared / "data" / "faces" / "manifest.json").read_text())
    fps = next(entry["fps"] for entry in manifest["clips"] if entry["file"] == CLIP)
    source = shared / "data" / "faces" / CLIP
    frames = rgb_frames(source, FRAMES, WIDTH, HEIGHT, ["-vf", f"crop={WIDTH}:{HEIGHT}:32:64"])
    frames.tofile(folder / "face.rgb")
    spec = SequenceSpec(
        name="face",
        seq_class="FACES",
        file="face.rgb",
        width=WIDTH,
        height=HEIGHT,
        frames=FRAMES,
        fps=float(fps),
        root=folder,
    )
    return spec, frames


def rgb_psnr(decoded: np.ndarray, original: np.ndarray) -> float:
    """Mean over frames of the mean over R, G, B of the plane PSNR (as the GFVC software)."""
    error = (decoded.astype(np.float64) - original.astype(np.float64)) ** 2
    mse = error.reshape(*error.shape[:2], -1).mean(axis=2)
    return float(np.mean(10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))))


FAKE_VTM = Path(__file__).parent / "fake_vtm"


def install_fake_vtm(
    root: Path,
    version: str = "22.2",
    bin_dir: str = "bin",
    names: tuple[str, str] = ("EncoderAppStatic", "DecoderAppStatic"),
) -> Path:
    """A VTM folder at ``root``: ``cfg/encoder_lowdelay_vtm.cfg`` and the fake apps in ``bin_dir``."""
    (root / "cfg").mkdir(parents=True, exist_ok=True)
    (root / "cfg" / "encoder_lowdelay_vtm.cfg").write_text("IntraPeriod : -1\nGOPSize : 8\n")
    folder = root / bin_dir
    folder.mkdir(parents=True, exist_ok=True)
    for app, name in zip(("EncoderApp", "DecoderApp"), names, strict=True):
        script = (FAKE_VTM / app).read_text()
        script = script.replace("#!/usr/bin/env python3", f"#!{sys.executable}", 1)
        script = script.replace("@FAKE_VTM_DIR@", str(FAKE_VTM)).replace('"22.2"', f'"{version}"')
        (folder / name).write_text(script)
        (folder / name).chmod(0o755)
    return root
