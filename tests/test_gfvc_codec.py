"""The GFVC codec pipeline: encode -> one bitstream file -> decode, on real face frames.

The pipeline, rate accounting and refusals are tested with a small stand-in model and intra codec
(so they do not depend on the networks); the real models and vvenc are exercised in the slow tests.
"""

from __future__ import annotations

import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from ctc.codec import CODECS, CodecError, IntraCodec
from ctc.frames import read_rgb444, write_rgb444
from ctc.sequences import SequenceSpec
from models import bitstream, entropy
from models.base import GenerativeModel
from models.bitstream import BitstreamError
from models.gfvc import GfvcCodec, load_config_section

FRAMES = 5


class StandInModel(GenerativeModel):
    """Features = 4x4 mean-pooled luma; generation = key frame brightened by the feature change."""

    name = "stand-in"
    feature_size = 16
    random_weights = False
    weights = "stand-in"

    def extract_features(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.adaptive_avg_pool2d(frames.mean(1, keepdim=True), 4).flatten(1)

    def prepare_reference(self, key_frame: torch.Tensor) -> torch.Tensor:
        return self.extract_features(key_frame)

    def generate(self, key_frame: torch.Tensor, reference: torch.Tensor,
                 features: torch.Tensor) -> torch.Tensor:
        gain = 1 + (features - reference).mean(1).view(-1, 1, 1, 1)
        return (key_frame * gain).clamp(0, 1)


class StandInIntra(IntraCodec):
    """Lossy but simple: samples divided by a QP-dependent step, zlib-compressed."""

    def encode_picture(self, rgb: np.ndarray, qp: int, workdir: Path) -> bytes:
        return bytes([1 + qp // 4]) + zlib.compress((rgb // (1 + qp // 4)).astype(np.uint8).tobytes())

    def decode_picture(self, bitstream: bytes, width: int, height: int, workdir: Path) -> np.ndarray:
        step = bitstream[0]
        levels = np.frombuffer(zlib.decompress(bitstream[1:]), np.uint8).reshape(3, height, width)
        return np.minimum(levels.astype(np.int32) * step + step // 2, 255).astype(np.uint8)


def face_frames(shared: Path, count: int, clip: str = "00.mp4") -> np.ndarray:
    """The first ``count`` frames of a real clip, decoded by the FFmpeg of imageio-ffmpeg, (N, 3, H, W)."""
    from anchors.tools import ffmpeg_exe

    path = shared / "data" / "faces" / clip
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    command = [ffmpeg_exe(), "-v", "error", "-i", str(path), "-frames:v", str(count),
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(command, check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(count, 256, 256, 3).transpose(0, 3, 1, 2).copy()


@pytest.fixture(scope="module")
def clip(shared, tmp_path_factory) -> SequenceSpec:
    root = tmp_path_factory.mktemp("faces")
    write_rgb444(root / "face00.rgb", face_frames(shared, FRAMES))
    return SequenceSpec("face00", "faces", "face00.rgb", 256, 256, FRAMES, 30.0, root=root)


def stand_in_codec(**overrides) -> GfvcCodec:
    config = {**load_config_section("codec", "cfte"), **overrides}
    return CODECS["cfte"](config, model=StandInModel(), intra_codec=StandInIntra())


@pytest.mark.parametrize("coding", ["ae", "sei"])
def test_round_trip_accounting_and_closed_loop(clip, tmp_path, coding):
    codec = stand_in_codec(feature_coding=coding, batch_size=2)
    result = codec.encode(clip, 32, tmp_path / "enc")
    size = result.bitstream.stat().st_size
    assert set(result.bits) == {"header", "key_frame", "features"} and result.total_bits == 8 * size
    decoded = codec.decode(result.bitstream, clip, tmp_path / "dec")
    frames = np.asarray(read_rgb444(decoded.frames_file, 256, 256))
    original = np.asarray(clip.read())
    assert frames.shape == original.shape
    # frame 0 is the decoded key frame; the others follow the stand-in's closed-loop features
    encoded = codec.encode_frames(original, 32, tmp_path / "enc2")
    assert np.array_equal(frames[0], encoded.key_frame)
    assert np.abs(frames.astype(int) - original).mean() < 12
    # the encoder's reconstruction, rendered one frame at a time, equals the decoder's batched output
    one_by_one = stand_in_codec(feature_coding=coding, batch_size=1)
    assert np.array_equal(one_by_one.render(encoded.key_frame, encoded.features), frames)
    assert bitstream.pack(encoded.stream) == result.bitstream.read_bytes()  # deterministic


def test_ae_payloads_are_the_common_software_coding_of_the_residuals(clip, tmp_path):
    codec = stand_in_codec()
    original = np.asarray(clip.read())
    encoded = codec.encode_frames(original, 22, tmp_path)
    previous = codec._features(encoded.key_frame[None])[0]
    assert encoded.stream.payloads[0] == b""
    for index, payload in enumerate(encoded.stream.payloads[1:], start=1):
        current = codec._features(original[index:index + 1])[0]
        values = entropy.quantise(current - previous, codec.q_step)
        assert payload == entropy.encode_values(values)
        previous = previous + np.asarray(values, np.float64) / codec.q_step
        assert np.array_equal(previous, encoded.features[index - 1])


def test_truncation_output_rounding():
    from models.gfvc import to_uint8

    prediction = torch.tensor([0.0, 0.5, 0.9999, 1.0, 0.2 + 1e-7])
    assert to_uint8(prediction, "truncate").tolist() == [0, 127, 254, 255, 51]
    assert to_uint8(prediction, "round").tolist() == [0, 128, 255, 255, 51]


def test_bad_bitstreams_are_refused(clip, tmp_path):
    codec = stand_in_codec()
    path = codec.encode(clip, 42, tmp_path / "enc").bitstream
    data = path.read_bytes()
    cases = {"truncated": data[:-7], "flipped": data[:40] + bytes([data[40] ^ 1]) + data[41:], "empty": b""}
    for name, corrupt in cases.items():
        bad = tmp_path / f"{name}.gfvc"
        bad.write_bytes(corrupt)
        with pytest.raises(BitstreamError, match=str(bad)):
            codec.decode(bad, clip, tmp_path / "dec")
    with pytest.raises(BitstreamError, match="configuration"):
        stand_in_codec(q_step=8).decode(path, clip, tmp_path / "dec")
    with pytest.raises(BitstreamError, match="configuration"):
        stand_in_codec(feature_coding="sei").decode(path, clip, tmp_path / "dec")
    fomm = CODECS["fomm"]({**load_config_section("codec", "cfte"), "name": "fomm"},
                          model=StandInModel(), intra_codec=StandInIntra())
    with pytest.raises(BitstreamError, match="made by model 'cfte', this decoder is 'fomm'"):
        fomm.decode(path, clip, tmp_path / "dec")
    wrong_length = SequenceSpec("face00", "faces", "face00.rgb", 256, 256, FRAMES + 1, 30.0, root=clip.root)
    with pytest.raises(CodecError, match="holds 5 frames"):
        codec.decode(path, wrong_length, tmp_path / "dec")


def test_bad_config_values_are_refused():
    with pytest.raises(ValueError, match="feature_coding 'zip'"):
        stand_in_codec(feature_coding="zip")
    with pytest.raises(ValueError, match="output_rounding"):
        stand_in_codec(output_rounding="ceil")
    with pytest.raises(CodecError, match="no codec config 'nonesuch'"):
        load_config_section("codec", "nonesuch")


@pytest.mark.parametrize("name", ["fomm", "cfte", "fv2v"])
def test_config_files_hold_every_number(name):
    config = load_config_section("codec", name)
    assert config["name"] == name and config["module"] == "models.gfvc"
    assert config["rate_points"] == [22, 32, 42, 52]
    assert config["q_step"] == {"fomm": 64, "cfte": 4, "fv2v": 256}[name]
    assert 2 ** config["sei"]["coordinate_precision"] == config["q_step"]
    assert {"weights", "intra_codec", "feature_coding", "output_rounding", "batch_size"} <= set(config)


def tiny_codec(name: str, shared: Path, intra: IntraCodec | None = None, **overrides) -> GfvcCodec:
    """The real model ``name`` in its tiny golden configuration with deterministic random weights."""
    import json

    tiny = shared / "golden" / name / "tiny" / "config.json"
    if not tiny.is_file():
        pytest.skip(f"{tiny} is absent")
    config = {**load_config_section("codec", name), "weights": "random",
              "model": {"model_params": json.loads(tiny.read_text())["model_params"]}, **overrides}
    return CODECS[name](config, intra_codec=intra or StandInIntra())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fomm", "cfte", "fv2v"])
def test_real_tiny_models_round_trip_in_both_modes(name, shared, clip, tmp_path):
    original = np.asarray(clip.read())[:3]
    for coding in ("ae", "sei"):
        codec = tiny_codec(name, shared, feature_coding=coding, batch_size=2)
        assert codec.provenance()["random_weights"] is True and "RANDOM" in codec.version()
        encoded = codec.encode_frames(original, 32, tmp_path)
        data = bitstream.pack(encoded.stream)
        assert bitstream.pack(codec.encode_frames(original, 32, tmp_path).stream) == data  # deterministic
        decoded = codec.decode_bytes(data, tmp_path)
        assert decoded.shape == original.shape and np.array_equal(decoded[0], encoded.key_frame)
        assert np.array_equal(codec.render(encoded.key_frame, encoded.features), decoded)
        assert encoded.features.shape == (2, codec.model.feature_size)
