"""VTM, the CTC's VVC anchor: ``EncoderApp`` and ``DecoderApp`` of the VTM reference software.

Encoding uses the ``cfg/encoder_lowdelay_vtm.cfg`` of the VTM found (:mod:`anchors.vtm_tools`) plus
the CTC's changes, all in ``ctc/conf/codec/vtm.yaml``. VTM's own closing summary (its bitrate and
PSNRs) is recorded next to the harness's figures for the same coded pictures, and the decoder's
output is checked against the encoder's reconstruction (their md5s) in every job.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from anchors.command_identity import (
    BITSTREAM,
    FPS,
    FRAMES,
    HEIGHT,
    INPUT,
    OUTPUT,
    RECON,
    WIDTH,
    binary_identity,
)
from anchors.files import (
    INTRA_PICTURE_FPS,
    bitstream_bits,
    check_file_size,
    check_picture,
    frame_rate_text,
    read_sequence_frames,
)
from anchors.vtm_tools import (
    DECODER_NAMES,
    ENCODER_NAMES,
    VTM_DIR_ENV,
    find_encoder_cfg,
    find_program,
    parse_summary,
    parse_version,
    vtm_missing,
    vtm_version,
)
from ctc.codec import (
    VVC_MAX_QP,
    Codec,
    CodecError,
    DecodeResult,
    EncodeResult,
    IntraCodec,
    check_qps,
    register_codec,
)
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
from ctc.hashing import compute_digest
from ctc.metrics.psnr import plane_mse, psnr_from_mse
from ctc.testset.sequences import SequenceSpec
from ctc.tools import log_tail, run_tool

FORMATS = {"yuv420": "420", "rgb444": "444"}  # input_format -> InputChromaFormat
# VTM's Y, U, V with RGB input (InputColourSpaceConvert=RGBtoGBR) are the G, B, R planes
CODED_PLANES = {"yuv420": (0, 1, 2), "rgb444": (1, 2, 0)}


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
            raise CodecError(
                f"{program} is VTM {version}, older than the required {minimum} (the CTC anchor "
                f"is VTM 22.2); point {VTM_DIR_ENV} or codec.vtm_dir at a newer build, or "
                f"lower codec.min_version"
            )
        return version

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> None:
        check_qps(config, 0, VVC_MAX_QP, "8-bit VVC")

    @classmethod
    def missing(cls, config: Mapping[str, Any]) -> str | None:
        return vtm_missing(config)

    @classmethod
    def identity(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """The version, the binaries' bytes, the cfg file's content and the exact command lines
        (:mod:`anchors.command_identity`)."""
        codec = cls(config)

        def encode(qp: int) -> list[str]:
            return codec.encoder_command(INPUT, BITSTREAM, RECON, WIDTH, HEIGHT, FRAMES, FPS, qp)

        return {
            "version": codec.version(),
            "cfg": codec.cfg.name,
            "cfg_sha256": compute_digest(codec.cfg, "sha256"),
            **binary_identity(
                {"encoder": codec.encoder, "decoder": codec.decoder},
                encode,
                codec.decoder_command(BITSTREAM, OUTPUT),
                files=[codec.cfg],
            ),
        }

    @property
    def timeout(self) -> float:
        return float(self.config["timeout_s"])

    def version(self) -> str:
        if self.encoder_version == self.decoder_version:
            return f"VTM {self.encoder_version}"
        return f"VTM encoder {self.encoder_version}, decoder {self.decoder_version}"

    def provenance(self) -> dict[str, Any]:
        return {
            **super().provenance(),
            "encoder": str(self.encoder),
            "decoder": str(self.decoder),
            "cfg": str(self.cfg),
            "input_format": self.input_format,
        }

    # -- sequences ------------------------------------------------------------------------------
    def encode(self, sequence: SequenceSpec, rate_point: int, workdir: Path) -> EncodeResult:
        bitstream = Path(workdir) / f"{sequence.name}_qp{rate_point}.bin"
        frames = read_sequence_frames(sequence)
        # planar RGB 4:4:4 is VTM's own input layout: the sequence file goes in as it is
        source = sequence.path if self.input_format == "rgb444" else None
        return self._encode_frames(frames, rate_point, sequence.fps, bitstream, source)

    def decode(self, bitstream: Path, sequence: SequenceSpec, workdir: Path) -> DecodeResult:
        """Decode to RGB; ``details`` hold the decoder output's md5 and, when the sequence's file is there,
        the harness's PSNR of each coded plane against the pictures VTM was given (what VTM's own
        Y/U/V-PSNR measures; a decoder without the source, as HDAC's base layer, has no such PSNR)."""
        Path(workdir).mkdir(parents=True, exist_ok=True)
        output = Path(workdir) / f"{Path(bitstream).stem}_decoded.rgb"
        source = read_sequence_frames(sequence) if sequence.path.is_file() else None
        return self._decode_to_rgb(
            Path(bitstream), sequence.width, sequence.height, sequence.frames, output, coded_source=source
        )

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
    def encoder_command(
        self,
        source: Path,
        bitstream: Path,
        recon: Path,
        width: int | str,
        height: int | str,
        frames: int | str,
        fps: float | str,
        qp: int,
    ) -> list[str]:
        """EncoderApp's command line: the cfg, then the per-run values and the CTC's changes."""
        command = [
            str(self.encoder),
            "-c",
            str(self.cfg),
            f"--InputFile={source}",
            f"--BitstreamFile={bitstream}",
            f"--ReconFile={recon}",
            f"--SourceWidth={width}",
            f"--SourceHeight={height}",
            f"--FrameRate={frame_rate_text(fps)}",
            f"--FramesToBeEncoded={frames}",
            "--InputBitDepth=8",
            f"--InputChromaFormat={FORMATS[self.input_format]}",
            f"--QP={qp}",
        ]
        command += option_arguments(self.config.get("encoder_options"))
        if self.input_format == "rgb444":
            command += option_arguments(self.config.get("rgb444_encoder_options"))
        return command

    def decoder_command(self, bitstream: Path, output: Path) -> list[str]:
        command = [str(self.decoder), "-b", str(bitstream), "-o", str(output), "-d", "8"]
        if self.input_format == "rgb444":
            command += option_arguments(self.config.get("rgb444_decoder_options"))
        return command

    def _encode_frames(
        self, frames: np.ndarray, qp: int, fps: float, bitstream: Path, source: Path | None = None
    ) -> EncodeResult:
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
            recon_md5 = compute_digest(recon) if recon.is_file() else None
        except CodecError:
            bitstream.unlink(missing_ok=True)  # a failed run leaves no file that looks like a bitstream
            raise
        finally:
            recon.unlink(missing_ok=True)
            if made:
                source.unlink(missing_ok=True)
        bits = bitstream_bits(bitstream, self.encoder.name, log)
        summary = self._checked_summary(log, bitstream, count)
        return EncodeResult(
            bitstream=bitstream,
            bits={"video": bits},
            seconds=seconds,
            commands=[command],
            log=log,
            details={"vtm_summary": summary, "reconstruction_md5": recon_md5},
        )

    def _checked_summary(self, log: str, bitstream: Path, count: int) -> dict[str, float]:
        """VTM's own figures for the coded sequence (the last layer's summary row)."""
        layers = parse_summary(log)
        if not layers:
            raise CodecError(
                f"{self.encoder.name} printed no closing summary ('Total Frames | Bitrate ...') "
                f"for {bitstream}; its log:\n{log_tail(log)}"
            )
        for layer in layers:
            if layer["frames"] != count:
                raise CodecError(
                    f"{self.encoder.name} reports {layer['frames']} frames coded into "
                    f"{bitstream} (layer {layer['layer']}), expected {count}\n{log_tail(log)}"
                )
        return layers[-1]

    def _decode_to_rgb(
        self,
        bitstream: Path,
        width: int,
        height: int,
        frames: int,
        output: Path,
        coded_source: np.ndarray | None = None,
    ) -> DecodeResult:
        """Decode ``bitstream`` into the planar RGB file ``output``; with ``coded_source`` (the original
        RGB frames) the details hold the harness's PSNR of each plane VTM coded."""
        rgb_bytes = frames * rgb444_frame_bytes(width, height)
        if self.input_format == "rgb444":
            command = self.decoder_command(bitstream, output)
            log, seconds = run_tool(command, self.timeout, cwd=output.parent)
            check_file_size(
                output, rgb_bytes, f"{frames} decoded {width}x{height} RGB 4:4:4 frames from {bitstream}"
            )
            details = {"output_md5": compute_digest(output)}
            if coded_source is not None:
                details["coded_psnr"] = coded_psnr(
                    coded_source, read_rgb444(output, width, height), self.input_format
                )
            return DecodeResult(
                frames_file=output, seconds=seconds, commands=[command], log=log, details=details
            )
        decoded = output.with_suffix(".yuv")
        command = self.decoder_command(bitstream, decoded)
        try:
            log, seconds = run_tool(command, self.timeout, cwd=output.parent)
            check_file_size(
                decoded,
                frames * yuv420_frame_bytes(width, height),
                f"{frames} decoded {width}x{height} YUV 4:2:0 frames from {bitstream}",
            )
            details = {"output_md5": compute_digest(decoded)}
            yuv = read_yuv420(decoded, width, height)
            if coded_source is not None:
                details["coded_psnr"] = coded_psnr(rgb_to_yuv420(coded_source), yuv, self.input_format)
            write_rgb444(output, yuv420_to_rgb(yuv))
        finally:
            decoded.unlink(missing_ok=True)
        return DecodeResult(frames_file=output, seconds=seconds, commands=[command], log=log, details=details)


def coded_psnr(source: Any, decoded: Any, input_format: str) -> dict[str, float]:
    """The harness's ``psnr_y``, ``psnr_u``, ``psnr_v`` of the pictures VTM coded, as VTM computes them:
    the mean over frames of each plane's PSNR (peak 255), planes in VTM's coding order (Y, U, V;
    for RGB input G, B, R). ``source``/``decoded``: YUV 4:2:0 planes or ``(N, 3, H, W)`` RGB."""
    if input_format == "rgb444":
        planes = [(np.asarray(source)[:, c], np.asarray(decoded)[:, c]) for c in CODED_PLANES[input_format]]
    else:
        planes = [(getattr(source, p), getattr(decoded, p)) for p in "yuv"]
    return {
        f"psnr_{name}": float(psnr_from_mse(plane_mse(ref, dist)).mean())
        for name, (ref, dist) in zip("yuv", planes, strict=True)
    }
