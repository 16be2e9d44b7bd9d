"""Finding checkpoints and loading them strictly, through the real loader and real torch files."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from model_helpers import layout, manifest, random_state_dict, tiny_params, training_checkpoint

from models.checkpoints import ENV_VAR, CheckpointError, find_checkpoint, load_subnetworks
from models.registry import available_models, create_model, load_model_config


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


def tiny_config(shared: Path, name: str, **changes: int) -> dict:
    params = copy.deepcopy(tiny_params(shared / "golden" / name))
    params["common_params"].update(changes)
    return {**load_model_config(name), "model_params": params}


def save_training_checkpoint(path: Path, entries: dict[str, list], seed: int = 0) -> dict:
    networks = {name: random_state_dict(e, seed) for name, e in entries.items()}
    torch.save(training_checkpoint(networks), path)
    return networks


def test_model_configs_hold_the_manifest_model_params(shared: Path) -> None:
    assert {"fomm", "cfte"} <= set(available_models())
    for name in ("fomm", "cfte"):
        assert (
            load_model_config(name)["model_params"]
            == manifest(shared / "golden" / name)["config"]["model_params"]
        )


@pytest.mark.slow
def test_full_size_training_checkpoint_from_the_manifest_loads_strictly(
    shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = manifest(shared / "golden" / "fomm")["state_dicts"]
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    networks = save_training_checkpoint(folder / "vox-cpk.pth.tar", entries)
    monkeypatch.setenv(ENV_VAR, str(folder))
    model = create_model("fomm")
    assert model.weights == str(folder / "vox-cpk.pth.tar") and not model.random_weights
    for name, state in networks.items():
        loaded = model.networks[name].state_dict()
        assert list(loaded) == list(state)
        assert all(torch.equal(loaded[k], v) for k, v in state.items()), name


@pytest.mark.parametrize("name", ["fomm", "cfte"])
def test_tiny_training_checkpoint_loads_strictly_from_the_env_folder(
    shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    config = tiny_config(shared, name)
    random_model = create_model(name, config, weights="random")
    assert random_model.random_weights and "random" in random_model.weights
    entries = {
        k: [{"key": key, "shape": s, "dtype": d} for key, s, d in layout(m)]
        for k, m in random_model.networks.items()
    }
    networks = save_training_checkpoint(tmp_path / config["checkpoint_files"][0], entries, seed=1)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    model = create_model(name, config)
    for sub, state in networks.items():
        assert all(torch.equal(model.networks[sub].state_dict()[k], v) for k, v in state.items()), sub


def test_random_weights_are_deterministic_and_leave_the_global_rng_alone(shared: Path) -> None:
    config = tiny_config(shared, "cfte")
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = create_model("cfte", config, weights="random")
    assert torch.equal(torch.rand(1), before)
    second = create_model("cfte", config, weights="random")
    a, b = first.networks["generator"].state_dict(), second.networks["generator"].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_missing_checkpoint_names_the_expected_files_and_where_to_get_them(no_env: None) -> None:
    with pytest.raises(CheckpointError) as err:
        create_model("fomm")
    text = str(err.value)
    assert "FOMM-checkpoint.pth.tar" in text and "vox-cpk.pth.tar" in text
    assert "GFVC_Software_v2" in text and "first-order-model" in text and ENV_VAR in text


def test_configured_path_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="nowhere.pth.tar does not exist"):
        find_checkpoint("cfte", ["CFTE-checkpoint.pth.tar"], "Get it there.", tmp_path / "nowhere.pth.tar")


def test_truncated_checkpoint_is_refused_clearly(shared: Path, tmp_path: Path) -> None:
    config = tiny_config(shared, "cfte")
    model = create_model("cfte", config, weights="random")
    path = tmp_path / "CFTE-checkpoint.pth.tar"
    torch.save({k: m.state_dict() for k, m in model.networks.items()}, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as err:
        create_model("cfte", config, weights=path)
    assert str(path) in str(err.value)


def test_checkpoint_for_another_configuration_is_refused_and_nothing_is_loaded(
    shared: Path, tmp_path: Path
) -> None:
    trained = create_model("fomm", tiny_config(shared, "fomm", num_kp=15), weights="random", seed=3)
    path = tmp_path / "FOMM-checkpoint.pth.tar"
    torch.save(training_checkpoint({k: m.state_dict() for k, m in trained.networks.items()}), path)
    model = create_model("fomm", tiny_config(shared, "fomm"), weights="random")
    before = {k: v.clone() for k, v in model.networks["kp_detector"].state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        load_subnetworks(path, model.networks, "fomm")
    text = str(err.value)
    assert "does not fit the fomm configuration" in text
    assert "kp.weight (15, 11, 7, 7) in the checkpoint vs (10, 11, 7, 7) in the model" in text
    after = model.networks["kp_detector"].state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())


def test_missing_and_unexpected_keys_are_listed(shared: Path, tmp_path: Path) -> None:
    model = create_model("cfte", tiny_config(shared, "cfte"), weights="random")
    state = {k: m.state_dict() for k, m in model.networks.items()}
    del state["kp_detector"]["gdn4.beta"]
    state["kp_detector"]["conv5.weight"] = torch.zeros(1)
    path = tmp_path / "CFTE-checkpoint.pth.tar"
    torch.save(state, path)
    with pytest.raises(
        CheckpointError, match=r"1 missing keys: gdn4\.beta; 1 unexpected keys: conv5\.weight"
    ):
        load_subnetworks(path, model.networks, "cfte")


def test_file_without_the_needed_subnetwork(shared: Path, tmp_path: Path) -> None:
    path = tmp_path / "other.pth.tar"
    torch.save({"generator": {}, "epoch": 3}, path)
    model = create_model("cfte", tiny_config(shared, "cfte"), weights="random")
    with pytest.raises(
        CheckpointError, match=r"no sub-network kp_detector for cfte \(the file holds: generator, epoch\)"
    ):
        load_subnetworks(path, model.networks, "cfte")
