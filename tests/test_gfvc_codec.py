"""The GFVC codec pipeline: encode -> one bitstream file -> decode, on real face frames.

The pipeline, rate accounting and refusals are tested with a small stand-in model and intra codec
(so they do not depend on the networks); the intra-codec choice with the real vvenc and the real
VTM; at the end the real models in their tiny golden configurations (random weights) with the real
vvenc key frame (and CFTE with the real VTM key frame, YUV and RGB) on the real clip FACES_00,
downscaled to the size each tiny model was made for.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from anchors.ffmpeg_codec import FfmpegCodec
from anchors.vtm import VtmCodec
from ctc.codec import CodecError, IntraCodec
from ctc.conf import ConfigNotFound, load_section
from ctc.frames import read_rgb444, write_rgb444
from ctc.testset.sequences import SequenceSpec, load_test_set
from models import entropy
from models.base import GenerativeModel
from models.bitstream import BitstreamError
from models.checkpoints import ENV_VAR, CheckpointError
from models.gfvc import GfvcCodec
from models.registry import load_model_config

FRAMES = 5


class StandInModel(GenerativeModel):
    """Features = 4x4 mean-pooled luma; generation = key frame brightened by the feature change.

    Its pictures depend on the batch size, as float32 convolutions' last bits do (exaggerated here),
    so a test fails if the encoder's reconstruction and the decoder batch differently.
    """

    name = "stand-in"
    feature_size = 16
    random_weights = False
    weights = "stand-in"

    @classmethod
    def from_config(cls, config, weights, device="cpu") -> StandInModel:
        return cls()

    def extract_features(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.adaptive_avg_pool2d(frames.mean(1, keepdim=True), 4).flatten(1)

    def prepare_reference(self, key_frame: torch.Tensor) -> torch.Tensor:
        return self.extract_features(key_frame)

    def generate(
        self, key_frame: torch.Tensor, reference: torch.Tensor, features: torch.Tensor
    ) -> torch.Tensor:
        gain = 1 + (features - reference).mean(1).view(-1, 1, 1, 1) + 0.01 * len(features)
        return (key_frame * gain).clamp(0, 1)


class StandInIntra(IntraCodec):
    """Lossy but simple: samples divided by a QP-dependent step, zlib-compressed."""

    def encode_picture(self, rgb: np.ndarray, qp: int, workdir: Path) -> bytes:
        return bytes([1 + qp // 4]) + zlib.compress((rgb // (1 + qp // 4)).astype(np.uint8).tobytes())

    def decode_picture(self, bitstream: bytes, width: int, height: int, workdir: Path) -> np.ndarray:
        step = bitstream[0]
        levels = np.frombuffer(zlib.decompress(bitstream[1:]), np.uint8).reshape(3, height, width)
        return np.minimum(levels.astype(np.int32) * step + step // 2, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def faces(shared) -> np.ndarray:
    """The first frames of the real clip FACES_00 (the ``faces`` test set, imported from ../shared)."""
    (spec,) = load_test_set({"name": "faces", "sequences": ["FACES_00"], "frames": FRAMES})
    return np.asarray(spec.read())


def as_sequence(frames: np.ndarray, folder: Path, name: str = "face00") -> SequenceSpec:
    """``(N, 3, H, W)`` frames as a planar RGB 4:4:4 sequence file in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    write_rgb444(folder / f"{name}.rgb", frames)
    count, _, height, width = frames.shape
    return SequenceSpec(name, "FACES", f"{name}.rgb", width, height, count, 30.0, root=folder)


@pytest.fixture(scope="module")
def clip(faces, tmp_path_factory) -> SequenceSpec:
    return as_sequence(faces, tmp_path_factory.mktemp("faces"))


def stand_in_codec(intra: IntraCodec | None = None, **overrides) -> GfvcCodec:
    config = {**load_section("codec", "cfte"), **overrides}
    return GfvcCodec(config, model=StandInModel(), intra_codec=intra or StandInIntra())


def encode_and_decode(codec: GfvcCodec, sequence: SequenceSpec, qp: int, folder: Path):
    """encode() then decode() into ``folder``; returns (encode result, decoded frames)."""
    result = codec.encode(sequence, qp, folder / "enc")
    decoded = codec.decode(result.bitstream, sequence, folder / "dec")
    frames = np.asarray(read_rgb444(decoded.frames_file, sequence.width, sequence.height))
    return result, frames


def check_rate_accounting(codec: GfvcCodec, result, parts=("header", "key_frame", "features")) -> None:
    """Parts add up to the file; the active mode's feature bits are the file's, the other one is listed."""
    assert set(result.bits) == set(parts)
    assert result.total_bits == 8 * result.bitstream.stat().st_size
    by_mode = result.details["feature_bits_by_mode"]
    assert set(by_mode) == {"ae", "sei"} and by_mode[codec.feature_coding] == result.bits["features"]
    assert 0 < result.details["sei_payload_bits"] < by_mode["sei"]  # the NAL and SEI headers cost bits


def coding_codec(coding: str, **overrides) -> GfvcCodec:
    """The stand-in model; ``sei`` features need a VVC key picture (the real vvenc) to ride in."""
    if coding == "ae":
        return stand_in_codec(feature_coding=coding, **overrides)
    return stand_in_with_real_intra(
        feature_coding=coding, intra=load_section("picture_codec", "vvenc"), **overrides
    )


@pytest.mark.parametrize("coding", ["ae", "sei"])
def test_round_trip_accounting_and_closed_loop(clip, tmp_path, coding):
    codec = coding_codec(coding, cpu_batch_size=2, encoder_reconstruction=True)
    result, frames = encode_and_decode(codec, clip, 32, tmp_path)
    check_rate_accounting(codec, result)
    # the file alone gives the parts the encoder reported (as ctc-crosscheck counts a package's rates)
    assert codec.count_bits(result.bitstream, clip) == result.bits
    original = np.asarray(clip.read())
    assert frames.shape == original.shape
    assert np.abs(frames.astype(int) - original).mean() < 12
    # the encoder's reconstruction file is the decoder's output file, byte for byte
    recon = tmp_path / "enc" / f"{clip.name}_qp32_recon.rgb"
    assert recon.read_bytes() == (tmp_path / "dec" / f"{clip.name}_decoded.rgb").read_bytes()
    # ... and a job checks that by the digests the codec reports (as for VTM)
    assert result.details["reconstruction_md5"] == hashlib.md5(recon.read_bytes()).hexdigest()
    encoded = codec.encode_frames(original, 32, tmp_path / "enc2")
    assert np.array_equal(frames[0], encoded.gops[0].key_frame)
    one_by_one = coding_codec(coding, cpu_batch_size=1)  # a per-frame encoder loop
    assert not np.array_equal(one_by_one.render(encoded), frames)
    assert codec.pack(encoded.stream) == result.bitstream.read_bytes()  # deterministic
    assert result.bitstream.suffix == {"ae": ".gfvc", "sei": ".266"}[coding]


def test_ae_payloads_are_the_common_software_coding_of_the_residuals(clip, tmp_path):
    codec = stand_in_codec()
    original = np.asarray(clip.read())
    encoded = codec.encode_frames(original, 22, tmp_path)
    previous = codec.reference_features(encoded.gops[0].key_frame)
    assert encoded.stream.payloads[0] == b""
    for index, payload in enumerate(encoded.stream.payloads[1:], start=1):
        current = codec._features(original[index : index + 1])[0]
        values = entropy.quantise(current - previous, codec.q_step)
        assert payload == entropy.encode_values(values)
        previous = previous + np.asarray(values, np.float64) / codec.q_step
        assert np.array_equal(previous, encoded.gops[0].features[index - 1])


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
        stand_in_codec(q_step=8, sei=None).decode(path, clip, tmp_path / "dec")
    with pytest.raises(ValueError, match="key-frame codec 'StandInIntra' is not VVC"):
        stand_in_codec(feature_coding="sei")
    fomm = GfvcCodec(
        {**load_section("codec", "cfte"), "name": "fomm"}, model=StandInModel(), intra_codec=StandInIntra()
    )
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
    with pytest.raises(ValueError, match="key_frame_format 'rgb'"):
        stand_in_codec(key_frame_format="rgb")
    with pytest.raises(ValueError, match="batch size 0"):
        stand_in_codec(cpu_batch_size=0)
    with pytest.raises(ValueError, match="feature_coding sei needs a 'sei' section"):
        stand_in_codec(feature_coding="sei", sei=None)
    with pytest.raises(ConfigNotFound, match="no codec config 'nonesuch'"):
        load_section("codec", "nonesuch")


@pytest.mark.parametrize("name", ["fomm", "cfte", "fv2v", "dac"])
def test_config_files_hold_every_number(name):
    config = load_section("codec", name)
    assert config["name"] == name and config["type"] == "gfvc" and config["module"] == "models.gfvc"
    assert config["model"]["type"] == name and config["intra"]["type"] == "vtm"  # composed sections
    assert config["intra"]["fallback"]["type"] == "vvenc"
    assert config["rate_points"] == [22, 32, 42, 52]
    assert config["q_step"] == {"fomm": 64, "cfte": 4, "fv2v": 256, "dac": 64}[name]
    assert 2 ** config["sei"]["coordinate_precision"] == config["q_step"]
    assert {
        "weights",
        "intra",
        "key_frame_format",
        "feature_coding",
        "output_rounding",
        "batch_size",
        "encoder_reconstruction",
        "gop_size",
        "refresh",
    } <= set(config)
    assert config["gop_size"] is None and config["refresh"]["threshold"] is None  # one key frame, no refresh


def stand_in_with_real_intra(**overrides) -> GfvcCodec:
    return GfvcCodec({**load_section("codec", "cfte"), **overrides}, model=StandInModel())


def test_intra_codec_auto_takes_vtm_only_when_it_is_installed(real_vtm, no_vtm, monkeypatch):
    codec = stand_in_with_real_intra()
    assert isinstance(codec.intra, FfmpegCodec) and codec.intra_name == "vvenc"
    assert codec.provenance()["intra_codec"] == "vvenc" and "libvvenc" in codec.version()
    with pytest.raises(CodecError, match="vvenc codes YUV 4:2:0 only"):  # auto falls back to vvenc
        stand_in_with_real_intra(key_frame_format="rgb444")
    with pytest.raises(CodecError, match="vvenc codes YUV 4:2:0 only"):
        stand_in_with_real_intra(intra=load_section("picture_codec", "vvenc"), key_frame_format="rgb444")
    with pytest.raises(CodecError, match="VTM not found"):
        stand_in_with_real_intra(intra=load_section("picture_codec", "vtm"))
    monkeypatch.undo()  # the machine's VTM again (the build of make vtm)
    vtm = stand_in_with_real_intra(key_frame_format="rgb444")
    assert isinstance(vtm.intra, VtmCodec) and vtm.intra.input_format == "rgb444"
    assert vtm.intra_name == "vtm" and vtm.setup_hash != codec.setup_hash  # not decodable by the other
    assert stand_in_with_real_intra(intra=load_section("picture_codec", "vvenc")).intra_name == "vvenc"


@pytest.mark.vtm
@pytest.mark.slow
@pytest.mark.parametrize("key_frame_format", ["yuv420", "rgb444"])
def test_tiny_model_with_a_real_vtm_key_frame(real_vtm, key_frame_format, shared, faces, tmp_path):
    """A tiny CFTE (golden configuration, random weights) whose key frame goes through the real VTM:
    the encoder's reconstruction equals the decoder's output, the key frame is VTM's picture."""
    config, size = tiny_config(
        "cfte",
        shared,
        weights="random",
        intra=load_section("picture_codec", "vtm"),
        key_frame_format=key_frame_format,
        encoder_reconstruction=True,
    )
    sequence = as_sequence(resized(faces[:3], size), tmp_path / "seq")
    codec = GfvcCodec(config)
    assert isinstance(codec.intra, VtmCodec) and codec.intra.input_format == key_frame_format
    assert "key frame: VTM 22.2" in codec.version()
    result, decoded = encode_and_decode(codec, sequence, 32, tmp_path)
    check_rate_accounting(codec, result)
    recon = tmp_path / "enc" / "face00_qp32_recon.rgb"
    assert recon.read_bytes() == (tmp_path / "dec" / "face00_decoded.rgb").read_bytes()
    original = np.asarray(sequence.read())
    stream = codec.parse(result.bitstream.read_bytes())
    key_frame = codec.intra.decode_picture(stream.key_frames[0], size, size, tmp_path / "key")
    assert np.array_equal(decoded[0], key_frame)
    assert np.abs(decoded[0].astype(int) - original[0]).mean() < 6


def tiny_config(name: str, shared: Path, **overrides) -> tuple[dict, int]:
    """The codec config of ``name`` with its tiny golden model configuration, and its frame size."""
    tiny = shared / "golden" / name / "tiny" / "config.json"
    if not tiny.is_file():
        pytest.skip(f"{tiny} is absent")
    golden = json.loads(tiny.read_text())
    model = {**load_model_config(name), "model_params": golden["model_params"]}
    config = {**load_section("codec", name), "model": model, **overrides}
    return config, int(golden["image_size"][0])


def test_random_weights_when_no_checkpoint_are_labelled_once(shared, monkeypatch, capsys):
    monkeypatch.delenv(ENV_VAR, raising=False)
    config, _ = tiny_config("cfte", shared, weights="auto")
    codec = GfvcCodec(config, intra_codec=StandInIntra())
    warnings = [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "cfte runs with RANDOM weights" in warnings[0] and ENV_VAR in warnings[0]
    assert codec.random_weights and codec.provenance()["random_weights"] is True
    assert codec.provenance()["checkpoint"] is None and "RANDOM weights" in codec.version()
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        GfvcCodec({**config, "weights": "checkpoint"}, intra_codec=StandInIntra())


def resized(frames: np.ndarray, size: int) -> np.ndarray:
    if frames.shape[2:] == (size, size):
        return frames
    pictures = [
        cv2.resize(frame.transpose(1, 2, 0), (size, size), interpolation=cv2.INTER_AREA) for frame in frames
    ]
    return np.stack(pictures).transpose(0, 3, 1, 2).copy()


@pytest.mark.parametrize("coding", ["ae", "sei"])
@pytest.mark.parametrize("name", ["fomm", "cfte", "fv2v", "dac"])
def test_real_tiny_models_with_vvenc_key_frame(name, coding, shared, faces, tmp_path):
    """Random-weight tiny models, the real vvenc key frame, real frames: encoder recon == decoder output."""
    config, size = tiny_config(
        name,
        shared,
        weights="random",
        feature_coding=coding,
        cpu_batch_size=2,
        encoder_reconstruction=True,
        intra=load_section("picture_codec", "vvenc"),
    )
    sequence = as_sequence(resized(faces[:4], size), tmp_path / "seq")
    codec = GfvcCodec(config)
    assert codec.intra_name == "vvenc" and codec.random_weights
    result, decoded = encode_and_decode(codec, sequence, 42, tmp_path)
    check_rate_accounting(codec, result)
    # two batches (2 + 1 frames) on both sides: the recon file equals the decoded file byte for byte
    recon = tmp_path / "enc" / "face00_qp42_recon.rgb"
    assert recon.read_bytes() == (tmp_path / "dec" / "face00_decoded.rgb").read_bytes()
    original = np.asarray(sequence.read())
    again = codec.encode_frames(original, 42, tmp_path / "again")
    assert codec.pack(again.stream) == result.bitstream.read_bytes()  # deterministic
    assert np.abs(decoded[0].astype(int) - original[0]).mean() < 12  # the vvenc key frame at QP 42
    assert decoded[1:].std() > 1  # the generator's pictures, not a constant


def test_gop_size_codes_a_key_frame_every_n_frames(clip, tmp_path):
    codec = stand_in_codec(gop_size=2, encoder_reconstruction=True)
    result, frames = encode_and_decode(codec, clip, 32, tmp_path)
    check_rate_accounting(codec, result)
    assert result.details["key_frames"] == 3 and result.details["key_frame_positions"] == [0, 2, 4]
    stream = codec.parse(result.bitstream.read_bytes())
    assert result.bits["key_frame"] == 8 * sum(len(k) for k in stream.key_frames.values())
    single = stand_in_codec().encode(clip, 32, tmp_path / "single")
    assert single.details["key_frames"] == 1 and single.bits["key_frame"] < result.bits["key_frame"]
    for position in (0, 2, 4):  # each key frame is the intra codec's picture, and starts a GOP afresh
        assert stream.payloads[position] == b""
        intra = StandInIntra().decode_picture(stream.key_frames[position], clip.width, clip.height, tmp_path)
        assert np.array_equal(frames[position], intra)
    recon = tmp_path / "enc" / f"{clip.name}_qp32_recon.rgb"
    assert recon.read_bytes() == (tmp_path / "dec" / f"{clip.name}_decoded.rgb").read_bytes()
    # ... and a job checks that by the digests the codec reports (as for VTM)
    assert result.details["reconstruction_md5"] == hashlib.md5(recon.read_bytes()).hexdigest()


@pytest.mark.parametrize(("threshold", "positions"), [(None, [0]), (99.0, [0, 1, 2, 3, 4])])
def test_adaptive_refresh_codes_a_key_frame_where_quality_falls(clip, tmp_path, threshold, positions):
    codec = stand_in_codec(refresh={"metric": "psnr", "threshold": threshold})
    result, frames = encode_and_decode(codec, clip, 32, tmp_path)
    assert result.details["key_frame_positions"] == positions
    assert codec.provenance()["refresh"] == {"metric": "psnr", "threshold": threshold}


def test_bad_key_frame_settings_are_refused():
    with pytest.raises(ValueError, match="gop_size 0"):
        stand_in_codec(gop_size=0)
    with pytest.raises(ValueError, match="refresh.metric 'ssim'"):
        stand_in_codec(refresh={"metric": "ssim", "threshold": 0.9})


@pytest.mark.slow
def test_fomm_with_gop_size_4_on_16_frames_codes_4_key_frames(shared, tmp_path):
    """The real tiny FOMM (random weights) and the real vvenc key frames: 4 GOPs, every key frame in
    the rate, encoder reconstruction = decoder output byte for byte."""
    (spec,) = load_test_set({"name": "faces", "sequences": ["FACES_00"], "frames": 16})
    config, size = tiny_config("fomm", shared, weights="random", gop_size=4, encoder_reconstruction=True)
    sequence = as_sequence(resized(np.asarray(spec.read()), size), tmp_path / "seq")
    codec = GfvcCodec(config)
    result, decoded = encode_and_decode(codec, sequence, 42, tmp_path)
    check_rate_accounting(codec, result)
    assert result.details["key_frames"] == 4 and result.details["key_frame_positions"] == [0, 4, 8, 12]
    stream = codec.parse(result.bitstream.read_bytes())
    assert len(stream.key_frames) == 4
    assert result.bits["key_frame"] == 8 * sum(map(len, stream.key_frames.values()))
    recon = tmp_path / "enc" / "face00_qp42_recon.rgb"
    assert recon.read_bytes() == (tmp_path / "dec" / "face00_decoded.rgb").read_bytes()
    single = GfvcCodec({**config, "gop_size": None}).encode(sequence, 42, tmp_path / "single")
    assert single.details["key_frames"] == 1 and single.total_bits < result.total_bits
