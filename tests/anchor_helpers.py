"""Shared by the anchor tests: codec configs, a real face clip as a test sequence, RGB PSNR."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import yaml

from anchors.tools import ffmpeg_exe
from ctc.paths import PROJECT_ROOT
from ctc.sequences import SequenceSpec

CLIP = "00.mp4"
FRAMES = 6
WIDTH, HEIGHT = 192, 128  # a crop: nothing may assume 256x256


def codec_config(name: str, **overrides) -> dict:
    """``ctc/conf/codec/<name>.yaml`` with ``overrides``."""
    config = yaml.safe_load((PROJECT_ROOT / "ctc" / "conf" / "codec" / f"{name}.yaml").read_text())
    return {**config, **overrides}


def face_clip(shared: Path, folder: Path) -> tuple[SequenceSpec, np.ndarray]:
    """The first frames of a real face clip, cropped, as a planar RGB 4:4:4 sequence at its own fps."""
    manifest = json.loads((shared / "data" / "faces" / "manifest.json").read_text())
    fps = next(entry["fps"] for entry in manifest["clips"] if entry["file"] == CLIP)
    source = shared / "data" / "faces" / CLIP
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(source),
                          "-frames:v", str(FRAMES), "-vf", f"crop={WIDTH}:{HEIGHT}:32:64",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    packed = np.frombuffer(raw, np.uint8).reshape(FRAMES, HEIGHT, WIDTH, 3)
    frames = np.ascontiguousarray(packed.transpose(0, 3, 1, 2))
    frames.tofile(folder / "face.rgb")
    spec = SequenceSpec(name="face", seq_class="FACES", file="face.rgb", width=WIDTH, height=HEIGHT,
                        frames=FRAMES, fps=float(fps), root=folder)
    return spec, frames


def rgb_psnr(decoded: np.ndarray, original: np.ndarray) -> float:
    """Mean over frames of the mean over R, G, B of the plane PSNR (as the GFVC software)."""
    error = (decoded.astype(np.float64) - original.astype(np.float64)) ** 2
    mse = error.reshape(*error.shape[:2], -1).mean(axis=2)
    return float(np.mean(10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-10))))
