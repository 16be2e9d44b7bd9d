"""Decoder-interoperability translators: the six real trained checkpoints in ``../shared/interop``
reproduce the upstream outputs (``golden.pt``), load strictly, and are checked against their sha256."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ctc.conf import available, load_section
from models.checkpoints import ENV_VAR, CheckpointError
from models.fv2v import split_features
from models.translators import MlpTranslator, load_translator

UPSTREAM = {"fomm": "FOMM", "cfte": "CFTE", "fv2v": "FV2V"}
PAIRS = [(a, b) for a in UPSTREAM for b in UPSTREAM if a != b]
TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-5}


@pytest.fixture(scope="module")
def interop(shared: Path) -> Path:
    folder = shared / "interop"
    if not (folder / "golden.pt").is_file():
        pytest.skip(f"{folder / 'golden.pt'} is absent")
    return folder


@pytest.fixture(scope="module")
def golden(interop: Path) -> dict:
    return torch.load(interop / "golden.pt", weights_only=True)


@pytest.fixture
def checkpoints(interop: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(ENV_VAR, str(interop / "checkpoints"))
    return interop / "checkpoints"


def our_features(model: str, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Upstream's inputs as our GFVC codec codes that model's features."""
    if model == "fomm":
        return torch.cat([inputs["kp"].flatten(1), inputs["jacobian"].flatten(1)], dim=1)
    if model == "cfte":
        return inputs["feature"].flatten(1)
    return torch.cat([inputs["rot"].flatten(1), inputs["trans"], inputs["kp"]], dim=1)


def upstream_outputs(model: str, features: torch.Tensor) -> list[torch.Tensor]:
    """Our features of ``model`` split into upstream's decoder-half outputs, in upstream's order."""
    if model == "fomm":
        return [features[:, :20].reshape(-1, 10, 2), features[:, 20:].reshape(-1, 10, 2, 2)]
    if model == "cfte":
        return [features.reshape(-1, 4, 4)]
    rotation, translation, expression = split_features(features)
    return [expression, rotation, translation]


def test_every_pair_has_a_translator_config_with_the_published_checksum(interop: Path) -> None:
    listing = (interop / "checkpoints" / "SHA256SUMS").read_text().splitlines()
    sums = dict(reversed(line.split()) for line in listing)
    assert set(available("translator")) == {f"{a}2{b}" for a, b in PAIRS}
    for a, b in PAIRS:
        config = load_section("translator", f"{a}2{b}")
        (file_name,) = config["checkpoint_files"]
        assert file_name == f"{UPSTREAM[a]}2{UPSTREAM[b]}_checkpoint.pth.tar"
        assert config["sha256"] == sums[file_name]
        assert (config["source"]["model"], config["target"]["model"]) == (a, b)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(("source", "target"), PAIRS, ids=[f"{a}2{b}" for a, b in PAIRS])
def test_real_translators_reproduce_the_upstream_outputs(golden, checkpoints, source, target, dtype) -> None:
    translator = load_translator(load_section("translator", f"{source}2{target}"), dtype=dtype)
    assert not translator.random_weights and Path(translator.weights).parent == checkpoints
    expected = golden["outputs"][f"{UPSTREAM[source]}2{UPSTREAM[target]}.{str(dtype).removeprefix('torch.')}"]
    features = our_features(source, golden["inputs"][UPSTREAM[source]]).to(dtype)
    latent = translator.latent(features)
    assert latent.dtype == dtype
    assert (latent - expected["latent"]).abs().max().item() <= TOLERANCE[dtype]
    outputs = upstream_outputs(target, translator.translate(features))
    assert len(outputs) == len([key for key in expected if key.startswith("out")])
    for index, output in enumerate(outputs):
        reference = expected[f"out{index}"]
        assert output.shape == reference.shape
        assert (output - reference).abs().max().item() <= TOLERANCE[dtype]
    # a frame translated alone gets its batch's values, to the last bits' rounding of the dtype
    alone = translator.translate(features[3:4])
    tolerance = TOLERANCE[dtype]
    assert torch.allclose(alone, translator.translate(features)[3:4], rtol=tolerance, atol=tolerance)


def test_another_pairs_checkpoint_is_refused_by_name(checkpoints: Path) -> None:
    config = {**load_section("translator", "fomm2fv2v"), "sha256": None}
    with pytest.raises(CheckpointError, match="NVIDIA_Dec: absent"):
        MlpTranslator.from_config(config, weights=str(checkpoints / "FOMM2CFTE_checkpoint.pth.tar"))
    with pytest.raises(CheckpointError, match="sha256 .* expects"):
        load_translator(
            {
                **config,
                "sha256": load_section("translator", "fomm2fv2v")["sha256"],
                "checkpoint": str(checkpoints / "FOMM2CFTE_checkpoint.pth.tar"),
            }
        )


def test_random_weights_when_no_checkpoint_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    config = load_section("translator", "cfte2fv2v")
    translator = load_translator(config)
    assert translator.random_weights and translator.weights.startswith("random")
    assert translator.translate(torch.zeros(2, 16)).shape == (2, 57)
    with pytest.raises(CheckpointError, match="CFTE2FV2V_checkpoint.pth.tar"):
        load_translator(config, weights="checkpoint")
