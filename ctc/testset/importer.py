"""Import real footage as a test sequence: a video file or a folder of PNGs to planar RGB 4:4:4 8-bit.

Videos are decoded with the FFmpeg binary of the ``imageio-ffmpeg`` wheel. A 4:2:0 8-bit video
is decoded to raw YUV 4:2:0 (the decoder's own output, no rescaling, so its md5 can be checked
against a reference decode) and converted to RGB with OpenCV's ``COLOR_YUV2RGB_I420``, as the
GFVC common software does; other formats go to RGB through FFmpeg's bit-exact scaler. Optionally
the frames are centre-cropped to a square and scaled (OpenCV ``INTER_AREA``) and cut to the first N.

The ``faces`` test set of ``sequences.yaml`` is built with this module (``build_sequences``) from
the clips of ``../shared/data/faces``, whose ``manifest.json`` gives each clip's decoded md5.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from ctc.frames import read_yuv420, yuv420_to_rgb
from ctc.hashing import compute_digest
from ctc.paths import shared_dir
from ctc.testset.sequences import SequenceError, SequenceSpec, canonical_file_name
from ctc.tools import ffmpeg_exe, run_tool

DECODE_TIMEOUT_S = 600
CHUNK_FRAMES = 64  # frames converted at a time, to bound memory on long clips
YUV420_SOURCES = {"yuv420p", "yuvj420p"}
MANIFEST = "manifest.json"


def probe_video(source: Path) -> dict[str, Any]:
    """Width, height, pixel format and frame rate of the first video stream of ``source``."""
    if not source.is_file():
        raise SequenceError(f"video {source} does not exist")
    log, _ = run_tool(
        [
            ffmpeg_exe(),
            "-hide_banner",
            "-nostdin",
            "-i",
            source,
            "-map",
            "0:v:0",
            "-frames:v",
            "1",
            "-f",
            "null",
            "-",
        ],
        timeout=DECODE_TIMEOUT_S,
    )
    stream = re.search(r"Stream #0:\d+.*?: Video: [^,]*, (\w+).*?, (\d+)x(\d+)(.*)", log)
    if not stream:
        raise SequenceError(f"video {source}: FFmpeg found no video stream")
    rate = re.search(r"([\d.]+)(k?) (?:fps|tbr)", stream.group(4))
    if not rate:
        raise SequenceError(f"video {source}: FFmpeg reports no frame rate; give one with --fps")
    fps = float(rate.group(1)) * (1000 if rate.group(2) else 1)
    return {
        "pix_fmt": stream.group(1),
        "width": int(stream.group(2)),
        "height": int(stream.group(3)),
        "fps": int(fps) if fps.is_integer() else fps,
    }


def video_frames(
    source: Path, work: Path, frames: int | None = None, yuv420p_md5: str | None = None
) -> tuple[Iterator[np.ndarray], dict[str, Any]]:
    """Decode ``source``; return an iterator over ``(n, H, W, 3)`` RGB chunks and the probe facts.

    ``work`` is a scratch file for the raw decode (removed when the iterator is exhausted).
    ``yuv420p_md5`` is checked on the raw 4:2:0 decode of all frames (not with ``frames``).
    """
    facts = probe_video(source)
    width, height = facts["width"], facts["height"]
    yuv = facts["pix_fmt"] in YUV420_SOURCES and width % 2 == 0 and height % 2 == 0
    command = [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-y",
        "-i",
        source,
        "-map",
        "0:v:0",
        "-fps_mode",
        "passthrough",
        "-f",
        "rawvideo",
    ]
    command += (
        ["-pix_fmt", "yuv420p"]
        if yuv
        else ["-sws_flags", "accurate_rnd+full_chroma_int+bitexact", "-pix_fmt", "rgb24"]
    )
    if frames:
        command += ["-frames:v", str(frames)]
    run_tool([*command, work], timeout=DECODE_TIMEOUT_S)
    if yuv420p_md5 and not frames:
        if not yuv:
            raise SequenceError(f"video {source} is {facts['pix_fmt']}, not yuv420p: no 4:2:0 md5 to check")
        actual = compute_digest(work)
        if actual != yuv420p_md5:
            work.unlink()
            raise SequenceError(
                f"video {source}: decoded yuv420p md5 {actual}, expected {yuv420p_md5} "
                f"(the reference decode); FFmpeg {ffmpeg_exe()} decodes it differently"
            )
    return _decoded_chunks(work, width, height, yuv), facts


def _decoded_chunks(work: Path, width: int, height: int, yuv: bool) -> Iterator[np.ndarray]:
    try:
        if yuv:
            decoded = read_yuv420(work, width, height)
            for start in range(0, decoded.num_frames, CHUNK_FRAMES):
                part = slice(start, start + CHUNK_FRAMES)
                chunk = type(decoded)(decoded.y[part], decoded.u[part], decoded.v[part])
                yield yuv420_to_rgb(chunk).transpose(0, 2, 3, 1)
        else:
            packed = np.memmap(work, np.uint8, "r") if work.stat().st_size else np.zeros(0, np.uint8)
            decoded = packed.reshape(-1, height, width, 3)
            for start in range(0, len(decoded), CHUNK_FRAMES):
                yield np.asarray(decoded[start : start + CHUNK_FRAMES])
    finally:
        work.unlink(missing_ok=True)


def png_frames(folder: Path, frames: int | None = None) -> Iterator[np.ndarray]:
    """The PNGs of ``folder`` in natural order (``2.png`` before ``10.png``), each as ``(1, H, W, 3)``."""
    files = sorted(
        folder.glob("*.png"),
        key=lambda path: [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)],
    )
    if not files:
        raise SequenceError(f"folder {folder} holds no .png files")
    size = None
    for path in files[:frames]:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SequenceError(f"cannot read {path} as a PNG image")
        if size and image.shape != size:
            raise SequenceError(
                f"{path} is {image.shape[1]}x{image.shape[0]}, "
                f"expected {size[1]}x{size[0]} like the first PNG"
            )
        size = image.shape
        yield image[None, :, :, ::-1]


def fit_square(chunk: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop ``(n, H, W, 3)`` frames to a square and scale them to ``size`` x ``size``."""
    height, width = chunk.shape[1:3]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = chunk[:, top : top + side, left : left + side]
    if side == size:
        return square
    return np.stack(
        [
            cv2.resize(np.ascontiguousarray(frame), (size, size), interpolation=cv2.INTER_AREA)
            for frame in square
        ]
    )


def import_footage(
    source: Path,
    destination: Path,
    name: str,
    seq_class: str,
    *,
    size: int | None = None,
    frames: int | None = None,
    fps: float | None = None,
    yuv420p_md5: str | None = None,
) -> SequenceSpec:
    """Write ``source`` (video file or PNG folder) to ``destination`` as planar RGB 4:4:4 8-bit.

    Returns the spec of the written sequence (its md5 included). The file appears atomically.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{destination.name}.{os.getpid()}.tmp")
    if source.is_dir():
        if fps is None:
            raise SequenceError(f"PNG folder {source} has no frame rate: give one (--fps)")
        chunks = png_frames(source, frames)
    else:
        chunks, facts = video_frames(source, temporary.with_suffix(".decoded"), frames, yuv420p_md5)
        fps = facts["fps"] if fps is None else fps
    count, shape = 0, None
    try:
        with open(temporary, "wb") as out:
            for chunk in chunks:
                chunk = fit_square(chunk, size) if size else chunk
                shape = chunk.shape[1:3]
                np.ascontiguousarray(chunk.transpose(0, 3, 1, 2)).tofile(out)
                count += len(chunk)
        if not count:
            raise SequenceError(f"{source} gave no frames")
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)
    return SequenceSpec(
        name=name,
        seq_class=seq_class,
        file=destination.name,
        width=shape[1],
        height=shape[0],
        frames=count,
        fps=float(fps),
        md5=compute_digest(destination),
        root=destination.parent,
        extra={"source": str(source)},
    )


def build_sequences(specs: Sequence[SequenceSpec], settings: Mapping[str, Any]) -> None:
    """Import the clips of ``settings['folder']`` (under the shared folder) that ``specs`` name.

    The ``build`` hook of the ``faces`` set: each clip's decode is checked against the md5 of the
    folder's manifest, and the result against the entry's declared size, frame count and frame rate.
    """
    folder = shared_dir() / settings["folder"]
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise SequenceError(
            f"the clips to import are missing: {manifest_path} does not exist "
            "(set GFVC_SHARED to the shared data folder)"
        )
    clips = {clip["file"]: clip for clip in json.loads(manifest_path.read_text(encoding="utf-8"))["clips"]}
    for spec in specs:
        clip = clips.get(spec.extra.get("source"))
        if clip is None:
            raise SequenceError(
                f"sequence {spec.name}: source {spec.extra.get('source')!r} is not in "
                f"{manifest_path} (known: {', '.join(clips)})"
            )
        made = import_footage(
            folder / clip["file"],
            spec.path,
            spec.name,
            spec.seq_class,
            size=spec.width if (clip["width"], clip["height"]) != (spec.width, spec.height) else None,
            yuv420p_md5=clip.get("yuv420p_md5"),
        )
        declared = (spec.width, spec.height, spec.frames, spec.fps)
        if (made.width, made.height, made.frames, made.fps) != declared:
            raise SequenceError(
                f"sequence {spec.name}: {clip['file']} gave {made.width}x{made.height}, "
                f"{made.frames} frames at {made.fps} fps; sequences.yaml declares "
                f"{spec.width}x{spec.height}, {spec.frames} frames at {spec.fps:g} fps"
            )


def main(argv: Sequence[str] | None = None) -> int:
    """``ctc-import``: make a test sequence of a video or a PNG folder; print its sequences.yaml entry."""
    parser = argparse.ArgumentParser(prog="ctc-import", description=main.__doc__)
    parser.add_argument("source", type=Path, help="video file (mp4, mkv, ...) or folder of PNGs")
    parser.add_argument(
        "--out", type=Path, default=Path("."), help="folder to write the .rgb file and its .yaml entry into"
    )
    parser.add_argument(
        "--name",
        help="sequence name (default: the source's name in capitals); the file is "
        "named as sequences.yaml's file_template names it: <name>_<width>x<height>_<fps>_...",
    )
    parser.add_argument("--class", dest="seq_class", default="IMPORTED", help="sequence class")
    parser.add_argument("--size", type=int, help="centre-crop to a square and scale to SIZE x SIZE, e.g. 256")
    parser.add_argument("--frames", type=int, help="keep only the first N frames")
    parser.add_argument("--fps", type=float, help="frame rate (needed for PNG folders; default: the video's)")
    parser.add_argument("--yuv420p-md5", help="md5 the raw yuv420p decode of all frames must have")
    args = parser.parse_args(argv)
    name = args.name or re.sub(r"\W", "_", args.source.stem).upper()
    try:
        made = import_footage(
            args.source,
            args.out / f".{name}.importing",
            name,
            args.seq_class,
            size=args.size,
            frames=args.frames,
            fps=args.fps,
            yuv420p_md5=args.yuv420p_md5,
        )
        target = args.out / canonical_file_name(made.entry())
    except SequenceError as exc:
        parser.exit(2, f"ctc-import: error: {exc}\n")
    os.replace(made.path, target)
    entry = replace(made, file=target.name).entry()
    text = yaml.safe_dump([entry], sort_keys=False, default_flow_style=None)
    target.with_suffix(".yaml").write_text(text, encoding="utf-8")
    print(f"wrote {target} ({made.frames} frames, {made.width}x{made.height}, {made.fps:g} fps)")
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
