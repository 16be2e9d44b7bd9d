"""FOMM: state-dict layout equal to the upstream manifest, outputs equal to the upstream goldens."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from model_helpers import (
    against_manifest,
    golden_fixtures,
    load_pt,
    manifest,
    max_abs_diff,
    networks_fixture,
    tiny_checkpoint_fixture,
    tiny_networks,
    tiny_params,
)

from models.fomm import FOMM, normalize_kp

golden, expected, inputs = golden_fixtures("fomm")
tiny_model_file = tiny_checkpoint_fixture("FOMM-checkpoint.pth.tar")


real_networks = networks_fixture(FOMM)


@pytest.mark.parametrize("name", ["kp_detector", "generator"])
def test_state_dict_layout_equals_manifest_for_vox256(golden: Path, real_networks: dict, name: str) -> None:
    built, expected = against_manifest(real_networks[name], manifest(golden), name)
    assert built == expected


def run_reference_sequence(networks: dict, inputs: dict) -> dict[str, torch.Tensor]:
    """The golden README's call sequence, one driving frame at a time, outputs stacked."""
    kp_detector, generator = networks["kp_detector"], networks["generator"]
    source, driving = inputs["source"].double(), inputs["driving"].double()
    frames = []
    with torch.no_grad():
        kp_source = kp_detector(source)
        kp_initial = kp_detector(driving[:1])
        for i in range(driving.shape[0]):
            kp_driving = kp_detector(driving[i : i + 1])
            out = generator(source, kp_driving=kp_driving, kp_source=kp_source)
            norm = normalize_kp(
                kp_source,
                kp_driving,
                kp_initial,
                adapt_movement_scale=True,
                use_relative_movement=True,
                use_relative_jacobian=True,
            )
            frame = {f"kp_driving.{k}": v for k, v in kp_driving.items()}
            frame |= {f"generator.{k}": v for k, v in out.items() if k != "deformation"}
            frame["dense_motion.deformation"] = out["deformation"]
            frame |= {f"kp_norm_relative.{k}": v for k, v in norm.items()}
            frames.append(frame)
    result = {f"kp_source.{k}": v for k, v in kp_source.items()}
    return result | {k: torch.cat([f[k] for f in frames]) for k in frames[0]}


@pytest.mark.parametrize("variant", ["upstream", "gfvc_v2"])
def test_tiny_outputs_equal_golden(golden: Path, inputs: dict, expected: dict, variant: str) -> None:
    expected = dict(expected)  # the module's golden outputs stay as loaded
    if variant == "gfvc_v2":
        v2 = load_pt(golden / "tiny" / "outputs_gfvc_v2.pt")
        assert set(v2) >= {"generator.deformed", "generator.prediction"}
        expected |= {k.replace("generator.deformation", "dense_motion.deformation"): v for k, v in v2.items()}
    built = FOMM.build_networks(tiny_params(golden), deform_align_corners=variant == "gfvc_v2")
    networks = tiny_networks(golden, built)
    ours = run_reference_sequence(networks, inputs)
    assert set(ours) == set(expected)
    for key, value in expected.items():
        assert ours[key].shape == value.shape, key
        assert max_abs_diff(ours[key], value) <= 1e-9, key


def test_the_two_variants_differ_where_the_readme_says(golden: Path, expected: dict) -> None:
    v2 = load_pt(golden / "tiny" / "outputs_gfvc_v2.pt")
    assert max_abs_diff(expected["generator.deformed"], v2["generator.deformed"]) > 0.1


def tiny_model(golden: Path, path: Path, dtype: torch.dtype) -> FOMM:
    config = {"model_params": tiny_params(golden), "checkpoint_files": [path.name], "where_to_get": ""}
    return FOMM.from_config(config, weights=path, dtype=dtype)


def test_adapter_features_are_keypoints_then_jacobians(
    golden: Path, tiny_model_file: Path, inputs: dict, expected: dict
) -> None:
    model = tiny_model(golden, tiny_model_file, torch.float64)
    assert not model.random_weights and model.weights == str(tiny_model_file)
    features = model.extract_features(inputs["driving"])
    assert features.shape == (3, 60) and model.feature_size == 60
    assert max_abs_diff(features[:, :20], expected["kp_driving.value"].flatten(1)) <= 1e-9
    assert max_abs_diff(features[:, 20:], expected["kp_driving.jacobian"].flatten(1)) <= 1e-9


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_adapter_generates_the_golden_frames_batched(
    golden: Path, tiny_model_file: Path, inputs: dict, dtype, tolerance
) -> None:
    model = tiny_model(golden, tiny_model_file, dtype)
    expected = load_pt(golden / "tiny" / "outputs_gfvc_v2.pt")["generator.prediction"]
    reference = model.prepare_reference(inputs["source"])
    features = model.extract_features(inputs["driving"])
    batched = model.generate(inputs["source"], reference, features)
    single = torch.cat([model.generate(inputs["source"], reference, f[None]) for f in features])
    assert batched.dtype == dtype
    assert max_abs_diff(batched, expected) <= tolerance
    if dtype == torch.float64:  # oneDNN may sum in another order with another batch size: last bits only
        torch.testing.assert_close(batched, single, rtol=0, atol=1e-10)
    else:  # float32 convolutions may round differently with another batch size (oneDNN, cuDNN)
        assert max_abs_diff(batched, single) <= 1e-5
