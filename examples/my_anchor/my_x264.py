"""An anchor that lives outside the harness: H.264 through libx264 in imageio-ffmpeg's FFmpeg, low delay,
constant QP. With conf/codec/x264.yaml, all it takes to sweep it:

    PYTHONPATH=examples/my_anchor ctc-run --config-dir examples/my_anchor/conf codec=x264 anchor=vvenc

(tests/test_plugins.py runs it from a copy outside the repository.)
"""

from anchors.ffmpeg_codec import FfmpegCodec
from ctc.codec import register_codec


@register_codec("x264")
class X264Codec(FfmpegCodec):
    library = "libx264"
    muxer = "h264"
    suffix = ".264"
    version_pattern = r"encoder\s*: (Lavc\S+ libx264)"

    def encoder_options(self, qp: int) -> list[str]:
        return ["-c:v", self.library, "-preset", "medium", "-qp", str(qp), "-bf", "0", "-g", "100000"]
