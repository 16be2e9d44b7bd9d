"""VMAF through libvmaf in the FFmpeg binary of ``imageio-ffmpeg`` (built with ``--enable-libvmaf``).

Both sequences go to FFmpeg as raw YUV 4:2:0, converted as the harness converts
(:func:`ctc.frames.rgb_to_yuv420`, OpenCV's ``RGB2YUV_I420``), so the luma VMAF sees is the luma the
anchors code. The per-frame values are read from libvmaf's JSON log. VMAF's motion feature compares
each frame with the previous one, so a sequence is scored in one call, never in batches.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ctc.devices import cpu_threads
from ctc.frames import rgb_to_yuv420
from ctc.metrics import FrameBatch, Metric, MetricError, register_metric

VMAF_MODEL = "vmaf_v0.6.1"
CONVERT_FRAMES = 64  # frames converted to YUV at a time while writing FFmpeg's input


def write_yuv420(path: Path, frames: np.ndarray) -> None:
    """RGB ``(N, 3, H, W)`` frames (a memory map is fine) as one planar I420 file."""
    with open(path, "wb") as handle:
        for start in range(0, frames.shape[0], CONVERT_FRAMES):
            yuv = rgb_to_yuv420(np.asarray(frames[start : start + CONVERT_FRAMES]))
            for index in range(yuv.num_frames):
                for plane in (yuv.y, yuv.u, yuv.v):
                    handle.write(np.ascontiguousarray(plane[index]).tobytes())


def _filter_path(path: Path) -> str:
    """A path as an FFmpeg filter option value (``:`` and ``\\`` escaped)."""
    return str(path).replace("\\", "\\\\").replace(":", "\\:")


def libvmaf_command(
    distorted: Path, reference: Path, width: int, height: int, log: Path, threads: int
) -> list[str]:
    """The FFmpeg call that scores two I420 files with libvmaf (its first input is the distorted one)."""
    from ctc.tools import ffmpeg_exe

    raw = ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{width}x{height}", "-r", "25"]
    options = f"model=version={VMAF_MODEL}:log_fmt=json:log_path={_filter_path(log)}:n_threads={threads}"
    return [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        *raw,
        "-i",
        str(distorted),
        *raw,
        "-i",
        str(reference),
        "-lavfi",
        f"[0:v][1:v]libvmaf={options}",
        "-f",
        "null",
        "-",
    ]


def read_vmaf_log(log: Path, frames: int) -> np.ndarray:
    """Per-frame VMAF from libvmaf's JSON log, in frame order."""
    entries = json.loads(log.read_text(encoding="utf-8"))["frames"]
    values = {int(entry["frameNum"]): float(entry["metrics"]["vmaf"]) for entry in entries}
    if sorted(values) != list(range(frames)):
        raise MetricError(f"libvmaf's log {log} holds {len(values)} frames of {frames}")
    return np.array([values[index] for index in range(frames)], np.float64)


@register_metric("vmaf")
class Vmaf(Metric):
    description = (
        f"VMAF (libvmaf in imageio-ffmpeg's FFmpeg, model {VMAF_MODEL}) on YUV 4:2:0 converted as "
        "the harness converts (OpenCV RGB2YUV_I420); higher is better"
    )
    whole_sequence = True

    def score_batch(self, batch: FrameBatch) -> np.ndarray:
        return self.score_sequence(batch.reference, batch.distorted)

    def score_sequence(self, reference: np.ndarray, distorted: np.ndarray) -> np.ndarray:
        """Per-frame VMAF of two whole ``(N, 3, H, W)`` 8-bit sequences."""
        frames, _, height, width = reference.shape
        if height % 2 or width % 2:
            raise MetricError(f"vmaf needs even frame sizes for YUV 4:2:0, got {width}x{height}")
        with tempfile.TemporaryDirectory(prefix="ctc-vmaf-") as folder:
            ref, dist, log = (Path(folder, name) for name in ("reference.yuv", "distorted.yuv", "vmaf.json"))
            write_yuv420(ref, reference)
            write_yuv420(dist, distorted)
            command = libvmaf_command(dist, ref, width, height, log, cpu_threads())
            done = subprocess.run(command, capture_output=True, text=True, errors="replace", check=False)
            if done.returncode != 0 or not log.is_file():
                tail = "\n".join(done.stderr.strip().splitlines()[-10:])
                raise MetricError(f"FFmpeg's libvmaf failed (exit {done.returncode}): {tail}")
            return read_vmaf_log(log, frames)
