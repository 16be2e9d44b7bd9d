"""A fast, deterministic codec for the runner's tests: module ``fake_codec`` (codecs ``fake`` and more).

It keeps the top ``8 - rate_point`` bits of every sample and zlib-compresses them. Config keys:
``fail_on`` (``SEQUENCE/RATE_POINT`` entries whose encoding raises :class:`CodecError`),
``short_decode`` (the decoder drops a frame) and ``random_weights`` (reported as a GFVC model would).
The environment variable ``FAKE_CODEC_INTERRUPT`` (``SEQUENCE/RATE_POINT``) makes that job's encoder
raise ``KeyboardInterrupt`` half way, as Ctrl-C would, and ``FAKE_CODEC_HANG`` makes it write half
its bitstream and a file ``hanging`` beside it (holding the SLURM job id of an array task, if it is
one), then wait to be killed (a SLURM job that was requeued runs through); neither changes the
configuration (and so the jobs' configuration hash).
"""

from __future__ import annotations

import os
import time
import zlib
from pathlib import Path

import numpy as np

from ctc.codec import Codec, CodecError, DecodeResult, EncodeResult, register_codec
from ctc.frames import write_rgb444
from ctc.testset.sequences import SequenceSpec

INTERRUPT_ENV = "FAKE_CODEC_INTERRUPT"
HANG_ENV = "FAKE_CODEC_HANG"


@register_codec("fake")
class FakeCodec(Codec):
    def version(self) -> str:
        return "fake 1.0"

    def provenance(self) -> dict:
        return {**super().provenance(), "random_weights": bool(self.config.get("random_weights", False))}

    def encode(self, sequence: SequenceSpec, rate_point: int, workdir: Path) -> EncodeResult:
        start = time.perf_counter()
        job = f"{sequence.name}/{rate_point}"
        bitstream = workdir / "stream.bin"
        if job in self.config.get("fail_on", []):
            raise CodecError(f"fake encoder crashed on purpose on {job}")
        kept_bits = np.asarray(sequence.read()) >> rate_point
        payload = bytes([rate_point]) + zlib.compress(kept_bits.tobytes(), 6)
        requeued = int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0
        if job in (os.environ.get(INTERRUPT_ENV), os.environ.get(HANG_ENV)) and not requeued:
            bitstream.write_bytes(payload[: len(payload) // 2])
            if os.environ.get(INTERRUPT_ENV) == job:
                raise KeyboardInterrupt
            array_task = [os.environ.get(f"SLURM_ARRAY_{key}_ID") for key in ("JOB", "TASK")]
            (workdir / "hanging").write_text("_".join(array_task) if all(array_task) else "")
            time.sleep(600)
        bitstream.write_bytes(payload)
        return EncodeResult(
            bitstream,
            {"header": 8, "video": 8 * (len(payload) - 1)},
            time.perf_counter() - start,
            [["fake-enc", f"--shift={rate_point}"]],
            log=f"fake encoder: {job}, {len(payload)} bytes",
        )

    def decode(self, bitstream: Path, sequence: SequenceSpec, workdir: Path) -> DecodeResult:
        start = time.perf_counter()
        payload = bitstream.read_bytes()
        shift = payload[0]
        frames = np.frombuffer(zlib.decompress(payload[1:]), np.uint8).reshape(
            -1, 3, sequence.height, sequence.width
        )
        decoded = (frames << shift) + ((1 << shift) >> 1)  # the middle of each quantisation step
        if self.config.get("short_decode"):
            decoded = decoded[:-1]
        output = workdir / "decoded.rgb"
        write_rgb444(output, decoded)
        return DecodeResult(output, time.perf_counter() - start, [["fake-dec"]], log="fake decoder: done")


@register_codec("fake_anchor")
class FakeAnchor(FakeCodec):
    pass


@register_codec("fake_gpu")
class FakeGpuCodec(FakeCodec):
    uses_gpu = True
