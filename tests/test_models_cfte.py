"""CFTE: state-dict layout equal to the GFVC v2 manifest, outputs equal to its goldens, and a frame's
output independent of the other frames decoded in the same batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import against_manifest, load_pt, manifest, max_abs_diff, networks_fixture, tiny_params

from models.cfte import CFTE, to_uint8


@pytest.fixture(scope="module")
def golden(shared: Path) -> Path:
    return shared / "golden" / "cfte"


real_networks = networks_fixture(CFTE)


@pytest.mark.parametrize("name", ["kp_detector", "generator"])
def test_state_dict_layout_equals_manifest_for_cfte256(golden: Path, real_networks: dict, name: str) -> None:
    built, expected = against_manifest(real_networks[name], manifest(golden), name)
    assert built == expected


@pytest.fixture(scope="module")
def tiny(golden: Path) -> CFTE:
    networks = CFTE.build_networks(tiny_params(golden))
    for name, module in networks.items():
        module.load_state_dict(load_pt(golden / "tiny" / f"{name}.pt"), strict=True)
    return CFTE(networks, weights="golden tiny", random_weights=False)


@pytest.fixture(scope="module")
def inputs(golden: Path) -> dict[str, torch.Tensor]:
    return load_pt(golden / "tiny" / "inputs.pt")


def test_tiny_outputs_equal_golden(golden: Path, tiny: CFTE, inputs: dict) -> None:
    expected = load_pt(golden / "tiny" / "outputs.pt")
    kp_detector, generator = tiny.networks["kp_detector"], tiny.networks["generator"]
    frames = []
    with torch.no_grad():
        source = kp_detector(inputs["source"])["value"]
        for driving_frame in inputs["driving"]:
            driving = kp_detector(driving_frame[None])["value"]
            out = generator(inputs["source"], source, driving)
            frame = {f"generator.{k}": v for k, v in out.items()}
            frame["kp_driving.value"] = driving
            frame["farneback.prev_uint8"] = torch.from_numpy(to_uint8(driving[0]))[None]
            frame["farneback.next_uint8"] = torch.from_numpy(to_uint8(source[0]))[None]
            frames.append(frame)
    ours = {"kp_source.value": source} | {k: torch.cat([f[k] for f in frames]) for k in frames[0]}
    assert set(ours) == set(expected)
    for key in ("farneback.prev_uint8", "farneback.next_uint8", "generator.sparse_motion"):
        assert torch.equal(ours[key], expected[key]), key
    for key, value in expected.items():
        assert ours[key].shape == value.shape and ours[key].dtype == value.dtype, key
        assert max_abs_diff(ours[key], value) <= 1e-5, key


def test_adapter_features_and_generation(golden: Path, tiny: CFTE, inputs: dict) -> None:
    expected = load_pt(golden / "tiny" / "outputs.pt")
    features = tiny.extract_features(inputs["driving"])
    assert features.shape == (2, 16) and tiny.feature_size == 16
    assert max_abs_diff(features, expected["kp_driving.value"].flatten(1)) <= 1e-5
    reference = tiny.prepare_reference(inputs["source"])
    frames = tiny.generate(inputs["source"], reference, features)
    assert max_abs_diff(frames, expected["generator.prediction"]) <= 1e-5


def test_batched_decoding_does_not_mix_frames(tiny: CFTE, inputs: dict) -> None:
    """Upstream min/max-normalises the features of the whole batch before Farneback; we normalise
    each frame on its own, as the common software (one frame per call) effectively does."""
    features = tiny.extract_features(inputs["driving"])
    other = torch.stack([features[0], features[1] * 5 - 3])  # frame 1 with a very different range
    batch_wide = np.round((features.numpy() - features.numpy().min()) / np.ptp(features.numpy()) * 255)
    assert not np.array_equal(
        batch_wide[0].astype(np.uint8).reshape(4, 4, 1), to_uint8(features[0].view(1, 4, 4))
    )

    reference = tiny.prepare_reference(inputs["source"])
    generator = tiny.networks["generator"]
    source_feature = reference["feature"]
    with torch.no_grad():
        single = generator(
            inputs["source"], source_feature, features[:1].view(1, 1, 4, 4), reference["prepared"]
        )
        for batch in (features, other):
            out = generator(inputs["source"], source_feature, batch.view(2, 1, 4, 4), reference["prepared"])
            assert torch.equal(out["sparse_motion"][0], single["sparse_motion"][0])
            for key in ("prediction", "deformed", "occlusion_map", "sparse_deformed"):
                # float32 convolutions may round differently with another batch size (oneDNN, cuDNN)
                assert max_abs_diff(out[key][0], single[key][0]) <= 1e-5, key
