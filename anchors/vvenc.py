"""VVC through libvvenc in the FFmpeg binary of ``imageio-ffmpeg``; decoded by FFmpeg's native ``vvc``.

The low-delay configuration (one intra picture, then pictures without reordering, GOP 8, 8-bit
internal as in the CTC) lives in ``ctc/conf/codec/vvenc.yaml`` as ``vvenc_params``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from anchors.ffmpeg_codec import FfmpegCodec, join_params
from ctc.codec import VVC_MAX_QP, check_qps, register_codec


@register_codec("vvenc")
class VvencCodec(FfmpegCodec):
    library = "libvvenc"
    muxer = "vvc"
    suffix = ".266"
    input_bit_depth = 10  # libvvenc takes yuv420p10le only; InternalBitDepth=8 shifts back exactly
    version_pattern = r"libvvenc version: (\S+)"

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> None:
        check_qps(config, 0, VVC_MAX_QP, "8-bit VVC")

    def encoder_options(self, qp: int) -> list[str]:
        return [
            *self.preset_and_qp(qp),
            "-qpa",
            "1" if self.config.get("qpa") else "0",
            "-vvenc-params",
            join_params(self.config.get("vvenc_params")),
        ]
