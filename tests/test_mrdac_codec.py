"""The MRDAC codec: two real clips cut together, references by the real vvenc, tiny random weights;
the decoder's output equals the encoder's reconstruction and every reference is counted and listed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from model_helpers import tiny_params
from test_gfvc_codec import as_sequence, encode_and_decode, resized

from ctc.codec import create_codec
from ctc.conf import load_section
from ctc.testset.sequences import load_test_set
from models import bitstream
from models.bitstream import BitstreamError
from models.mrdac_policy import ReferencePolicy
from models.registry import load_model_config

REFERENCES = {"gop_size": 3, "search_window": 1, "max_references": 3}  # over ctc/conf/codec/mrdac.yaml's


def references() -> dict:
    return {**load_section("codec", "mrdac")["references"], **REFERENCES}


@pytest.fixture(scope="module")
def cut_clip(shared: Path, tmp_path_factory: pytest.TempPathFactory):
    """Four frames of FACES_00 then four of FACES_08: a large change of face and pose at frame 4."""
    golden = shared / "golden" / "mrdac"
    size = json.loads((golden / "tiny" / "config.json").read_text())["image_size"][0]
    specs = load_test_set({"name": "faces", "sequences": ["FACES_00", "FACES_08"], "frames": 4})
    parts = [resized(np.asarray(spec.read()), size) for spec in specs]
    frames = np.concatenate(parts)
    return as_sequence(frames, tmp_path_factory.mktemp("cut")), golden


def tiny_codec(golden: Path):
    model = {**load_model_config("mrdac"), "model_params": tiny_params(golden)}
    return create_codec(
        {
            **load_section("codec", "mrdac"),
            "model": model,
            "weights": "random",
            "references": references(),
            "encoder_reconstruction": True,
            "intra": load_section("picture_codec", "vvenc"),
        }
    )


def test_closed_loop_with_vvenc_references(cut_clip, tmp_path: Path) -> None:
    sequence, golden = cut_clip
    codec = tiny_codec(golden)
    result, decoded = encode_and_decode(codec, sequence, 32, tmp_path)
    assert set(result.bits) == {"header", "key_frame", "features"}
    assert result.total_bits == 8 * result.bitstream.stat().st_size
    plan = ReferencePolicy.from_config({"references": references()}, "mrdac").plan(8)
    assert result.details["key_frame_positions"] == plan.references == [0, 3, 6]
    assert result.details["references_in_use"] == plan.in_use
    assert result.details["references_in_use"][4] == [0, 3, 6]  # after the cut, the new clip's reference 6
    assert result.details["references_in_use"][7] == [0, 3, 6]
    stream = codec.parse(result.bitstream.read_bytes())
    assert [bool(p) for p in stream.payloads] == [f not in (0, 3, 6) for f in range(8)]
    assert result.bits["key_frame"] == 8 * sum(map(len, stream.key_frames.values()))
    recon = tmp_path / "enc" / "face00_qp32_recon.rgb"
    assert recon.read_bytes() == decoded.tobytes()
    for position in (0, 3, 6):  # a reference is shown as the picture codec decoded it
        assert np.array_equal(
            decoded[position],
            codec.intra.decode_picture(
                stream.key_frames[position], sequence.width, sequence.height, tmp_path
            ),
        )


def test_references_elsewhere_than_the_policy_are_refused(cut_clip, tmp_path: Path) -> None:
    sequence, golden = cut_clip
    codec = tiny_codec(golden)
    encoded = codec.encode_frames(np.asarray(sequence.read()), 32, tmp_path)
    stream = encoded.stream
    stream.key_frames[5] = stream.key_frames.pop(6)
    with pytest.raises(BitstreamError, match=r"references at \[0, 3, 5\].*\[0, 3, 6\]"):
        codec.decode_stream(codec.parse(bitstream.pack(stream)), tmp_path)
