"""HDAC: layout equal to the upstream manifest, outputs equal to the goldens, and the codec with its
base layer coded by the real vvenc (random tiny weights): bits split per part, closed loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import (
    against_manifest,
    golden_fixtures,
    manifest,
    max_abs_diff,
    tiny_checkpoint_fixture,
    tiny_clip,
    tiny_model_config,
    tiny_networks,
    tiny_params,
)
from test_gfvc_codec import encode_and_decode

from ctc.codec import create_codec
from ctc.conf import load_section
from models import features
from models.gfvc_build import to_uint8
from models.hdac import HDAC
from models.registry import load_model_config

golden, expected, inputs = golden_fixtures("hdac")
tiny_model_file = tiny_checkpoint_fixture("HDAC-checkpoint.pth.tar")


def test_model_config_and_layout_equal_the_manifest(golden: Path) -> None:
    info = manifest(golden)
    assert load_model_config("hdac")["model_params"] == info["config"]["model_params"]
    for name, module in HDAC.build_networks(info["config"]["model_params"]).items():
        built, expected = against_manifest(module, info, name)
        assert built == expected, name


def test_tiny_outputs_equal_golden_float64(golden: Path, inputs: dict, expected: dict) -> None:
    networks = tiny_networks(golden, HDAC.build_networks(tiny_params(golden)))
    kpd, generator = networks["kp_detector"], networks["generator"]
    source, base_layer = inputs["source"].double(), inputs["base_layer"].double()[1:]
    decoded = {"value": expected["kp_decoded.value"].double()}
    with torch.no_grad():
        kp_source, kp_driving = kpd(source), kpd(inputs["driving"].double())
        out = generator(source, kp_source, decoded, base_layer)
        off = generator(source, kp_source, {"value": decoded["value"][:1]}, torch.zeros_like(source))
    ours = {
        "kp_source.value": kp_source["value"],
        "kp_driving.value": kp_driving["value"],
        "kp_source.downsampled_input": kpd.downscale(source),
        "kp_driving.downsampled_input": kpd.downscale(inputs["driving"].double()),
        "generator.ref_fts": out["ref_fts"],
        "generator.prediction": out["prediction"],
        "generator.frame1.prediction_base_layer_off_decoder": off["prediction"],
        "generator.bl_fts_of_zero_image": off["bl_fts"],
        "dense_motion.frame1.sparse_deformed": out["sparse_deformed"][:1],
    }
    for key in ("bl_fts", "def_ref_fts", "main_bottleneck_out", "bt_output"):
        ours[f"generator.frame1.{key}"] = out[key][:1]
    for key in ("heatmap_sum", "sparse_motion_sum", "mask", "deformation", "occlusion_map"):
        ours[f"dense_motion.{key}"] = out[key]
    ours["dense_motion.downsampled_reference"] = out["downsampled_reference"].expand(3, -1, -1, -1)
    for key, value in ours.items():
        assert value.shape == expected[key].shape, key
        assert max_abs_diff(value, expected[key]) <= 1e-9, key
    assert np.array_equal(to_uint8(out["prediction"], "truncate"), expected["decoder.output_uint8"].numpy())


def test_keypoint_coding_is_byte_exact(expected: dict) -> None:
    reference = expected["kp_source.value"].flatten().numpy()
    payloads, recon = features.code_ae(reference, expected["kp_driving.value"].flatten(1).numpy(), 64)
    for index, payload in enumerate(payloads[1:], start=1):
        assert payload == bytes(expected[f"kp_coding.bin_bytes.frame{index:04d}"].tolist())
    assert np.array_equal(recon, expected["kp_coding.rec_sem"].numpy())


def test_float32_model_from_a_training_checkpoint(
    golden: Path, inputs: dict, expected: dict, tiny_model_file: Path
) -> None:
    model = HDAC.from_config(tiny_model_config(golden, "hdac"), weights=tiny_model_file)
    keypoints = model.extract_features(inputs["driving"])
    assert max_abs_diff(keypoints, expected["kp_driving.value"].flatten(1)) <= 1e-5
    reference = model.prepare_reference(inputs["source"])
    frames = model.generate(
        inputs["source"],
        reference,
        expected["kp_decoded.value"].flatten(1),
        base_layer=inputs["base_layer"][1:],
    )
    assert max_abs_diff(frames, expected["generator.prediction"]) <= 1e-4
    with pytest.raises(ValueError, match="base_layer is missing"):
        model.generate(inputs["source"], reference, expected["kp_decoded.value"].flatten(1))


@pytest.mark.parametrize("scale", [1, 0.5])
def test_codec_with_a_vvenc_base_layer(golden: Path, shared: Path, tmp_path: Path, scale: float) -> None:
    sequence = tiny_clip(golden, 4, tmp_path / "seq")
    size = sequence.width
    config = {
        **load_section("codec", "hdac"),
        "model": tiny_model_config(golden, "hdac"),
        "weights": "random",
        "base": load_section("picture_codec", "vvenc"),
        "base_layer_scale": scale,
        "encoder_reconstruction": True,
        "cpu_batch_size": 2,
    }
    codec = create_codec(config)
    result, decoded = encode_and_decode(codec, sequence, 47, tmp_path)
    assert set(result.bits) == {"header", "key_frame", "features", "base_layer"}
    assert result.total_bits == 8 * result.bitstream.stat().st_size and result.bits["base_layer"] > 0
    details = result.details["base_layer"]
    assert details["qp"] == 47 and details["codec"] == "vvenc" and details["size"] == [size * scale] * 2
    assert "x264" in details["upstream_difference"] and result.details["key_frame_qp"] == 22
    recon = tmp_path / "enc" / "face00_qp47_recon.rgb"
    assert recon.read_bytes() == decoded.tobytes()
    other = create_codec({**config, "base_layer_scale": 0.5 if scale == 1 else 1})
    assert other.setup_hash != codec.setup_hash  # a decoder with another base layer refuses the file


@pytest.mark.vtm
@pytest.mark.slow
def test_codec_with_a_real_vtm_base_layer(real_vtm, golden: Path, tmp_path: Path) -> None:
    """The base layer through the real VTM: the decoder has the bitstream only, not the source."""
    sequence = tiny_clip(golden, 3, tmp_path / "seq")
    codec = create_codec(
        {
            **load_section("codec", "hdac"),
            "model": tiny_model_config(golden, "hdac"),
            "weights": "random",
            "base": load_section("picture_codec", "vtm"),
            "intra": load_section("picture_codec", "vvenc"),
            "encoder_reconstruction": True,
        }
    )
    result, decoded = encode_and_decode(codec, sequence, 42, tmp_path)
    assert result.details["base_layer"]["codec"] == "vtm" and result.bits["base_layer"] > 0
    assert (tmp_path / "enc" / "face00_qp42_recon.rgb").read_bytes() == decoded.tobytes()
