"""Every decoded version of a sequence scored against reference features computed once: the values are
the reference packages' own objects' (``lpips.LPIPS``, ``DISTS_pytorch.DISTS``, tests/metric_helpers.py)
for each pair, and the backbone runs once per reference frame."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from metric_helpers import package_lpips_vgg_and_dists

from ctc.metrics import MetricError, get_metric, score_versions
from ctc.testset.sequences import load_test_set

FRAMES, SIZE, QUALITIES = 5, 96, (10, 30, 60)


def jpeg(frames: np.ndarray, quality: int) -> np.ndarray:
    return np.stack(
        [
            cv2.imdecode(
                cv2.imencode(".jpg", frame.transpose(1, 2, 0), [cv2.IMWRITE_JPEG_QUALITY, quality])[1],
                cv2.IMREAD_UNCHANGED,
            ).transpose(2, 0, 1)
            for frame in frames
        ]
    )


@pytest.fixture(scope="module")
def sequence(shared: Path) -> np.ndarray:
    """The first frames of the real clip FACES_00, resized to 96x96."""
    (spec,) = load_test_set({"name": "faces", "sequences": ["FACES_00"], "frames": FRAMES})
    return np.stack(
        [
            cv2.resize(frame.transpose(1, 2, 0), (SIZE, SIZE), interpolation=cv2.INTER_AREA).transpose(
                2, 0, 1
            )
            for frame in np.asarray(spec.read())
        ]
    )


@pytest.mark.slow  # builds both networks twice on the CPU
def test_versions_scored_against_shared_reference_features_equal_the_packages_per_pair(sequence) -> None:
    versions = [jpeg(sequence, quality) for quality in QUALITIES]
    dists, lpips_vgg = get_metric("dists"), get_metric("lpips")
    before = dists.backbone_frames, lpips_vgg.backbone_frames
    tables = score_versions(sequence, versions, ["dists", "lpips", "psnr"], "cpu", batch_size=2)
    # one backbone pass per reference frame, one per decoded frame: 5 + 3 x 5 per network
    assert (dists.backbone_frames - before[0], lpips_vgg.backbone_frames - before[1]) == (20, 20)

    reference_lpips, reference_dists = package_lpips_vgg_and_dists()  # the packages' own, a pair at a time
    largest = 0.0
    with torch.inference_mode():
        for table, decoded in zip(tables, versions, strict=True):
            for index in range(FRAMES):
                ref, dist = (
                    torch.from_numpy(x[index : index + 1].astype(np.float32) / 255)
                    for x in (sequence, decoded)
                )
                expected = (
                    float(reference_dists(ref, dist)),
                    float(reference_lpips(ref, dist, normalize=True)),
                )
                found = (table["dists"][index], table["lpips"][index])
                largest = max(largest, *np.abs(np.subtract(found, expected)))
    assert largest <= 1e-6
    assert tables[0]["psnr"].mean() < tables[2]["psnr"].mean()  # quality 10 is worse than 60


def test_a_bad_version_is_reported_and_the_others_are_scored(sequence) -> None:
    versions = [jpeg(sequence, 30), jpeg(sequence, 30)[:3], jpeg(sequence, 60)]
    tables = score_versions(sequence, versions, ["psnr"], labels=["a", "b", "c"])
    assert isinstance(tables[1], MetricError) and str(tables[1]).startswith("b: reference has 5 frames")
    assert [len(table) for table in (tables[0], tables[2])] == [FRAMES, FRAMES]


def test_dists_and_lpips_run_their_common_vgg16_stem_once_per_batch(sequence) -> None:
    """Scored together, the convolutions cost those of each metric alone less one stem (conv1_1 and
    conv1_2 at full resolution) per image, counted by torch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    from ctc.metrics.perceptual import vgg16_stem

    decoded = jpeg(sequence, 30)

    def flops(names: list[str]) -> int:
        with FlopCounterMode(display=False) as counter:
            score_versions(sequence, [decoded], names, "cpu", batch_size=FRAMES)
        return counter.get_total_flops()

    dists = get_metric("dists")
    frames = torch.from_numpy(sequence.astype(np.float32) / 255)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        vgg16_stem(dists.model.stage1, frames)
    stem = counter.get_total_flops()  # of the reference frames; the decoded ones cost the same
    assert stem > 0
    assert flops(["dists", "lpips"]) == flops(["dists"]) + flops(["lpips"]) - 2 * stem
