"""VTM, the CTC's VVC anchor: the user's own build of ``EncoderApp`` and ``DecoderApp``.

VTM cannot be installed from a registry, so the binaries are looked for, in this order, at the
config's ``encoder``/``decoder`` paths, under the config's ``vtm_dir``, under ``$VTM_DIR`` and on
``PATH``. The version is read from the binaries' own banner (``VVCSoftware: VTM Encoder Version
22.2 ...``), checked against ``min_version`` and recorded. Encoding uses the user's
``cfg/encoder_lowdelay_vtm.cfg`` plus the CTC's changes, all in ``ctc/conf/codec/vtm.yaml``.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anchors.files import (
    INTRA_PICTURE_FPS,
    VERSION_PROBE_TIMEOUT_S,
    bitstream_bits,
    check_file_size,
    check_picture,
    frame_rate_text,
    read_sequence_frames,
)
from anchors.tools import log_tail, run_tool
from ctc.codec import Codec, CodecError, DecodeResult, EncodeResult, IntraCodec, register_codec
from ctc.frames import (
    read_rgb444,
    read_yuv420,
    rgb444_frame_bytes,
    rgb_to_yuv420,
    write_rgb444,
    write_yuv420,
    yuv420_frame_bytes,
    yuv420_to_rgb,
)
from ctc.sequences import SequenceSpec

VTM_DIR_ENV = "VTM_DIR"
ENCODER_NAMES = ("EncoderAppStatic", "EncoderApp")
DECODER_NAMES = ("DecoderAppStatic", "DecoderApp")
BANNER = re.compile(r"VVCSoftware: VTM (Encoder|Decoder) Version (\d+(?:\.\d+)*)")
# the first row of the encoder's SUMMARY table: frames, "a", kbps, Y, U, V and YUV PSNR
SUMMARY_ROW = re.compile(r"SUMMARY -+\s+Total Frames[^\n]*\n\s*(\d+)\s+a\s+([\d.]+)\s+([\d.]+)\s+"
                         r"([\d.]+)\s+([\d.]+)\s+([\d.]+)")
FORMATS = {"yuv420": "420", "rgb444": "444"}  # input_format -> InputChromaFormat


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in str(text).split("."))


@functools.cache
def _banner_version(program: str, mtime_ns: int) -> tuple[str, str]:
    """(kind, version) from the banner that a VTM binary prints before anything else."""
    try:
        proc = subprocess.run([program, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, errors="replace", timeout=VERSION_PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CodecError(f"cannot run {program} to read its VTM version: {exc}") from exc
    match = BANNER.search(proc.stdout)
    if not match:
        raise CodecError(f"{program} printed no VTM banner ('VVCSoftware: VTM ... Version N.N'); is it a "
                         f"VTM build?\n{log_tail(proc.stdout)}")
    return match.group(1), match.group(2)


def vtm_version(program: Path) -> tuple[str, str]:
    """(``Encoder`` or ``Decoder``, version) of a VTM binary, e.g. ``("Encoder", "22.2")``."""
    return _banner_version(str(program), program.stat().st_mtime_ns)


def _search_roots(config: Mapping[str, Any]) -> list[tuple[str, Path]]:
    roots = []
    if config.get("vtm_dir"):
        roots.append(("codec.vtm_dir", Path(config["vtm_dir"]).expanduser()))
    if os.environ.get(VTM_DIR_ENV):
        roots.append((f"${VTM_DIR_ENV}", Path(os.environ[VTM_DIR_ENV]).expanduser()))
    return roots


def _executables_under(root: Path, names: Sequence[str]) -> Iterator[Path]:
    """``root/NAME``, ``root/bin/NAME``, then builds under ``root/bin`` (``bin/umake/.../release``)."""
    for folder in (root, root / "bin"):
        for name in names:
            if os.access(folder / name, os.X_OK) and (folder / name).is_file():
                yield folder / name
    if (root / "bin").is_dir():
        for name in names:
            found = sorted(path for path in (root / "bin").rglob(name) if os.access(path, os.X_OK))
            yield from sorted(found, key=lambda path: "release" not in path.parts)


def find_program(config: Mapping[str, Any], key: str, names: Sequence[str]) -> Path:
    """The VTM binary ``names`` from ``config[key]``, ``vtm_dir``, ``$VTM_DIR`` or ``PATH``."""
    if config.get(key):
        path = Path(config[key]).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise CodecError(f"codec.{key} = {path} is not an executable file (expected VTM's {names[0]})")
        return path
    looked = []
    for label, root in _search_roots(config):
        found = next(_executables_under(root, names), None)
        if found:
            return found
        looked.append(f"{label} = {root}")
    for name in names:
        found = shutil.which(name)
        if found:
            return Path(found)
    looked.append("PATH")
    raise CodecError(f"VTM not found: no {' or '.join(names)} in {', '.join(looked)}. Build VTM "
                     f"(the CTC anchor is VTM 22.2) and set {VTM_DIR_ENV}=/path/to/VVCSoftware_VTM, "
                     f"or codec.vtm_dir, or codec.{key}=/path/to/{names[0]}")


def vtm_installed(config: Mapping[str, Any]) -> bool:
    """Whether VTM's encoder and decoder binaries are found where :func:`find_program` looks."""
    try:
        find_program(config, "encoder", ENCODER_NAMES)
        find_program(config, "decoder", DECODER_NAMES)
    except CodecError:
        return False
    return True


def find_encoder_cfg(config: Mapping[str, Any], encoder: Path) -> Path:
    """The encoder cfg file: absolute, or relative to the VTM folder (given, or above the encoder)."""
    cfg = Path(config["cfg"]).expanduser()
    if cfg.is_absolute():
        candidates = [cfg]
    else:
        roots = [root for _, root in _search_roots(config)] + list(encoder.resolve().parents)
        candidates = [root / cfg for root in roots]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise CodecError(f"VTM encoder config {cfg} not found (looked at {', '.join(map(str, candidates))}); "
                     f"set codec.cfg to the path of VTM's encoder_lowdelay_vtm.cfg")


def option_arguments(options: Mapping[str, Any] | None) -> list[str]:
    """VTM's ``--Name=value`` arguments from a config mapping."""
    return [f"--{name}={value}" for name, value in (options or {}).items()]


@register_codec("vtm")
class VtmCodec(Codec, IntraCodec):
    """VTM low-delay B as in the CTC; YUV 4:2:0 input by default, planar RGB 4:4:4 as an option."""

    def __init__(self, config: Mapping[str, Any], device: str = "cpu") -> None:
        super().__init__(config, device)
        self.input_format = self.config.get("input_format", "yuv420")
        if self.input_format not in FORMATS:
            raise CodecError(f"vtm: input_format {self.input_format!r} is not one of {sorted(FORMATS)}")
        self.encoder = find_program(self.config, "encoder", ENCODER_NAMES)
        self.decoder = find_program(self.config, "decoder", DECODER_NAMES)
        self.encoder_version = self._checked_version(self.encoder, "Encoder")
        self.decoder_version = self._checked_version(self.decoder, "Decoder")
        self.cfg = find_encoder_cfg(self.config, self.encoder)

    def _checked_version(self, program: Path, expected_kind: str) -> str:
        kind, version = vtm_version(program)
        if kind != expected_kind:
            raise CodecError(f"{program} is VTM's {kind}App, expected its {expected_kind}App")
        minimum = str(self.config["min_version"])
        if parse_version(version) < parse_version(minimum):
            raise CodecError(f"{program} is VTM {version}, older than the required {minimum} (the CTC anchor "
                             f"is VTM 22.2); point {VTM_DIR_ENV} or codec.vtm_dir at a newer build, or "
                             f"lower codec.min_version")
        return version

    @property
    def timeout(self) -> float:
        return float(self.config["timeout_s"])

    def version(self) -> str:
        if self.encoder_version == self.decoder_version:
            return f"VTM {self.encoder_version}"
        return f"VTM encoder {self.encoder_version}, decoder {self.decoder_version}"

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "encoder": str(self.encoder), "decoder": str(self.decoder),
                "cfg": str(self.cfg), "input_format": self.input_format}

    # -- sequences ------------------------------------------------------------------------------
    def encode(self, sequence: SequenceSpec, rate_point: int, workdir: Path) -> EncodeResult:
        bitstream = Path(workdir) / f"{sequence.name}_qp{rate_point}.bin"
        frames = read_sequence_frames(sequence)
        # planar RGB 4:4:4 is VTM's own input layout: the sequence file goes in as it is
        source = sequence.path if self.input_format == "rgb444" else None
        return self._encode_frames(frames, rate_point, sequence.fps, bitstream, source)

    def decode(self, bitstream: Path, sequence: SequenceSpec, workdir: Path) -> DecodeResult:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        output = Path(workdir) / f"{Path(bitstream).stem}_decoded.rgb"
        seconds, command, log = self._decode_to_rgb(Path(bitstream), sequence.width, sequence.height,
                                                    sequence.frames, output)
        return DecodeResult(frames_file=output, seconds=seconds, commands=[command], log=log)

    # -- one intra picture ----------------------------------------------------------------------
    def encode_picture(self, rgb: np.ndarray, qp: int, workdir: Path) -> bytes:
        check_picture(rgb)
        result = self._encode_frames(rgb[None], qp, INTRA_PICTURE_FPS, Path(workdir) / f"picture_qp{qp}.bin")
        data = result.bitstream.read_bytes()
        result.bitstream.unlink()
        return data

    def decode_picture(self, bitstream: bytes, width: int, height: int, workdir: Path) -> np.ndarray:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        path = Path(workdir) / "picture.bin"
        output = Path(workdir) / "picture_decoded.rgb"
        path.write_bytes(bitstream)
        try:
            self._decode_to_rgb(path, width, height, 1, output)
            return np.array(read_rgb444(output, width, height)[0])
        finally:
            path.unlink()
            output.unlink(missing_ok=True)

    # -- the two VTM runs -----------------------------------------------------------------------
    def encoder_command(self, source: Path, bitstream: Path, recon: Path, width: int, height: int,
                        frames: int, fps: float, qp: int) -> list[str]:
        """EncoderApp's command line: the cfg, then the per-run values and the CTC's changes."""
        command = [str(self.encoder), "-c", str(self.cfg),
                   f"--InputFile={source}", f"--BitstreamFile={bitstream}", f"--ReconFile={recon}",
                   f"--SourceWidth={width}", f"--SourceHeight={height}",
                   f"--FrameRate={frame_rate_text(fps)}", f"--FramesToBeEncoded={frames}",
                   "--InputBitDepth=8", f"--InputChromaFormat={FORMATS[self.input_format]}", f"--QP={qp}"]
        command += option_arguments(self.config.get("encoder_options"))
        if self.input_format == "rgb444":
            command += option_arguments(self.config.get("rgb444_encoder_options"))
        return command

    def decoder_command(self, bitstream: Path, output: Path) -> list[str]:
        command = [str(self.decoder), "-b", str(bitstream), "-o", str(output), "-d", "8"]
        if self.input_format == "rgb444":
            command += option_arguments(self.config.get("rgb444_decoder_options"))
        return command

    def _encode_frames(self, frames: np.ndarray, qp: int, fps: float, bitstream: Path,
                       source: Path | None = None) -> EncodeResult:
        count, _, height, width = frames.shape
        workdir = bitstream.parent
        workdir.mkdir(parents=True, exist_ok=True)
        made = source is None
        if made and self.input_format == "rgb444":
            source = bitstream.with_name(bitstream.stem + "_input.rgb")
            write_rgb444(source, frames)
        elif made:
            source = bitstream.with_name(bitstream.stem + "_input.yuv")
            write_yuv420(source, rgb_to_yuv420(frames))
        recon = bitstream.with_name(bitstream.stem + "_recon.yuv")
        command = self.encoder_command(source, bitstream, recon, width, height, count, fps, qp)
        bitstream.unlink(missing_ok=True)
        try:
            log, seconds = run_tool(command, self.timeout, cwd=workdir)
        except CodecError:
            bitstream.unlink(missing_ok=True)  # a failed run leaves no file that looks like a bitstream
            raise
        finally:
            recon.unlink(missing_ok=True)
            if made:
                source.unlink(missing_ok=True)
        bits = bitstream_bits(bitstream, self.encoder.name, log)
        summary = SUMMARY_ROW.search(log)
        if not summary:
            raise CodecError(f"{self.encoder.name} printed no SUMMARY table for {bitstream}\n{log_tail(log)}")
        if int(summary.group(1)) != count:
            raise CodecError(f"{self.encoder.name} reports {summary.group(1)} frames coded into {bitstream}, "
                             f"expected {count}\n{log_tail(log)}")
        return EncodeResult(bitstream=bitstream, bits={"video": bits}, seconds=seconds,
                            commands=[command], log=log)

    def _decode_to_rgb(self, bitstream: Path, width: int, height: int, frames: int,
                       output: Path) -> tuple[float, list[str], str]:
        """Decode ``bitstream`` into the planar RGB file ``output``; returns (seconds, command, log)."""
        rgb_bytes = frames * rgb444_frame_bytes(width, height)
        if self.input_format == "rgb444":
            command = self.decoder_command(bitstream, output)
            log, seconds = run_tool(command, self.timeout, cwd=output.parent)
            check_file_size(output, rgb_bytes, f"{frames} decoded {width}x{height} RGB 4:4:4 frames "
                                               f"from {bitstream}")
            return seconds, command, log
        decoded = output.with_suffix(".yuv")
        command = self.decoder_command(bitstream, decoded)
        try:
            log, seconds = run_tool(command, self.timeout, cwd=output.parent)
            check_file_size(decoded, frames * yuv420_frame_bytes(width, height),
                            f"{frames} decoded {width}x{height} YUV 4:2:0 frames from {bitstream}")
            write_rgb444(output, yuv420_to_rgb(read_yuv420(decoded, width, height)))
        finally:
            decoded.unlink(missing_ok=True)
        return seconds, command, log
