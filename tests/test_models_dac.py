"""DAC: state-dict layout equal to the upstream manifests (10, 20 and 40 keypoints), outputs equal
to the upstream goldens, the keypoint coding byte for byte, strict checkpoint loading."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import (
    golden_fixtures,
    layout,
    manifest,
    manifest_layout,
    max_abs_diff,
    tiny_checkpoint_fixture,
    tiny_model_config,
    tiny_networks,
    tiny_params,
)

from models import features
from models.checkpoints import ENV_VAR, CheckpointError
from models.dac import DAC
from models.gfvc_build import to_uint8
from models.registry import create_model, load_model_config

golden, expected, inputs = golden_fixtures("dac")
tiny_model_file = tiny_checkpoint_fixture("DAC-10-checkpoint.pth.tar")


def test_model_config_holds_the_manifest_model_params(golden: Path) -> None:
    assert load_model_config("dac")["model_params"] == manifest(golden)["config"]["model_params"]


@pytest.mark.parametrize("num_kp", [10, 20, 40])
def test_state_dict_layout_equals_manifest(golden: Path, num_kp: int) -> None:
    info = manifest(golden)
    params = copy.deepcopy(info["config"]["model_params"])
    params["common_params"]["num_kp"] = num_kp
    networks = DAC.build_networks(params)
    variant = info["num_kp_variants"].get(f"num_kp_{num_kp}", {})
    for name, module in networks.items():
        entries = copy.deepcopy(info["state_dicts"][name])
        for entry in entries:
            entry["shape"] = variant.get("changed_shapes", {}).get(f"{name}.{entry['key']}", entry["shape"])
        assert layout(module) == manifest_layout(entries), name
        counts = variant.get("num_parameters", info["num_parameters"])
        assert sum(p.numel() for p in module.parameters()) == counts[name]


def test_tiny_outputs_equal_golden_float64(golden: Path, inputs: dict, expected: dict) -> None:
    """The decoder's call sequence, one frame at a time, with the golden's decoded keypoints."""
    networks = tiny_networks(golden, DAC.build_networks(tiny_params(golden)))
    kpd, generator = networks["kp_detector"], networks["generator"]
    source = inputs["source"].double()
    with torch.no_grad():
        kp_source = kpd(source)
        kp_driving = kpd(inputs["driving"].double())
        decoded = expected["kp_decoded.value"].double()
        frames = [generator(source, kp_source, {"value": decoded[i : i + 1]}) for i in range(len(decoded))]
    ours = {f"kp_source.{k}": v for k, v in kp_source.items()}
    ours |= {f"kp_driving.{k}": v for k, v in kp_driving.items()}
    ours["generator.ref_fts"] = frames[0]["ref_fts"]
    for key in ("def_ref_fts", "bottleneck_out", "prediction"):
        ours[f"generator.{key}"] = torch.cat([f[key] for f in frames])
    for key in (
        "heatmap_sum",
        "sparse_motion_sum",
        "sparse_deformed",
        "mask",
        "deformation",
        "occlusion_map",
    ):
        ours[f"dense_motion.{key}"] = torch.cat([f[key] for f in frames])
    for key, value in ours.items():
        assert value.shape == expected[key].shape, key
        assert max_abs_diff(value, expected[key]) <= 1e-9, key
    output = to_uint8(ours["generator.prediction"], "truncate")
    assert np.array_equal(output, expected["decoder.output_uint8"].numpy())


def test_keypoint_coding_is_byte_exact(expected: dict) -> None:
    """Fed the golden keypoints, the ae coder gives upstream's integers, .bin bytes and reconstruction."""
    reference = expected["kp_source.value"].flatten().numpy()
    driving = expected["kp_driving.value"].flatten(1).numpy()
    payloads, recon = features.code_ae(reference, driving, 64)
    assert payloads[0] == b""
    for index, payload in enumerate(payloads[1:], start=1):
        assert payload == bytes(expected[f"kp_coding.bin_bytes.frame{index:04d}"].tolist())
        assert 8 * len(payload) == expected["kp_coding.bits"][index - 1]
    assert np.array_equal(recon, expected["kp_coding.rec_sem"].numpy())
    assert torch.equal(torch.from_numpy(recon).float().view(-1, 10, 2), expected["kp_decoded.value"])
    previous = np.concatenate([reference[None], recon[:-1]])
    integers = [features.entropy.quantise(d, 64) for d in driving - previous]
    assert integers == expected["kp_coding.residual_int"].tolist()
    decoded = features.decode(payloads, reference, "ae", 64, None, "golden")
    assert np.array_equal(decoded, recon)


@pytest.mark.parametrize(
    ("dtype", "image_tol", "kp_tol"), [(torch.float64, 1e-9, 1e-9), (torch.float32, 1e-4, 1e-5)]
)
def test_adapter_features_and_batched_frames(
    golden: Path, tiny_model_file: Path, inputs: dict, expected: dict, dtype, image_tol: float, kp_tol: float
) -> None:
    model = DAC.from_config(tiny_model_config(golden, "dac"), weights=tiny_model_file, dtype=dtype)
    assert not model.random_weights and model.feature_size == 20
    features_ = model.extract_features(inputs["driving"])
    assert max_abs_diff(features_, expected["kp_driving.value"].flatten(1)) <= kp_tol
    reference = model.prepare_reference(inputs["source"])
    assert max_abs_diff(reference["kp"]["value"], expected["kp_source.value"]) <= kp_tol
    frames = model.generate(inputs["source"], reference, expected["kp_decoded.value"].flatten(1))
    assert frames.dtype == dtype
    assert max_abs_diff(frames, expected["generator.prediction"]) <= image_tol


def test_checkpoint_by_keypoint_count_from_the_env_folder(
    golden: Path, tiny_model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, str(tiny_model_file.parent))
    model = create_model("dac", tiny_model_config(golden, "dac"))
    assert model.weights == str(tiny_model_file)
    config = tiny_model_config(golden, "dac")
    config["model_params"]["common_params"]["num_kp"] = 20
    with pytest.raises(CheckpointError, match="DAC-20-checkpoint.pth.tar"):
        create_model("dac", config)
    with pytest.raises(
        CheckpointError,
        match=r"kp\.conv\.weight \(10, 11, 7, 7\) in the checkpoint vs "
        r"\(20, 11, 7, 7\) in the model",
    ):
        create_model("dac", config, weights=tiny_model_file)
