"""Jobs with the real VTM (built from ``../shared/vtm``): what the harness promises when the decoder's
output is not what the encoder made. A bitstream put in the place of another (a mixed-up copy) is
decoded, but not into the encoder's reconstruction: the closed-loop check fails the job; a truncated
bitstream and a decoder output shorter than the sequence are refused with the file named.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from anchor_helpers import face_clip

from ctc.codec import CodecError, create_codec
from ctc.identity import codec_identity, job_identity, sequence_identity
from ctc.jobs import Job, run_job
from ctc.metrics import metric_code

pytestmark = [pytest.mark.vtm, pytest.mark.slow]
FRAMES = 2


@pytest.fixture(scope="module")
def clip(shared: Path, tmp_path_factory: pytest.TempPathFactory):
    spec, _ = face_clip(shared, tmp_path_factory.mktemp("clip"))
    return replace(spec, frames=FRAMES)


def test_a_decoder_output_unlike_the_encoders_reconstruction_fails_the_job(real_vtm, clip, tmp_path):
    """Protects the closed-loop check: the decoder's output md5 against the encoder's reconstruction md5."""
    section = {**real_vtm, "name": "vtm"}
    identity = job_identity(codec_identity(section), sequence_identity(clip), 37)
    job = Job("anchor", "vtm", clip, 37, identity, metric_code=metric_code(["psnr"]))
    metrics = {"names": ["psnr"], "device": "cpu"}
    decoded = run_job(job, section, metrics, tmp_path / "run", score=False)
    assert decoded["status"] == "decoded"  # its own bitstream decodes into its reconstruction
    other = create_codec(section).encode(clip, 47, tmp_path / "other")
    shutil.copyfile(other.bitstream, job.directory(tmp_path / "run") / decoded["bitstream"])
    result = run_job(job, section, metrics, tmp_path / "run")
    assert result["status"] == "failed"
    assert "differs from the encoder's reconstruction" in result["error"]
    assert "encoder and decoder mismatch" in result["error"]
    assert decoded["encode_details"]["reconstruction_md5"] in result["error"]


@pytest.mark.parametrize("input_format", ["yuv420", "rgb444"])
def test_a_truncated_bitstream_is_refused(real_vtm, clip, tmp_path, input_format):
    codec = create_codec({**real_vtm, "input_format": input_format})
    encoded = codec.encode(clip, 37, tmp_path)
    data = encoded.bitstream.read_bytes()
    encoded.bitstream.write_bytes(data[: len(data) // 2])
    with pytest.raises(CodecError) as error:
        codec.decode(encoded.bitstream, clip, tmp_path)
    assert re.match(r"DecoderApp\w* exited with status [1-9]", str(error.value))  # VTM: "FIFO exceeded"


def test_a_decoder_output_shorter_than_the_sequence_is_refused(real_vtm, clip, tmp_path):
    """A bitstream of fewer frames than the sequence: VTM decodes what it holds, the harness refuses it."""
    codec = create_codec(real_vtm)
    encoded = codec.encode(clip, 37, tmp_path)
    longer = replace(clip, frames=FRAMES + 1)
    with pytest.raises(CodecError, match=rf"expected \d+ bytes \({FRAMES + 1} decoded .* from "):
        codec.decode(encoded.bitstream, longer, tmp_path)
