"""VMAF and the GFVC common software's own definitions, on real frames, against numbers computed here
from their definitions (GFVC_Software_v2's evaluate/ code) and against FFmpeg's own libvmaf run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy.signal import convolve2d

from ctc.metrics import metric_class, metric_set, score_frames, sequence_values
from ctc.testset.sequences import load_test_set
from ctc.tools import ffmpeg_exe

FRAMES = 6
NEW_DEFINITIONS = ["vmaf", "psnr_gfvc", "psnr_yuv420_gfvc", "ssim_yuv420_gfvc"]


@pytest.fixture(scope="module")
def real_pair(shared: Path) -> tuple[np.ndarray, np.ndarray]:
    """The first frames of the real clip FACES_00 (256x256) and their JPEG-compressed copies (quality 25)."""
    (spec,) = load_test_set({"name": "faces", "sequences": ["FACES_00"], "frames": FRAMES})
    reference = np.asarray(spec.read())
    distorted = np.stack(
        [
            cv2.imdecode(
                cv2.imencode(".jpg", frame.transpose(1, 2, 0), [cv2.IMWRITE_JPEG_QUALITY, 25])[1],
                cv2.IMREAD_UNCHANGED,
            ).transpose(2, 0, 1)
            for frame in reference
        ]
    )
    return reference, distorted


def i420(frame: np.ndarray) -> np.ndarray:
    """One RGB (3, H, W) frame as GFVC_Software_v2's rgb444_to_yuv420.py writes it: (H * 3/2, W) I420."""
    return cv2.cvtColor(np.ascontiguousarray(frame.transpose(1, 2, 0)), cv2.COLOR_RGB2YUV_I420)


def planes(frame: np.ndarray) -> list[np.ndarray]:
    height, width = frame.shape[1:]
    data = i420(frame)
    chroma = data[height:].reshape(2, height // 2, width // 2)
    return [data[:height], chroma[0], chroma[1]]


def test_the_new_definitions_are_in_metrics_all() -> None:
    assert set(NEW_DEFINITIONS) <= set(metric_set("all"))
    assert not any(metric_class(name).lower_is_better for name in NEW_DEFINITIONS)


def test_psnr_gfvc_is_the_bt709_luma_psnr_of_the_common_software(real_pair) -> None:
    reference, distorted = real_pair

    def luma(frame: np.ndarray) -> torch.Tensor:  # eval_utils/utils.py load_image_array, in float32
        rgb = torch.tensor(frame, dtype=torch.float) / 255
        rgb = (rgb * 255).round() / 255
        y = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]
        return (y.clamp(0, 1) * 255).round() / 255

    expected = []
    for ref, dist in zip(reference, distorted, strict=True):
        mse = torch.mean((luma(ref) * 255 - luma(dist) * 255) ** 2)  # eval_utils/metrics.py PSNR.calc
        expected.append(20 * np.log10(255.0) - 10 * np.log10(float(mse)))
    values = score_frames(reference, distorted, ["psnr_gfvc"])["psnr_gfvc"]
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-5)  # theirs: a float32 mean
    assert score_frames(reference, reference, ["psnr_gfvc"])["psnr_gfvc"].eq(100).all()


def test_psnr_yuv420_gfvc_weights_4_1_1_at_10_bits(real_pair) -> None:
    reference, distorted = real_pair
    mses = []
    for ref, dist in zip(reference, distorted, strict=True):  # multiMetric_yuv420.py calculate_psnr
        plane_mses = [
            np.mean((a.astype(np.uint16) * 4.0 - b.astype(np.uint16) * 4.0) ** 2)
            for a, b in zip(planes(ref), planes(dist), strict=True)
        ]
        mses.append((4 * plane_mses[0] + plane_mses[1] + plane_mses[2]) / 6)
    table = score_frames(reference, distorted, ["psnr_yuv420_gfvc"])
    np.testing.assert_allclose(
        table["psnr_yuv420_gfvc"], 10 * np.log10(1020.0**2 / np.array(mses)), rtol=0, atol=1e-9
    )
    # the sequence's value: the PSNR of the mean weighted MSE, as the script averages
    assert sequence_values(table)["psnr_yuv420_gfvc"] == pytest.approx(
        10 * np.log10(1020.0**2 / np.mean(mses)), abs=1e-9
    )


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    """multiMetric_yuv420.py compute_ssim: MATLAB-style 11x11 Gaussian (sigma 1.5), valid region, L 255."""
    y, x = np.ogrid[-5:6, -5:6]
    window = np.exp(-(x * x + y * y) / (2 * 1.5**2))
    window /= window.sum()

    def blur(image: np.ndarray) -> np.ndarray:
        return convolve2d(image, np.rot90(window, 2), mode="valid")

    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu1, mu2 = blur(a), blur(b)
    var1, var2, cov = blur(a * a) - mu1**2, blur(b * b) - mu2**2, blur(a * b) - mu1 * mu2
    ssim_map = (2 * mu1 * mu2 + c1) * (2 * cov + c2) / ((mu1**2 + mu2**2 + c1) * (var1 + var2 + c2))
    return float(np.mean(ssim_map))


def test_ssim_yuv420_gfvc_follows_the_scripts_conversions(real_pair) -> None:
    reference, distorted = real_pair
    expected = []
    for ref, dist in zip(reference, distorted, strict=True):  # multiMetric_yuv420.py calculate_ssim
        yuv = [
            cv2.split(
                cv2.cvtColor(cv2.cvtColor(i420(frame), cv2.COLOR_YUV2RGB_I420)[:, :, ::-1], cv2.COLOR_BGR2YUV)
            )
            for frame in (ref, dist)
        ]
        ssims = [_ssim(a, b) for a, b in zip(*yuv, strict=True)]
        expected.append((4 * ssims[0] + ssims[1] + ssims[2]) / 6)
    values = score_frames(reference, distorted, ["ssim_yuv420_gfvc"])["ssim_yuv420_gfvc"]
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-9)


def test_vmaf_equals_ffmpegs_own_libvmaf_on_a_real_clip(real_pair, tmp_path: Path) -> None:
    reference, distorted = real_pair
    height, width = reference.shape[2:]
    files = {}
    for role, frames in (("reference", reference), ("distorted", distorted)):
        files[role] = tmp_path / f"{role}.yuv"
        files[role].write_bytes(b"".join(i420(frame).tobytes() for frame in frames))
    raw = ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{width}x{height}"]
    log = tmp_path / "log.json"
    subprocess.run(
        [
            ffmpeg_exe(),
            "-nostdin",
            "-loglevel",
            "error",
            *raw,
            "-i",
            files["distorted"],
            *raw,
            "-i",
            files["reference"],
            "-lavfi",
            f"libvmaf=log_fmt=json:log_path={log}",
            "-f",
            "null",
            "-",
        ],
        check=True,
    )
    own = json.loads(log.read_text())
    expected = [frame["metrics"]["vmaf"] for frame in own["frames"]]
    table = score_frames(reference, distorted, ["vmaf"], batch_size=2)  # whole sequence, not batches
    np.testing.assert_allclose(table["vmaf"], expected, rtol=0, atol=1e-9)
    assert sequence_values(table)["vmaf"] == pytest.approx(own["pooled_metrics"]["vmaf"]["mean"], abs=1e-6)
    assert 20 < table["vmaf"].mean() < 95
    assert score_frames(reference, reference, ["vmaf"])["vmaf"].min() > 97  # vmaf_v0.6.1 on identical frames
