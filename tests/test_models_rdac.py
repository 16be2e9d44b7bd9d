"""RDAC: layout equal to the upstream manifest (empty CDF buffers, rebuilt after loading), the
residual coding byte for byte (CompressAI's rANS), the decoder-side call sequence of the golden, and
the codec closed loop with the real vvenc key frames (random tiny weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import (
    golden_fixtures,
    layout,
    load_pt,
    manifest,
    manifest_layout,
    max_abs_diff,
    tiny_checkpoint_fixture,
    tiny_clip,
    tiny_model_config,
)
from test_gfvc_codec import StandInIntra, encode_and_decode

from ctc.codec import create_codec
from ctc.conf import load_section
from models.checkpoints import CheckpointError
from models.gfvc import GopCode
from models.rdac import RDAC
from models.rdac_codec import RdacCodec
from models.registry import load_model_config

CDF_KEYS = [
    f"{part}.{key}"
    for part in ("entropy_bottleneck", "gaussian_conditional")
    for key in ("_quantized_cdf", "_offset", "_cdf_length")
] + ["gaussian_conditional.scale_table"]


golden, expected, inputs = golden_fixtures("rdac")
tiny_model_file = tiny_checkpoint_fixture("RDAC-checkpoint.pth.tar")


def tiny_model(golden: Path, path: Path, dtype: torch.dtype) -> RDAC:
    return RDAC.from_config(tiny_model_config(golden, "rdac"), weights=path, dtype=dtype)


def test_model_config_and_layout_equal_the_manifest(golden: Path) -> None:
    info = manifest(golden)
    assert load_model_config("rdac")["model_params"] == info["config"]["model_params"]
    networks = RDAC.build_networks(info["config"]["model_params"])
    for name, module in networks.items():
        assert layout(module) == manifest_layout(info["state_dicts"][name]), name
    sdc_parameters = sum(p.numel() for p in networks["generator"].sdc.parameters())
    assert sdc_parameters == info["num_parameters"]["generator.sdc"]
    assert sum(p.numel() for p in networks["generator"].parameters()) == info["num_parameters"]["generator"]


def test_cdf_tables_are_rebuilt_after_loading(golden: Path, tiny_model_file: Path, expected: dict) -> None:
    model = tiny_model(golden, tiny_model_file, torch.float32)
    state = model.networks["generator"].state_dict()
    for coder in ("sdc", "tdc"):
        for key in CDF_KEYS:
            if f"cdf_tables.{coder}.{key}" in expected:
                golden_table = expected[f"cdf_tables.{coder}.{key}"]
                assert torch.equal(state[f"{coder}.{key}"], golden_table), (coder, key)
    assert torch.equal(
        state["tdc.gaussian_conditional._quantized_cdf"],
        expected["cdf_tables.sdc.gaussian_conditional._quantized_cdf"],
    )


def test_checkpoint_with_filled_cdf_buffers_is_refused(
    golden: Path, tiny_model_file: Path, tmp_path: Path
) -> None:
    model = tiny_model(golden, tiny_model_file, torch.float32)
    path = tmp_path / "RDAC-checkpoint.pth.tar"
    torch.save({name: net.state_dict() for name, net in model.networks.items()}, path)  # after update()
    with pytest.raises(
        CheckpointError,
        match=r"sdc\.entropy_bottleneck\._offset \(16,\) in the checkpoint "
        r"vs \(0,\) in the model",
    ):
        tiny_model(golden, path, torch.float32)


@pytest.mark.parametrize(
    ("prefix", "rate_idx", "q_value"), [("frame1", 3, 0.0), ("rate_point_2_q0.3.frame1", 2, 0.3)]
)
def test_residual_coding_is_byte_exact_from_the_golden_latent(
    golden: Path, tiny_model_file: Path, expected: dict, prefix: str, rate_idx: int, q_value: float
) -> None:
    coder = tiny_model(golden, tiny_model_file, torch.float64).networks["generator"].sdc
    with torch.no_grad():
        coded = coder.compress(expected[f"{prefix}.sdc.y"], rate_idx, q_value)
    assert coded.y_string == bytes(expected[f"{prefix}.sdc.y_string"].tolist())
    assert coded.z_string == bytes(expected[f"{prefix}.sdc.z_string"].tolist())
    assert 8 * (len(coded.y_string) + len(coded.z_string)) == expected[f"{prefix}.sdc.bits"]
    for key, value in coded.steps.items():
        golden_value = expected[f"{prefix}.sdc.{key}"]
        assert (
            torch.equal(value, golden_value)
            if not value.is_floating_point()
            else max_abs_diff(value, golden_value) <= 1e-9
        ), key


def test_residual_coder_at_256(golden: Path, tiny_model_file: Path, inputs: dict) -> None:
    expected = load_pt(golden / "tiny" / "outputs_coder256.pt")
    coder = tiny_model(golden, tiny_model_file, torch.float64).networks["generator"].sdc
    residual = ((inputs["coder256_residual_uint8"].float() - 128) / 255).double()
    with torch.no_grad():
        assert max_abs_diff(coder.analysis(residual), expected["coder256.sdc.y"]) <= 1e-9
        coded = coder.compress(expected["coder256.sdc.y"], 3, 0.0)
        x_hat, _ = coder.decompress(coded.y_string, coded.z_string, (8, 8), 3, 0.0)
    assert coded.y_string == bytes(expected["coder256.sdc.y_string"].tolist())
    assert coded.z_string == bytes(expected["coder256.sdc.z_string"].tolist())
    assert max_abs_diff(x_hat[..., 96:160, 96:160], expected["coder256.sdc.x_hat_center_crop_64"]) <= 1e-9
    assert torch.equal(x_hat, coded.x_hat)


def golden_gop(inputs: dict, expected: dict) -> tuple[GopCode, np.ndarray]:
    frames = np.concatenate([inputs["source_uint8"].numpy()[None], inputs["driving_uint8"].numpy()])
    return GopCode(frames[0], {}, expected["kp_decoded.value"].flatten(1).double().numpy()), frames


@pytest.mark.parametrize(
    ("dtype", "tolerance"), [pytest.param(torch.float64, 1e-9, marks=pytest.mark.slow), (torch.float32, 1e-4)]
)
def test_call_sequence_equals_the_golden(
    golden: Path, tiny_model_file: Path, inputs: dict, expected: dict, dtype: torch.dtype, tolerance: float
) -> None:
    """Frame 1 spatial, frame 2 temporal, frame 3 skipped; the decoder reads what the encoder wrote."""
    codec = RdacCodec(
        load_section("codec", "rdac"),
        model=tiny_model(golden, tiny_model_file, dtype),
        intra_codec=StandInIntra(),
    )
    gop, frames = golden_gop(inputs, expected)
    trace: dict[str, list] = {}
    out, layers = codec.residual_loop(gop, frames, trace)
    bits = [8 * (len(y) + len(z)) for y, z in zip(layers["residual"], layers["residual_hyper"], strict=True)]
    assert bits[1:] == expected["res_coding.bits"].tolist()
    assert [int(bool(y)) for y in layers["residual"]] == expected["res_coding.flags"].tolist()
    for index, coder in ((1, "sdc"), (2, "tdc")):
        assert layers["residual"][index] == bytes(expected[f"frame{index}.{coder}.y_string"].tolist())
        assert layers["residual_hyper"][index] == bytes(expected[f"frame{index}.{coder}.z_string"].tolist())
    assert trace["similarity"][1:] == pytest.approx(
        [expected["frame2.skip_similarity"].item(), expected["frame3.skip_similarity"].item()], abs=1e-6
    )
    for key in ("res_hat", "enhanced_prediction"):
        assert max_abs_diff(torch.cat(trace[key]), expected[key]) <= tolerance, key
    assert max_abs_diff(torch.cat(trace["animation"]), expected["animation.prediction"]) <= tolerance
    if dtype == torch.float64:
        assert np.array_equal(out[1:], expected["decoder.output_uint8"].numpy())
    decoded, _ = codec.residual_loop(GopCode(gop.key_frame, {}, gop.features, layers))
    assert np.array_equal(decoded, out)  # the decoder reads the current frame's (empty) residual


def test_rate_outside_the_levels_is_refused(golden: Path, tiny_model_file: Path) -> None:
    config = {**load_section("codec", "rdac"), "residual": {"rate_idx": 6, "q_value": 0.0}}
    with pytest.raises(ValueError, match=r"rate_idx 6 .*levels - 2"):
        RdacCodec(
            config, model=tiny_model(golden, tiny_model_file, torch.float32), intra_codec=StandInIntra()
        )


def test_codec_closed_loop_with_vvenc_key_frames(golden: Path, tmp_path: Path) -> None:
    sequence = tiny_clip(golden, 5, tmp_path / "seq")
    codec = create_codec(
        {
            **load_section("codec", "rdac"),
            "model": tiny_model_config(golden, "rdac"),
            "weights": "random",
            "gop_size": 3,
            "encoder_reconstruction": True,
        }
    )
    result, decoded = encode_and_decode(codec, sequence, 42, tmp_path)
    assert set(result.bits) == {"header", "key_frame", "features", "residual", "residual_hyper"}
    assert result.total_bits == 8 * result.bitstream.stat().st_size and result.bits["residual"] > 0
    assert result.details["key_frame_positions"] == [0, 3]
    stream = codec.parse(result.bitstream.read_bytes())
    assert [bool(y) for y in stream.frame_layers["residual"]][:2] == [False, True]  # key frame, spatial
    assert stream.frame_layers["residual"][4]  # the chain restarts: frame 4 is spatial, never skipped
    recon = tmp_path / "enc" / "face00_qp42_recon.rgb"
    assert recon.read_bytes() == decoded.tobytes()
