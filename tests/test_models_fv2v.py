"""FV2V: state-dict layout equal to the upstream manifests, outputs equal to the upstream goldens."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import (
    against_manifest,
    layout,
    load_pt,
    manifest,
    manifest_layout,
    max_abs_diff,
    random_state_dict,
    tiny_params,
    training_checkpoint,
)

from models.checkpoints import CheckpointError
from models.fv2v import FV2V, Fv2vReference
from models.fv2v_keypoints import transform_keypoints
from models.fv2v_pose import HEEstimator, head_pose_rotation, headpose_to_degrees, rotation_matrix
from models.registry import load_model_config

NETWORKS = ("kp_detector", "he_estimator", "generator")
VARIANTS = ("beta", "head")


@pytest.fixture(scope="module")
def golden(shared: Path) -> Path:
    return shared / "golden" / "fv2v"


def splitmix64_uniform(seed: int, count: int) -> np.ndarray:
    """Uniform [0, 1) float64 of the golden README's splitmix64 recipe (5.3), elements 0..count-1."""
    z = (np.uint64(seed) << np.uint64(32)) + np.arange(count, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


def he_estimator_from_spec(path: Path) -> dict[str, torch.Tensor]:
    """The tiny HEEstimator state dict that ``he_estimator_spec.json`` defines, checked by its SHA-256."""
    state = {}
    for entry in json.loads(path.read_text())["entries"]:
        if entry["dtype"] == "int64":
            state[entry["key"]] = torch.tensor(entry["constant"], dtype=torch.int64)
            continue
        uniform = splitmix64_uniform(entry["seed"], int(np.prod(entry["shape"], dtype=np.int64)))
        values = (entry["lo"] + (entry["hi"] - entry["lo"]) * uniform).astype(np.float32)
        digest = hashlib.sha256(values.astype("<f4").tobytes()).hexdigest()
        assert digest == entry["sha256_le_bytes"], entry["key"]
        values = values.reshape(entry["shape"])
        state[entry["key"]] = torch.from_numpy(values)
    return state


@pytest.fixture(scope="module")
def tiny_states(golden: Path) -> dict[str, dict[str, torch.Tensor]]:
    states = {name: load_pt(golden / "tiny" / f"{name}.pt") for name in ("kp_detector", "generator")}
    return {**states, "he_estimator": he_estimator_from_spec(golden / "tiny" / "he_estimator_spec.json")}


@pytest.fixture(scope="module")
def inputs(golden: Path) -> dict[str, torch.Tensor]:
    return load_pt(golden / "tiny" / "inputs.pt")


def expected_outputs(golden: Path, variant: str) -> dict[str, torch.Tensor]:
    """The golden outputs; the HEAD variant file holds only the keys that differ from the beta ones."""
    expected = load_pt(golden / "tiny" / "outputs.pt")
    if variant == "head":
        expected |= load_pt(golden / "tiny_variant_zhanglonghao_head" / "outputs.pt")
    return expected


def test_model_config_holds_the_manifest_model_params(golden: Path) -> None:
    config = load_model_config("fv2v")
    assert config["model_params"] == manifest(golden)["config"]["model_params"]
    assert config["variant"] == "beta" and config["checkpoint_files"] == ["FV2V-checkpoint.pth.tar"]


@pytest.mark.parametrize("name", NETWORKS)
def test_state_dict_layout_equals_manifest_for_fv2v_256(golden: Path, name: str) -> None:
    info = manifest(golden)
    with torch.device("meta"):  # layout and sizes only: no memory, no initialisation time
        networks = FV2V.build_networks(info["config"]["model_params"])
    built, expected = against_manifest(networks[name], info, name)
    assert built == expected


@pytest.mark.parametrize("name", NETWORKS)
def test_head_variant_layout_equals_zhanglonghao_head_manifest(golden: Path, name: str) -> None:
    """HEAD's vox-256.yaml (kp scale_factor 0.25 adds the buffer ``down.weight``), ``original`` generator."""
    info = json.loads((golden / "manifest_zhanglonghao_head.json").read_text())
    with torch.device("meta"):
        networks = FV2V.build_networks(info["config"]["model_params"], variant="head")
    assert layout(networks[name]) == manifest_layout(info["state_dicts_by_generator"]["original"][name])


@pytest.fixture(scope="module")
def head_pose_float64(golden: Path, tiny_states: dict, inputs: dict) -> dict[str, dict[str, torch.Tensor]]:
    """HEEstimator outputs for the source and the driving frames (the same in both variants)."""
    params = tiny_params(golden)
    he_estimator = HEEstimator(**params["he_estimator_params"], **params["common_params"])
    he_estimator.load_state_dict(tiny_states["he_estimator"], strict=True)
    he_estimator.double().eval()
    with torch.no_grad():
        return {
            group: he_estimator(inputs[name].double())
            for group, name in (("he_source", "source"), ("he_driving", "driving"))
        }


def run_reference_sequence(
    networks: dict, head_pose: dict, inputs: dict, variant: str
) -> dict[str, torch.Tensor]:
    """The golden README's call sequence (5.3) with upstream's module calls, float64."""
    source, driving = inputs["source"].double(), inputs["driving"].double()
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        kp_canonical = networks["kp_detector"](source)["value"]
        out["kp_canonical.value"] = kp_canonical
        for group, he in head_pose.items():
            rotation = head_pose_rotation(he, variant)
            out |= {f"{group}.{k}": v for k, v in he.items()}
            out |= {f"{group}.{k}_deg": headpose_to_degrees(he[k]) for k in ("yaw", "pitch", "roll")}
            out |= {
                f"{group}.rot_mat": rotation,
                f"{group}.features57": torch.cat([rotation.flatten(1), he["t"], he["exp"]], 1),
            }
        pose = [out[f"he_source.{k}"] for k in ("rot_mat", "t", "exp")]
        out["kp_source.value"] = transform_keypoints(kp_canonical, *pose)["value"]
        frames = []
        for i in range(driving.shape[0]):  # one frame at a time, as the goldens were made
            pose = [out[f"he_driving.{k}"][i : i + 1] for k in ("rot_mat", "t", "exp")]
            kp_driving = transform_keypoints(kp_canonical, *pose)
            result = networks["generator"](source, kp_driving, {"value": out["kp_source.value"]})
            frames.append(
                {
                    "kp_driving.value": kp_driving["value"],
                    "dense_motion.deformation": result["deformation"],
                    **{f"generator.{k}": result[k] for k in ("mask", "occlusion_map", "prediction")},
                }
            )
    return out | {k: torch.cat([f[k] for f in frames]) for k in frames[0]}


@pytest.fixture(scope="module")
def float64_run(golden: Path, tiny_states: dict, head_pose_float64: dict, inputs: dict):
    """``variant -> (kp_detector and generator in float64, outputs of the reference sequence)``, cached."""
    cache: dict[str, tuple[dict, dict]] = {}

    def run(variant: str) -> tuple[dict, dict]:
        if variant not in cache:
            networks = FV2V.build_networks(tiny_params(golden), variant=variant)
            del networks["he_estimator"]
            for name, module in networks.items():
                module.load_state_dict(tiny_states[name], strict=True)
                module.double().eval()
            cache[variant] = networks, run_reference_sequence(networks, head_pose_float64, inputs, variant)
        return cache[variant]

    return run


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_tiny_outputs_equal_golden(golden: Path, float64_run, variant: str) -> None:
    expected = expected_outputs(golden, variant)
    ours = float64_run(variant)[1]
    assert set(ours) == set(expected)
    for key, value in expected.items():
        assert ours[key].shape == value.shape, key
    errors = {key: max_abs_diff(ours[key], value) for key, value in expected.items()}
    assert max(errors.values()) <= 1e-9, errors


@pytest.mark.slow
def test_float64_adapter_batched_equals_per_frame_exactly(golden: Path, float64_run, inputs: dict) -> None:
    """The adapter's batched generation from the 57 features is the per-frame result, to 1e-10."""
    networks, ours = float64_run("beta")
    model = FV2V(networks, "golden tiny", False, dtype=torch.float64)
    source = inputs["source"].double()
    reference = Fv2vReference(
        ours["kp_canonical.value"], ours["kp_source.value"], networks["generator"].encode_source(source)
    )
    batched = model.generate(source, reference, ours["he_driving.features57"])
    # oneDNN may sum convolutions in another order with another batch size: equal up to the last bits
    torch.testing.assert_close(batched, ours["generator.prediction"], rtol=0, atol=1e-10)


def test_the_variants_differ_where_the_readme_says(golden: Path) -> None:
    """Every key of the HEAD file differs from beta far beyond the 1e-9 tolerance; head pose does not."""
    beta = expected_outputs(golden, "beta")
    head_only = load_pt(golden / "tiny_variant_zhanglonghao_head" / "outputs.pt")
    assert {"he_driving.rot_mat", "kp_canonical.value", "generator.prediction"} <= set(head_only)
    assert not any(key.endswith(("_deg", ".t", ".exp", ".yaw")) for key in head_only)
    assert min(max_abs_diff(beta[key], value) for key, value in head_only.items()) > 1e-6


def test_rotation_conventions_and_the_3_14_quirk() -> None:
    angle = torch.tensor([30.0], dtype=torch.float64)
    zero = torch.zeros(1, dtype=torch.float64)
    radians = 30 / 180 * 3.14  # upstream's pi
    c, s = np.cos(radians), np.sin(radians)
    about_z = torch.tensor([[[c, -s, 0], [s, c, 0], [0, 0, 1]]], dtype=torch.float64)
    about_x = torch.tensor([[[1, 0, 0], [0, c, -s], [0, s, c]]], dtype=torch.float64)
    assert max_abs_diff(rotation_matrix(angle, zero, zero, "beta"), about_z) <= 1e-15  # beta: yaw about z
    assert max_abs_diff(rotation_matrix(zero, zero, angle, "beta"), about_x) <= 1e-15  # beta: roll about x
    assert max_abs_diff(rotation_matrix(zero, angle, zero, "head"), about_x) <= 1e-15  # head: pitch about x
    with pytest.raises(ValueError, match="variant 'spade'"):
        rotation_matrix(angle, zero, zero, "spade")


def tiny_config(golden: Path, path: Path, **common: int) -> dict:
    params = copy.deepcopy(tiny_params(golden))
    params["common_params"].update(common)
    return {**load_model_config("fv2v"), "model_params": params, "checkpoint_files": [path.name]}


@pytest.fixture(scope="module")
def tiny_checkpoint(tiny_states: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fv2v") / "FV2V-checkpoint.pth.tar"
    torch.save(training_checkpoint(tiny_states) | {"optimizer_he_estimator": {"state": {}}}, path)
    return path


def test_adapter_matches_the_golden_and_batches_exactly(
    golden: Path, tiny_checkpoint: Path, inputs: dict
) -> None:
    """float32, as the codec runs it: the goldens within float32 tolerances, batch = one frame at a time."""
    model = FV2V.from_config(tiny_config(golden, tiny_checkpoint), weights=tiny_checkpoint)
    assert not model.random_weights and model.weights == str(tiny_checkpoint) and model.variant == "beta"
    expected = expected_outputs(golden, "beta")
    features = model.extract_features(inputs["driving"])
    assert features.shape == (3, 57) and features.dtype == torch.float32 and model.feature_size == 57
    assert max_abs_diff(features, expected["he_driving.features57"]) <= 1e-5

    reference = model.prepare_reference(inputs["source"])
    assert max_abs_diff(reference.kp_canonical, expected["kp_canonical.value"]) <= 1e-5
    assert max_abs_diff(reference.kp_source, expected["kp_source.value"]) <= 1e-5
    kept = copy.deepcopy(reference)
    sent = features.clone()
    batched = model.generate(inputs["source"], reference, features)
    assert max_abs_diff(batched, expected["generator.prediction"]) <= 1e-4
    single = torch.cat([model.generate(inputs["source"], reference, f[None]) for f in features])
    # float32 convolutions (oneDNN, cuDNN) may round differently with another batch size; float64 is
    # exact (test_float64_adapter_batched_equals_per_frame_exactly).
    assert max_abs_diff(batched, single) <= 1e-6
    # Upstream's in-place ``t.unsqueeze_(1)`` must not leak: inputs and the reference are untouched.
    assert torch.equal(features, sent)
    assert all(torch.equal(getattr(reference, k), getattr(kept, k)) for k in ("kp_canonical", "kp_source"))
    assert torch.equal(model.generate(inputs["source"], reference, features), batched)


def test_random_weights_are_labelled_and_deterministic(golden: Path, tmp_path: Path) -> None:
    config = tiny_config(golden, tmp_path / "unused.pth.tar")
    first, second = (FV2V.from_config(config, weights="random") for _ in range(2))
    assert first.random_weights and "random" in first.weights
    for name in NETWORKS:
        a, b = first.networks[name].state_dict(), second.networks[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_checkpoint_for_another_configuration_is_refused_with_the_keys(
    golden: Path, tiny_checkpoint: Path
) -> None:
    """A 15-keypoint checkpoint into a 10-keypoint config: refused, naming the keys whose shapes differ."""
    config = tiny_config(golden, tiny_checkpoint, num_kp=10)
    with pytest.raises(CheckpointError, match=r"does not fit the fv2v configuration.*kp\.weight"):
        FV2V.from_config(config, weights=tiny_checkpoint)


def test_generator_missing_keys_are_listed(golden: Path, tiny_states: dict, tmp_path: Path) -> None:
    """GFVC loads the generator with strict=False; we load strictly and say which keys are missing."""
    generator = {k: v for k, v in tiny_states["generator"].items() if not k.startswith("final.")}
    path = tmp_path / "FV2V-checkpoint.pth.tar"
    torch.save({**tiny_states, "generator": generator}, path)
    with pytest.raises(CheckpointError, match=r"generator: 2 missing keys: final\.weight, final\.bias"):
        FV2V.from_config(tiny_config(golden, path), weights=path)


@pytest.mark.slow
def test_full_size_training_checkpoint_from_the_manifest_loads_strictly(golden: Path, tmp_path: Path) -> None:
    entries = manifest(golden)["state_dicts"]
    networks = {name: random_state_dict(entries[name]) for name in NETWORKS}
    path = tmp_path / "FV2V-checkpoint.pth.tar"
    torch.save(training_checkpoint(networks), path)
    del networks
    model = FV2V.from_config(weights=path)
    assert model.weights == str(path) and not model.random_weights
    check = random_state_dict(entries["he_estimator"])
    assert all(torch.equal(model.networks["he_estimator"].state_dict()[k], v) for k, v in check.items())
