"""HEVC through libx265 in the FFmpeg binary of ``imageio-ffmpeg``; decoded by FFmpeg's ``hevc``.

Low delay in constant-QP mode (one intra picture, no B-frames, no scene cuts): the settings live in
``ctc/conf/codec/x265.yaml`` as ``x265_params``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from anchors.ffmpeg_codec import FfmpegCodec, join_params
from ctc.codec import CodecError, check_qps, register_codec

HEVC_MAX_QP = 51  # 8-bit HEVC


@register_codec("x265")
class X265Codec(FfmpegCodec):
    library = "libx265"
    muxer = "hevc"
    suffix = ".265"
    version_pattern = r"HEVC encoder version (\S+)"

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> None:
        check_qps(config, 0, HEVC_MAX_QP, "8-bit HEVC")

    def encoder_options(self, qp: int) -> list[str]:
        if not 0 <= qp <= HEVC_MAX_QP:
            raise CodecError(f"x265 (8-bit HEVC) takes QP 0 to {HEVC_MAX_QP}, not {qp}")
        # thread pool and frame threads fixed by config: x265's output depends on frame-threads
        params = {
            **(self.config.get("x265_params") or {}),
            "pools": self.threads,
            "frame-threads": self.threads,
        }
        return [*self.preset_and_qp(qp), "-x265-params", join_params(params)]
