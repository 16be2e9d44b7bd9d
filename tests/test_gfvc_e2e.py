"""``make ctc MODEL=cfte TESTSET=demo`` end to end on CPU: the real CFTE configuration on random weights
(no checkpoint here), the real vvenc key frame, two demo frames, one rate point."""

from __future__ import annotations

import math

import pytest

from ctc.results import read_result
from ctc.runner import main
from models.checkpoints import ENV_VAR

# CFTE alone, two demo frames of DEMO_001 at one rate point, PSNR only, one job at a time
CFTE_ON_ONE_DEMO_POINT = [
    "codec=cfte",
    "anchor=none",
    "testset=demo",
    "testset.frames=2",
    "testset.sequences=[DEMO_001]",
    "codec.rate_points=[42]",
    "metrics=psnr",
    "jobs=1",
]


@pytest.mark.slow
def test_cfte_sweep_on_the_demo_set_with_random_weights(tmp_path, monkeypatch, capfd):
    monkeypatch.delenv(ENV_VAR, raising=False)  # no checkpoint: weights auto falls back to random
    main([*CFTE_ON_ONE_DEMO_POINT, f"results_dir={tmp_path}"])
    directory = tmp_path / "demo-f2" / "cfte" / "DEMO_001" / "42"
    result = read_result(directory)
    assert result["status"] == "ok", result.get("error")
    assert result["random_weights"] is True and result["codec_provenance"]["random_weights"] is True
    assert "RANDOM weights" in result["codec_version"] and result["codec_provenance"]["checkpoint"] is None
    assert result["codec_provenance"]["intra_codec"] in ("vtm", "vvenc")
    # the file's size, split into its parts; the rate as the common software counts it: key frame and
    # feature payloads (bytes x 8), without the container (header, length fields, checksum)
    bits = result["bits"]
    size = (directory / "DEMO_001_qp42.gfvc").stat().st_size
    assert bits["total"] == sum(bits["parts"].values()) == 8 * size
    assert set(bits["parts"]) == {"header", "key_frame", "features"} and bits["parts"]["features"] > 0
    per_kbit = 25 / 2 / 1000
    assert result["file_kbps"] == pytest.approx(bits["total"] * per_kbit)
    counted = bits["parts"]["key_frame"] + bits["parts"]["features"]
    assert result["kbps"] == pytest.approx(counted * per_kbit)
    assert result["rate_counts"] == "key_frame+features"
    assert math.isfinite(result["metrics"]["psnr"]) and result["metrics"]["psnr"] > 10
    by_mode = result["encode_details"]["feature_bits_by_mode"]
    assert by_mode["ae"] == bits["parts"]["features"] and by_mode["sei"] > 0
    # where the job's time went: its stages within its wall time, the codec's split within EncT/DecT
    timing = result["timing"]
    stages = ("lock_wait_s", "codec_setup_s", "encode_s", "decode_s", "io_s", "other_s")
    assert result["codec_built"] is True and timing["codec_setup_s"] > 0 and timing["scoring_s"] > 0
    assert sum(timing[stage] for stage in stages) == pytest.approx(timing["wall_s"], abs=0.01)
    assert timing["encode_s"] >= result["enc_seconds"] and timing["decode_s"] >= result["dec_seconds"]
    encode, decode = timing["encode_split_s"], timing["decode_split_s"]
    assert {"key_frame", "features", "io"} <= set(encode) and {"key_frame", "generation"} <= set(decode)
    assert sum(encode.values()) - encode["io"] <= result["enc_seconds"] + 0.01  # EncT: no file IO
    assert sum(decode.values()) <= result["dec_seconds"] + 0.01
    err = capfd.readouterr().err
    assert err.count("cfte runs with RANDOM weights") == 1  # one WARNING line, however many frames


@pytest.mark.slow
def test_cfte_sweep_with_sei_features_writes_one_vvc_stream(tmp_path, monkeypatch):
    """``make ctc MODEL=cfte ARGS="codec.feature_coding=sei"``: each job's bitstream is one ``.266``."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    main([*CFTE_ON_ONE_DEMO_POINT, "codec.feature_coding=sei", f"results_dir={tmp_path}"])
    directory = tmp_path / "demo-f2" / "cfte" / "DEMO_001" / "42"
    result = read_result(directory)
    assert result["status"] == "ok", result.get("error")
    stream = directory / "DEMO_001_qp42.266"
    assert stream.read_bytes().startswith((b"\x00\x00\x00\x01", b"\x00\x00\x01"))  # Annex-B
    assert not list(directory.glob("*.gfvc"))
    bits = result["bits"]
    assert bits["total"] == sum(bits["parts"].values()) == 8 * stream.stat().st_size
    assert (
        bits["parts"]["header"] == 0
        and bits["parts"]["features"] == result["encode_details"]["feature_bits_by_mode"]["sei"]
    )
