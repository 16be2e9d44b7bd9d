"""MRDAC: layout equal to the upstream manifest (its reference coder skipped by name), every
intermediate equal to the upstream goldens for 1, 2 and 3 references, the keypoint coder byte for
byte, the reference policy's decisions, and our fixes of upstream's bugs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import (
    golden_fixtures,
    layout,
    load_pt,
    manifest,
    max_abs_diff,
    tiny_params,
    training_checkpoint,
)

from ctc.conf import load_section
from models import mrdac_kp
from models.checkpoints import CheckpointError
from models.complexity import model_complexity
from models.mrdac import MRDAC, reference_weights
from models.mrdac_policy import ReferencePolicy
from models.registry import load_model_config

golden, expected, inputs = golden_fixtures("mrdac")
CASES = {"k1": [0], "k2": [0, 3], "k3": [0, 3, 6]}
TARGET = 4  # the cases' target frame
INTER = [1, 2, 4, 5, 7]  # the e2e run's inter frames


def tiny_config(golden: Path) -> dict:
    return json.loads((golden / "tiny" / "config.json").read_text())


def tiny_model(golden: Path, tmp_path: Path, dtype: torch.dtype, extra: dict | None = None) -> MRDAC:
    """The tiny golden weights through a checkpoint file, as the real one is laid out."""
    networks = {name: load_pt(golden / "tiny" / f"{name}.pt") for name in ("kp_detector", "generator")}
    networks["generator"].update(extra or {})
    path = tmp_path / "mrdac.pth.tar"
    torch.save(training_checkpoint(networks), path)
    config = {**load_model_config("mrdac"), "model_params": tiny_params(golden)}
    return MRDAC.from_config(config, weights=path, dtype=dtype)


def frame_tensor(frames_hwc: torch.Tensor) -> torch.Tensor:
    """Upstream's ``frame2tensor``: a float32 torch division."""
    return frames_hwc.permute(0, 3, 1, 2).float() / 255.0


def test_model_config_holds_the_manifest_model_params(golden: Path) -> None:
    assert load_model_config("mrdac")["model_params"] == manifest(golden)["config"]["model_params"]


def test_state_dict_layout_equals_the_manifest_without_the_reference_coder(golden: Path) -> None:
    info = manifest(golden)
    networks = MRDAC.build_networks(info["config"]["model_params"])
    for name, module in networks.items():
        entries = {
            e["key"]: (tuple(e["shape"]), e["dtype"])
            for e in info["state_dicts"][name]
            if not e["key"].startswith("ref_coder.")
        }
        assert {key: (shape, dtype) for key, shape, dtype in layout(module)} == entries, name
    counts = {name: sum(p.numel() for p in module.parameters()) for name, module in networks.items()}
    assert counts["kp_detector"] == info["num_parameters"]["kp_detector"]
    assert counts["generator"] == info["num_parameters"]["generator_without_ref_coder"]


def test_checkpoint_loads_strictly_but_for_the_reference_coder(golden: Path, tmp_path: Path) -> None:
    stand_in = {
        "ref_coder.entropy_bottleneck._quantized_cdf": torch.zeros(0),
        "ref_coder.g_a.0.weight": torch.zeros(128, 3, 5, 5),
    }
    model = tiny_model(golden, tmp_path, torch.float32, stand_in)
    assert not model.random_weights and model.num_kp == 10
    state = load_pt(golden / "tiny" / "generator.pt")
    assert torch.equal(model.generator.state_dict()["final.weight"], state["final.weight"])
    with pytest.raises(CheckpointError, match=r"1 unexpected keys: aggregation\.r_3\.conv1\.weight"):
        tiny_model(golden, tmp_path, torch.float32, {"aggregation.r_3.conv1.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"shapes differ: final\.weight"):
        tiny_model(golden, tmp_path, torch.float32, {"final.weight": torch.zeros(3, 8, 3, 3)})


@pytest.fixture(scope="module")
def tiny_networks(golden: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[torch.dtype, MRDAC]:
    folder = tmp_path_factory.mktemp("mrdac")
    return {dtype: tiny_model(golden, folder, dtype) for dtype in (torch.float64, torch.float32)}


def references(model: MRDAC, inputs: dict, kp: dict[int, torch.Tensor]) -> dict[int, dict]:
    """The golden's references 0, 3, 6 from their decoded frames, with the keypoints ``kp`` where given
    (upstream takes reference 3's, its first look-ahead, from the original frame)."""
    decoded = frame_tensor(inputs["reference_decoded_uint8"])
    out = {}
    for row, position in enumerate(inputs["reference_indices"].tolist()):
        out[position] = model.prepare_reference(decoded[row : row + 1])
        if position in kp:
            out[position]["kp"] = {"value": model._input(kp[position])}
    return out


@pytest.mark.parametrize(
    ("dtype", "tolerance", "kp_tolerance"), [(torch.float64, 1e-9, 1e-9), (torch.float32, 1e-4, 1e-5)]
)
def test_every_intermediate_equals_the_golden(
    tiny_networks: dict,
    inputs: dict,
    expected: dict,
    dtype: torch.dtype,
    tolerance: float,
    kp_tolerance: float,
) -> None:
    """Keypoints, reference features, per reference dense motion, deformed and aggregated features;
    the fusion of 1, 2 and 3 references with weights and of 3 without."""
    model = tiny_networks[dtype]
    with torch.no_grad():
        kp_frames = model.networks["kp_detector"](model._input(inputs["video"]))
        refs = references(model, inputs, {3: kp_frames["value"][3:4]})
        kp_target = {"value": model._input(expected["e2e.kp_hat"][INTER.index(TARGET)][None])}
        ours = {
            "kp_frames.value": kp_frames["value"],
            "kp_frames.heatmap": kp_frames["heatmap"],
            "kp_decoded_refs.value": torch.cat([refs[p]["kp"]["value"] for p in (0, 6)]),
        }
        deformed = {}
        for position, reference in refs.items():
            ours[f"ref.ref{position}.features"] = reference["features"]
            out = deformed[position] = model.generator.deform_reference(reference, kp_target)
            for key in ("deformation", "occlusion_map", "mask", "heatmap_sum"):
                ours[f"ref.ref{position}.dense_motion.{key}"] = out[key]
            for key in ("deformed_features", "aggregation_out"):
                ours[f"ref.ref{position}.{key}"] = out[key]
        for case, positions in CASES.items():
            weights = reference_weights(positions, TARGET)[None]
            assert torch.equal(weights, expected[f"case_{case}.ref_weights"]), case
            out = model.generator.combine([deformed[p] for p in positions], weights)
            for key in ("max_aggregated", "bottleneck_out", "prediction"):
                ours[f"case_{case}.{key}"] = out[key]
        out = model.generator.fuse([refs[p] for p in CASES["k3"]], kp_target)  # the one-call path
        ours |= {
            "case_k3_noweights.max_aggregated": out["max_aggregated"],
            "case_k3_noweights.prediction": out["prediction"],
        }
    golden_decoded = expected["kp_decoded_refs.value"][[0, 2]]
    for key, value in ours.items():
        reference = golden_decoded if key == "kp_decoded_refs.value" else expected[key]
        limit = kp_tolerance if key.startswith("kp_") else tolerance
        assert value.dtype == dtype and value.shape == reference.shape, key
        assert max_abs_diff(value, reference) <= limit, key


def test_upstream_run_predictions_equal_the_golden_float32(
    tiny_networks: dict, inputs: dict, expected: dict
) -> None:
    """The five inter frames of upstream's coder run, from its references, keypoints and weights."""
    model = tiny_networks[torch.float32]
    keys = expected["e2e.anim_reference_keys"]
    with torch.no_grad():
        refs = references(model, inputs, {p: expected[f"e2e.reference_kp.ref{p}"] for p in (0, 3, 6)})
        for row, frame in enumerate(INTER):
            assert keys[row, 0].item() == frame
            positions = [p for p in keys[row, 1:].tolist() if p >= 0]
            weights = reference_weights(positions, frame)[None]
            golden_weights = expected["e2e.ref_weights"][row]
            assert torch.equal(weights[0], golden_weights[: len(positions)])
            kp_hat = expected["e2e.kp_hat"][row].flatten()[None]
            prediction = model.animate([refs[p] for p in positions], kp_hat, weights)
            assert max_abs_diff(prediction, expected["e2e.prediction"][row : row + 1]) <= 1e-4, frame
            ours = (prediction[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8).astype(int)
            assert np.abs(ours - expected["e2e.decoded_uint8"][frame].numpy()).max() <= 1, frame


def test_keypoint_coder_equals_upstream_byte_for_byte(expected: dict) -> None:
    """Fed with upstream's residuals (int8, as it coded them), frame after frame with one model."""
    encoder, decoder = mrdac_kp.KeypointEncoder(), mrdac_kp.KeypointDecoder()
    for row, frame in enumerate(INTER):
        coded = expected["e2e.kp_residual_int"][row].flatten().tolist()
        payload = encoder.encode(coded)
        assert payload == bytes(expected[f"e2e.kp_bitstring.frame{frame:04d}"].tolist()), frame
        assert 8 * len(payload) == expected["e2e.kp_bits"][row].item()
        assert decoder.decode(payload, 20) == coded
        kp_hat = mrdac_kp.reconstruct(expected["e2e.kp_predictor"][row][None], coded, 512)
        assert torch.equal(kp_hat[0], expected["e2e.kp_hat"][row]), frame
    total = sum(expected["e2e.kp_bits"].tolist()) + sum(tiny_config_bits().values())
    assert total == expected["e2e.total_bits"].item()


def tiny_config_bits() -> dict[str, int]:
    return {"0": 4000, "3": 4300, "6": 4600}  # the golden run's stand-in reference bits (config.json)


def test_residuals_beyond_int8_are_escaped_not_wrapped(expected: dict) -> None:
    """Upstream bug 1: frame 2 kp 9 x (-148) and frame 7 kp 3 y (137) wrap around and decode 0.5 off;
    ours decode within half a step of the target."""
    encoder, decoder = mrdac_kp.KeypointEncoder(), mrdac_kp.KeypointDecoder()
    for frame, position in ((2, 18), (7, 7)):
        index = INTER.index(frame)
        predictor, target = expected["e2e.kp_predictor"][index][None], expected["e2e.kp_target"][index][None]
        residual = mrdac_kp.residuals(predictor, target, 512)
        upstream = expected["e2e.kp_residual_int"][index].flatten().tolist()
        assert [((v + 128) % 256) - 128 for v in residual] == upstream
        assert abs(residual[position]) > 127, frame
        upstream_error = (expected["e2e.kp_hat"][index].flatten() - target.flatten()).abs()
        assert upstream_error[position].item() == pytest.approx(0.5, abs=1 / 512)
        decoded = decoder.decode(encoder.encode(residual), 20)
        assert decoded == residual
        ours = mrdac_kp.reconstruct(predictor, decoded, 512)
        assert (ours - target).abs().max().item() <= 0.5 / 512 + 1e-6, frame
    with pytest.raises(ValueError, match="does not fit 16 bits"):
        mrdac_kp.to_symbols([40000])


def configured_policy(**overrides) -> ReferencePolicy:
    """The policy of ``ctc/conf/codec/mrdac.yaml`` (upstream's defaults) with ``overrides``."""
    section = {**load_section("codec", "mrdac")["references"], **overrides}
    return ReferencePolicy.from_config({"references": section}, "mrdac")


def golden_policy(golden: Path, **overrides) -> ReferencePolicy:
    params = tiny_config(golden)["eval_params"]
    upstream = {
        "gop_size": params["gop_size"],
        "search_window": params["search_window"],
        "max_references": None,
    }
    return configured_policy(**{**upstream, **overrides})


@pytest.mark.parametrize("max_references", [None, 3, 4])
def test_reference_policy_reproduces_upstream_decisions(
    golden: Path, expected: dict, max_references: int | None
) -> None:
    frames = tiny_config(golden)["eval_params"]["num_frames"]
    plan = golden_policy(golden, max_references=max_references).plan(frames)
    coded = expected["e2e.ref_coder_calls"][:, 0].tolist()
    assert plan.references == coded == tiny_config(golden)["references"]
    # upstream codes 0 and the first look-ahead at frame 0, the next one when playback reaches 3
    assert plan.coded_at == {0: 0, 3: 0, 6: 3}
    assert plan.inter_frames == expected["e2e.inter_frames"].tolist()
    for row in expected["e2e.anim_reference_keys"].tolist():
        assert plan.in_use[row[0]] == [p for p in row[1:] if p >= 0]


def test_reference_policy_at_upstream_defaults() -> None:
    """250 frames, gop 25, search window 5: references 0, 25, ..., 225, 249; upstream keeps all 11
    (bug 3); ours keeps at most max_references, dropping by the configured rule."""
    unbounded = configured_policy(max_references=None).plan(250)
    assert unbounded.references == [*range(0, 250, 25), 249]
    assert all(unbounded.in_use[f] == unbounded.references for f in range(226, 249))
    bounded = configured_policy().plan(250)
    assert bounded.references == unbounded.references
    assert max(map(len, bounded.in_use)) == 4
    assert bounded.in_use[230] == [175, 200, 225, 249]
    assert configured_policy(eviction="keep_first").plan(250).in_use[230] == [0, 200, 225, 249]
    assert configured_policy(max_references=2).plan(250).in_use[230] == [225, 249]


def test_reference_policy_covers_only_the_coded_frames(golden: Path) -> None:
    """Upstream bug 4: it looks ahead over the whole video, not num_frames; a one-frame sequence codes
    frame 0 once."""
    assert golden_policy(golden).plan(6).references == [0, 3, 5]
    assert golden_policy(golden).plan(1).references == [0]
    assert golden_policy(golden).plan(1).in_use == [[]]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"max_references": 1}, "max_references 1: expected 2 or more"),
        ({"eviction": "newest"}, "eviction 'newest'"),
        ({"gop_size": 0}, "gop_size 0"),
    ],
)
def test_bad_policy_is_refused(section: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        configured_policy(**section)


def test_complexity_per_number_of_references(golden: Path) -> None:
    """Each reference adds the same work (its dense motion, warp and aggregation); the counts are the
    tiny golden's parameters."""
    config = {**load_model_config("mrdac"), "model_params": tiny_params(golden)}
    result = model_complexity("mrdac", config, size=128)
    counts = {k: result["parameters"][k] for k in ("kp_detector", "generator")}
    assert counts == tiny_config(golden)["num_parameters"]
    macs = [
        result["macs_per_pixel"][key]
        for key in ("decoder", "decoder, 2 references", "decoder, 3 references", "decoder, 4 references")
    ]
    steps = {round(b - a, 6) for a, b in zip(macs[:-1], macs[1:], strict=True)}
    assert len(steps) == 1 and steps.pop() > 0
