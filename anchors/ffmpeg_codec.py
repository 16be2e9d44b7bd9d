"""What the FFmpeg-driven anchors (vvenc, x265) share: raw YUV in, elementary stream out, and back.

Pipeline of one encode: planar RGB 4:4:4 -> YUV 4:2:0 with OpenCV (:func:`ctc.frames.rgb_to_yuv420`,
as the GFVC common software converts) -> raw file -> ``ffmpeg`` with the codec's library -> a raw
elementary stream (bits = its size x 8). Decoding runs ``ffmpeg`` with FFmpeg's native decoder to
8-bit raw YUV 4:2:0, then OpenCV back to planar RGB. Every number (QP list, preset, the library's
own parameters, threads, timeout) comes from the codec's config file.
"""

from __future__ import annotations

import functools
import re
from abc import abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from anchors.command_identity import BITSTREAM, FPS, FRAMES, HEIGHT, INPUT, OUTPUT, WIDTH, binary_identity
from anchors.files import (
    INTRA_PICTURE_FPS,
    VERSION_PROBE_TIMEOUT_S,
    bitstream_bits,
    check_file_size,
    check_picture,
    frame_rate_text,
    read_sequence_frames,
)
from ctc.codec import Codec, CodecError, DecodeResult, EncodeResult, IntraCodec
from ctc.frames import (
    Yuv420,
    read_yuv420,
    rgb444_frame_bytes,
    rgb_to_yuv420,
    write_rgb444,
    write_yuv420,
    yuv420_frame_bytes,
    yuv420_to_rgb,
)
from ctc.testset.sequences import SequenceSpec
from ctc.tools import ffmpeg_exe, run_tool


def join_params(params: Mapping[str, Any] | None) -> str:
    """A library's ``key=value:key=value`` parameter string from a config mapping."""
    return ":".join(f"{key}={value}" for key, value in (params or {}).items())


@functools.cache
def ffmpeg_version(executable: str) -> str:
    """First line of ``ffmpeg -version``, e.g. ``ffmpeg version n9.0.2-17-g2a571b6068-20260930``."""
    output, _ = run_tool([executable, "-version"], timeout=VERSION_PROBE_TIMEOUT_S)
    return output.strip().splitlines()[0].split(" Copyright")[0]


class FfmpegCodec(Codec, IntraCodec):
    """A conventional codec run through the FFmpeg binary of the ``imageio-ffmpeg`` wheel.

    Subclasses name the FFmpeg encoder library and its raw output format, and build the encoder
    options from the config (:meth:`encoder_options`).
    """

    library: ClassVar[str]  # FFmpeg encoder, e.g. "libvvenc"
    muxer: ClassVar[str]  # FFmpeg raw elementary-stream muxer, e.g. "vvc"
    suffix: ClassVar[str]  # bitstream file suffix, e.g. ".266"
    input_bit_depth: ClassVar[int] = 8  # sample depth of the raw YUV that the library takes
    version_pattern: ClassVar[str]  # regex for the library's version in its encoder log

    def __init__(self, config: Mapping[str, Any], device: str = "cpu") -> None:
        super().__init__(config, device)
        picture_format = self.config.get("input_format", "yuv420")
        if picture_format != "yuv420":
            raise CodecError(
                f"{self.name} codes YUV 4:2:0 only ({self.library} through FFmpeg), not "
                f"input_format {picture_format!r}; use the vtm codec for rgb444"
            )
        self.ffmpeg = ffmpeg_exe()

    @property
    def timeout(self) -> float:
        return float(self.config["timeout_s"])

    @property
    def threads(self) -> int:
        return int(self.config.get("threads", 1))

    @abstractmethod
    def encoder_options(self, qp: int) -> list[str]:
        """FFmpeg output options that select and configure the encoder library at ``qp``."""

    def preset_and_qp(self, qp: int) -> list[str]:
        """The options that start a config-preset codec's :meth:`encoder_options`: library, preset, QP."""
        return ["-c:v", self.library, "-preset", str(self.config["preset"]), "-qp", str(qp)]

    def version(self) -> str:
        return f"{ffmpeg_version(self.ffmpeg)}, {self.library} {self._library_version()}"

    @classmethod
    def identity(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """The version, FFmpeg's bytes and the exact command lines (:mod:`anchors.command_identity`)."""
        codec = cls(config)
        encode = functools.partial(codec.encoder_command, INPUT, BITSTREAM, WIDTH, HEIGHT, FPS, FRAMES)
        return {
            "version": codec.version(),
            **binary_identity({"ffmpeg": codec.ffmpeg}, encode, codec.decoder_command(BITSTREAM, OUTPUT)),
        }

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "preset": self.config.get("preset"), "threads": self.threads}

    # -- sequences ------------------------------------------------------------------------------
    def encode(self, sequence: SequenceSpec, rate_point: int, workdir: Path) -> EncodeResult:
        frames = read_sequence_frames(sequence)
        bitstream = Path(workdir) / f"{sequence.name}_qp{rate_point}{self.suffix}"
        return self._encode_frames(frames, rate_point, sequence.fps, bitstream)

    def decode(self, bitstream: Path, sequence: SequenceSpec, workdir: Path) -> DecodeResult:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        output = Path(workdir) / f"{Path(bitstream).stem}_decoded.rgb"
        frames, seconds, command, log = self._decode_frames(
            Path(bitstream), sequence.width, sequence.height, sequence.frames
        )
        write_rgb444(output, frames)
        check_file_size(
            output,
            sequence.frames * rgb444_frame_bytes(sequence.width, sequence.height),
            f"{sequence.frames} decoded frames of {sequence.width}x{sequence.height} RGB",
        )
        return DecodeResult(frames_file=output, seconds=seconds, commands=[command], log=log)

    # -- one intra picture ----------------------------------------------------------------------
    def encode_picture(self, rgb: np.ndarray, qp: int, workdir: Path) -> bytes:
        check_picture(rgb)
        bitstream = Path(workdir) / f"picture_qp{qp}{self.suffix}"
        result = self._encode_frames(rgb[None], qp, INTRA_PICTURE_FPS, bitstream)
        data = result.bitstream.read_bytes()
        result.bitstream.unlink()
        return data

    def decode_picture(self, bitstream: bytes, width: int, height: int, workdir: Path) -> np.ndarray:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        path = Path(workdir) / f"picture{self.suffix}"
        path.write_bytes(bitstream)
        try:
            frames, *_ = self._decode_frames(path, width, height, 1)
        finally:
            path.unlink()
        return frames[0]

    # -- the two FFmpeg runs --------------------------------------------------------------------
    def encoder_command(
        self,
        raw: Path,
        bitstream: Path,
        width: int | str,
        height: int | str,
        frame_rate: str,
        count: int | str,
        qp: int,
    ) -> list[str]:
        """FFmpeg reading raw YUV ``raw`` and writing the library's elementary stream ``bitstream``."""
        return [
            self.ffmpeg,
            "-hide_banner",
            "-nostdin",
            "-y",
            "-loglevel",
            "verbose",
            "-f",
            "rawvideo",
            "-pix_fmt",
            self._raw_pix_fmt,
            "-s",
            f"{width}x{height}",
            "-r",
            frame_rate,
            "-i",
            str(raw),
            "-frames:v",
            str(count),
            "-threads",
            str(self.threads),
            *self.encoder_options(qp),
            "-f",
            self.muxer,
            str(bitstream),
        ]

    def decoder_command(self, bitstream: Path, raw: Path) -> list[str]:
        """FFmpeg's native decoder to 8-bit raw YUV 4:2:0; passthrough: one output frame per decoded
        picture, whatever frame rate the raw stream implies."""
        return [
            self.ffmpeg,
            "-hide_banner",
            "-nostdin",
            "-y",
            "-threads",
            str(self.threads),
            "-i",
            str(bitstream),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-fps_mode",
            "passthrough",
            str(raw),
        ]

    def _encode_frames(self, frames: np.ndarray, qp: int, fps: float, bitstream: Path) -> EncodeResult:
        count, _, height, width = frames.shape
        bitstream.parent.mkdir(parents=True, exist_ok=True)
        raw = bitstream.with_name(bitstream.stem + "_input.yuv")
        write_yuv420(raw, self._to_input_depth(rgb_to_yuv420(frames)), self.input_bit_depth)
        command = self.encoder_command(raw, bitstream, width, height, frame_rate_text(fps), count, qp)
        bitstream.unlink(missing_ok=True)
        try:
            log, seconds = run_tool(command, self.timeout)
        except CodecError:
            bitstream.unlink(missing_ok=True)  # a failed run leaves no file that looks like a bitstream
            raise
        finally:
            raw.unlink(missing_ok=True)
        bits = bitstream_bits(bitstream, f"ffmpeg ({self.library})", log)
        return EncodeResult(
            bitstream=bitstream, bits={"video": bits}, seconds=seconds, commands=[command], log=log
        )

    def _decode_frames(
        self, bitstream: Path, width: int, height: int, count: int
    ) -> tuple[np.ndarray, float, list[str], str]:
        """Decode ``bitstream`` to ``count`` RGB frames; returns (frames, seconds, command, log)."""
        raw = bitstream.with_name(bitstream.stem + "_decoded.yuv")
        command = self.decoder_command(bitstream, raw)
        try:
            log, seconds = run_tool(command, self.timeout)
            check_file_size(
                raw,
                count * yuv420_frame_bytes(width, height),
                f"{count} decoded frames of {width}x{height} YUV 4:2:0 from {bitstream}",
            )
            frames = yuv420_to_rgb(read_yuv420(raw, width, height))
        finally:
            raw.unlink(missing_ok=True)
        return frames, seconds, command, log

    @property
    def _raw_pix_fmt(self) -> str:
        return "yuv420p" if self.input_bit_depth == 8 else f"yuv420p{self.input_bit_depth}le"

    def _to_input_depth(self, yuv: Yuv420) -> Yuv420:
        """8-bit samples to the library's input depth by a left shift, as the JVET tools widen them."""
        shift = self.input_bit_depth - 8
        if shift == 0:
            return yuv
        return Yuv420(*(plane.astype(np.uint16) << shift for plane in (yuv.y, yuv.u, yuv.v)))

    def _library_version(self) -> str:
        return _library_version(self.ffmpeg, self.library, self._raw_pix_fmt, self.version_pattern)


@functools.cache
def _library_version(executable: str, library: str, pix_fmt: str, pattern: str) -> str:
    """The encoder library's version as it logs it when encoding one tiny picture."""
    output, _ = run_tool(
        [
            executable,
            "-hide_banner",
            "-nostdin",
            "-f",
            "lavfi",
            "-i",
            "color=black:s=64x64",
            "-frames:v",
            "1",
            "-pix_fmt",
            pix_fmt,
            "-c:v",
            library,
            "-f",
            "null",
            "-",
        ],
        timeout=VERSION_PROBE_TIMEOUT_S,
    )
    match = re.search(pattern, output)
    if not match:
        raise CodecError(f"{executable}: {library} did not report its version")
    return match.group(1)
