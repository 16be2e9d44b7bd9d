"""ctc-complexity: parameter counts and MACs per pixel from PyTorch's flop counter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from model_helpers import manifest, tiny_params

from ctc.conf import ConfigNotFound
from models.complexity import NOT_COUNTED, count_macs, format_complexity, main, model_complexity
from models.registry import load_model_config


def test_macs_are_half_the_counted_flops_of_a_convolution() -> None:
    conv = torch.nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
    macs = count_macs(conv, torch.zeros(1, 3, 16, 16))
    assert macs == 8 * 3 * 9 * 16 * 16 and type(macs) is int


def test_tiny_fomm_complexity(shared: Path) -> None:
    config = {**load_model_config("fomm"), "model_params": tiny_params(shared / "golden" / "fomm")}
    result = model_complexity("fomm", config, size=128)
    params = result["parameters"]
    assert params["generator"] == params["generator.dense_motion_network"] + sum(
        v for k, v in params.items() if k.startswith("generator.") and k != "generator.dense_motion_network"
    )
    macs = result["macs_per_pixel"]
    assert 0 < macs["encoder"] < macs["decoder"]
    assert macs["key_frame"] > macs["encoder"]  # the key frame's features plus its encoding


@pytest.mark.slow
def test_command_prints_and_records_real_cfte(
    tmp_path: Path, shared: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["cfte", "--json", str(tmp_path / "complexity.json")]) == 0
    printed = capsys.readouterr().out
    assert "cfte: kMAC per pixel at 256x256" in printed and "14,130,530" in printed
    (result,) = json.loads((tmp_path / "complexity.json").read_text())
    expected = manifest(shared / "golden" / "cfte")["num_parameters"]
    assert {k: result["parameters"][k] for k in expected} == expected
    assert result["macs_per_pixel"]["decoder"] > 1e5


def test_unknown_model_is_refused(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["nosuchmodel"])
    assert "no model config 'nosuchmodel' in the config search path" in capsys.readouterr().err


@pytest.mark.slow
def test_dac_family_complexity_counts_their_extra_networks(shared: Path) -> None:
    """HDAC's decoder adds its base-layer encoder and fusion; RDAC's encoder runs its decoder too."""
    result = {}
    for name in ("dac", "hdac", "rdac"):
        config = {**load_model_config(name), "model_params": tiny_params(shared / "golden" / name)}
        result[name] = model_complexity(name, config, size=128)
    assert len({r["parameters"]["kp_detector"] for r in result.values()}) == 1  # one detector design
    macs = {name: r["macs_per_pixel"] for name, r in result.items()}
    # the same detector; their tiny configs' input interpolations differ (0.75 MAC a pixel of 1,390)
    assert macs["dac"]["encoder"] == pytest.approx(macs["hdac"]["encoder"], rel=1e-3)
    assert macs["hdac"]["encoder"] < macs["dac"]["decoder"]
    assert macs["dac"]["decoder"] < macs["hdac"]["decoder"]
    assert macs["rdac"]["encoder"] > macs["rdac"]["decoder"] > macs["dac"]["decoder"]
    assert result["rdac"]["parameters"]["generator.sdc"] == result["rdac"]["parameters"]["generator.tdc"]


def test_sampling_interpolation_pooling_and_normalisation_are_counted_as_stated() -> None:
    """Hand-counted MACs of the operations PyTorch's flop counter leaves out (models/complexity.py)."""
    from torch.nn import functional

    image = torch.zeros(1, 3, 8, 8)
    grid = torch.zeros(1, 4, 5, 2)  # 20 sampling points
    assert count_macs(lambda: functional.grid_sample(image, grid, align_corners=False)) == 3 * 20 * 4
    assert count_macs(lambda: functional.grid_sample(image, grid, mode="nearest", align_corners=False)) == 0
    upsampled = 3 * 16 * 16
    assert count_macs(lambda: functional.interpolate(image, scale_factor=2, mode="bilinear")) == upsampled * 4
    assert count_macs(lambda: functional.avg_pool2d(image, 2)) == 3 * 4 * 4 * 4
    assert count_macs(lambda: functional.max_pool2d(image, 2)) == 3 * 4 * 4 * 4
    norm = torch.nn.BatchNorm2d(3).eval()
    assert count_macs(norm, image) == 3 * 64 * 2
    assert count_macs(torch.nn.GroupNorm(1, 3), image) == 3 * 64 * 4


def test_macs_per_pixel_of_a_network_counted_by_hand() -> None:
    """Protects the per-pixel division (one pixel is one position of the frame, not one sample of its
    three colour planes): ThreeConvModel's convolutions cost 6, 12 and 108 MACs at every pixel."""
    config = {"module": "model_helpers", "class": "ThreeConvModel"}
    result = model_complexity("three-conv", config, size=16)
    assert result["macs_per_pixel"] == {"encoder": 6.0, "decoder": 18.0, "key_frame": 108.0}
    assert result["parameters"] == {"features": 6, "reference": 108, "generator": 12}
    assert result["frame_size"] == [16, 16]


def test_command_prints_and_records_the_figures_of_a_users_model(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """ctc-complexity on a model config of the user's own (ThreeConvModel): kMAC = MAC / 1000."""
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "three.yaml").write_text("module: model_helpers\nclass: ThreeConvModel\n")
    record = tmp_path / "out" / "figures" / "complexity.json"  # folders made as needed
    assert main(["three", "--config-dir", str(tmp_path / "conf"), "--size", "16", "--json", str(record)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "three: parameters",
        f"  {'features':<40} {6:>14,}",
        f"  {'reference':<40} {108:>14,}",
        f"  {'generator':<40} {12:>14,}",
        f"three: kMAC per pixel at 16x16 (not counted: {NOT_COUNTED})",
        f"  {'encoder':<40} {'0.006':>14}",
        f"  {'decoder':<40} {'0.018':>14}",
        f"  {'key_frame':<40} {'0.108':>14}",
    ]
    assert json.loads(record.read_text()) == [
        {
            "model": "three",
            "frame_size": [16, 16],
            "parameters": {"features": 6, "reference": 108, "generator": 12},
            "macs_per_pixel": {"encoder": 6.0, "decoder": 18.0, "key_frame": 108.0},
        }
    ]
    assert record.read_text().startswith('[\n {\n  "model": "three",')  # indented by one
    # again into the same folder, now there
    assert main(["three", "--config-dir", str(tmp_path / "conf"), "--size", "16", "--json", str(record)]) == 0


def test_defaults_and_a_model_without_networks() -> None:
    """256x256 unless asked; a model listing no torch networks has no parameter counts; a model name
    without config is looked up and refused by name."""
    config = {"module": "model_helpers", "class": "ThreeConvModelWithoutNetworks"}
    result = model_complexity("three-conv", config)
    assert result["frame_size"] == [256, 256] and result["parameters"] == {}
    assert result["macs_per_pixel"] == {"encoder": 6.0, "decoder": 18.0, "key_frame": 108.0}
    with pytest.raises(ConfigNotFound, match="no model config 'nosuchmodel'"):
        model_complexity("nosuchmodel")


def test_format_complexity_indents_sub_networks_and_prints_kmac() -> None:
    result = {
        "model": "m",
        "frame_size": [64, 32],
        "parameters": {"generator": 1234567, "generator.sdc": 89},
        "macs_per_pixel": {"decoder": 123456.0},
    }
    assert format_complexity(result).splitlines() == [
        "m: parameters",
        f"  {'generator':<40} {'1,234,567':>14}",
        f"    {'generator.sdc':<40} {'89':>14}",
        f"m: kMAC per pixel at 32x64 (not counted: {NOT_COUNTED})",
        f"  {'decoder':<40} {'123.46':>14}",
    ]


def test_every_sampling_op_is_counted_as_stated() -> None:
    """Hand-counted MACs of the rest of SAMPLING_OPS: 3-D and bicubic sampling, trilinear, bicubic and nearest
    interpolation, 3-D and one-size-list pooling windows, adaptive pooling, layer and training batch norm."""
    from torch.nn import functional

    image, volume = torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 4, 8, 8)
    grid3d = torch.zeros(1, 1, 2, 5, 3)  # 10 sampling points of 2 channels
    assert count_macs(lambda: functional.grid_sample(volume, grid3d, align_corners=False)) == 2 * 10 * 8
    nearest3d = lambda: functional.grid_sample(volume, grid3d, mode="nearest", align_corners=False)  # noqa: E731
    assert count_macs(nearest3d) == 0
    grid = torch.zeros(1, 4, 5, 2)
    bicubic = lambda: functional.grid_sample(image, grid, mode="bicubic", align_corners=False)  # noqa: E731
    assert count_macs(bicubic) == 3 * 20 * 16
    assert (
        count_macs(lambda: functional.interpolate(volume, scale_factor=2, mode="trilinear")) == 32768
    )  # 2 x 8 x 16 x 16 values, 8 each
    assert count_macs(lambda: functional.interpolate(image, scale_factor=2, mode="bicubic")) == 3 * 256 * 16
    assert count_macs(lambda: functional.interpolate(image, scale_factor=2, mode="nearest")) == 0
    assert count_macs(lambda: functional.interpolate(volume, scale_factor=2, mode="nearest")) == 0
    assert count_macs(lambda: functional.avg_pool3d(volume, 2)) == 2 * 2 * 4 * 4 * 8
    assert count_macs(lambda: functional.max_pool3d(volume, (1, 2, 2))) == 2 * 4 * 4 * 4 * 4
    assert count_macs(lambda: functional.max_pool2d(image, (1, 2))) == 3 * 8 * 4 * 2  # 1 x 2 windows
    # one size in a list is that size in every dimension, as for an int (max_pool2d(x, [2]): 2 x 2 windows)
    assert count_macs(lambda: functional.max_pool2d(image, [2])) == 3 * 4 * 4 * 4
    assert count_macs(lambda: functional.avg_pool3d(volume, [2])) == 2 * 2 * 4 * 4 * 8
    assert count_macs(lambda: functional.adaptive_avg_pool2d(image, 2)) == 3 * 64  # one per input value
    assert count_macs(lambda: functional.adaptive_avg_pool3d(volume, 2)) == 2 * 256
    assert count_macs(torch.nn.LayerNorm(8), image) == 3 * 64 * 4
    assert count_macs(torch.nn.BatchNorm2d(3).train(), image) == 3 * 64 * 2


def test_a_models_own_decoder_cases_are_counted_per_pixel() -> None:
    """ThreeConvModelWithCases: one reference 18 MAC/pixel (its decoder pass), two 18 + 12."""
    config = {"module": "model_helpers", "class": "ThreeConvModelWithCases"}
    result = model_complexity("three-conv-cases", config, size=16)
    assert result["macs_per_pixel"] == {
        "encoder": 6.0,
        "decoder": 18.0,
        "key_frame": 108.0,
        "one_reference": 18.0,
        "two_references": 30.0,
    }


@pytest.mark.parametrize(
    ("macs", "shown"),
    [
        (0.0, "0.00"),
        (1000.0, "1.00"),
        (1500.0, "1.50"),
        (2000.0, "2.00"),
        (1234567.0, "1,234.57"),
        (999.0, "0.999"),
    ],
)
def test_kilo_shows_two_decimals_from_one_kmac_and_three_digits_below(macs: float, shown: str) -> None:
    from models.complexity import _kilo

    assert _kilo(macs) == shown
