"""The metric stage: PSNR variants, SSIM / MS-SSIM, batching, bad input and the ctc-score command."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.ndimage import correlate1d
from skimage.metrics import structural_similarity

from ctc.devices import batch_size_for, resolve_device
from ctc.frames import rgb_to_yuv420, write_rgb444
from ctc.metrics import (
    MetricError,
    describe_metrics,
    get_metric,
    metric_config,
    metric_set,
    score_frames,
)
from ctc.metrics.cli import main as ctc_score


def frames_with_noise(
    sigma: float, shape: tuple[int, ...] = (4, 3, 64, 64), seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Textured frames away from 0 and 255 (no clipping) and a copy with Gaussian noise, rounded."""
    rng = np.random.default_rng(seed)
    reference = rng.integers(60, 196, shape).astype(np.uint8)
    noisy = np.rint(reference + rng.normal(0, sigma, shape)).clip(0, 255).astype(np.uint8)
    return reference, noisy


def test_the_ctc_set_and_directions() -> None:
    assert metric_set("ctc") == ["dists", "lpips", "psnr"]
    assert set(metric_set("ctc")) <= set(metric_set("all"))
    info = describe_metrics(metric_set("all"))
    lower_is_better = {name for name, meta in info.items() if meta["lower_is_better"]}
    assert lower_is_better == {"dists", "lpips", "lpips_alex"}
    assert "(6·MSE_Y + MSE_U + MSE_V) / 8" in info["psnr_yuv"]["description"]
    assert info["psnr"]["unit"] == "dB"
    # what result.json records of each plane's PSNR (the plane named in capitals, the conversion)
    for plane in "yuv":
        assert info[f"psnr_{plane}"]["description"] == (
            f"PSNR of the {plane.upper()} plane of YUV 4:2:0 (BT.601 as OpenCV's RGB2YUV_I420 converts), "
            "capped at 100 dB"
        )


def test_identical_frames_give_the_caps() -> None:
    frames, _ = frames_with_noise(0, (2, 3, 192, 192))
    psnrs = ["psnr", "psnr_y", "psnr_u", "psnr_v", "psnr_yuv"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an MSE of 0 gives the cap, without a division-by-zero warning
        table = score_frames(frames, frames.copy(), [*psnrs, "ssim", "msssim"])
    np.testing.assert_allclose(table[psnrs], 100.0)
    np.testing.assert_allclose(table[["ssim", "msssim"]], 1.0, atol=1e-6)


@pytest.mark.parametrize("sigma", [2.0, 8.0])
def test_gaussian_noise_gives_the_predicted_psnr(sigma: float) -> None:
    reference, noisy = frames_with_noise(sigma, (4, 3, 128, 128))
    predicted = 10 * np.log10(255**2 / (sigma**2 + 1 / 12))  # rounding to integers adds 1/12
    values = score_frames(reference, noisy, ["psnr"])["psnr"]
    np.testing.assert_allclose(values, predicted, atol=0.05)  # the noise's statistics: as loose as that
    # the definition, exactly: per frame, the mean over R, G, B of each plane's 10·log10(255² / MSE)
    mse = ((reference.astype(np.float64) - noisy) ** 2).mean(axis=(2, 3))
    np.testing.assert_allclose(values, (10 * np.log10(255.0**2 / mse)).mean(axis=1), rtol=1e-12)


def test_yuv_psnrs_follow_the_jvet_weighting() -> None:
    reference, noisy = frames_with_noise(5.0)
    table = score_frames(reference, noisy, ["psnr_y", "psnr_u", "psnr_v", "psnr_yuv"])
    ref_yuv, dist_yuv = rgb_to_yuv420(reference), rgb_to_yuv420(noisy)
    mse = {
        p: ((getattr(ref_yuv, p).astype(float) - getattr(dist_yuv, p)) ** 2).mean(axis=(1, 2)) for p in "yuv"
    }
    for plane in "yuv":
        np.testing.assert_allclose(table[f"psnr_{plane}"], 10 * np.log10(255**2 / mse[plane]))
    combined = (6 * mse["y"] + mse["u"] + mse["v"]) / 8
    np.testing.assert_allclose(table["psnr_yuv"], 10 * np.log10(255**2 / combined))


def _ssim_numpy(a: np.ndarray, b: np.ndarray, window: np.ndarray) -> tuple[float, float]:
    """SSIM and contrast-structure of two planes over the valid region, written out from Wang et al."""

    def blur(x: np.ndarray) -> np.ndarray:
        half = len(window) // 2
        return correlate1d(correlate1d(x, window, axis=0), window, axis=1)[half:-half, half:-half]

    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2, blur(a * b) - mu_a * mu_b
    cs = (2 * cov + c2) / (var_a + var_b + c2)
    return float((cs * (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)).mean()), float(cs.mean())


def _msssim_numpy(a: np.ndarray, b: np.ndarray) -> float:
    weights = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
    window = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    window /= window.sum()
    a, b = a.astype(np.float64), b.astype(np.float64)
    css = []
    for _ in range(4):
        css.append(_ssim_numpy(a, b, window)[1])
        a, b = (x.reshape(x.shape[0] // 2, 2, x.shape[1] // 2, 2).mean(axis=(1, 3)) for x in (a, b))
    return float(np.prod(np.array(css) ** weights[:4]) * _ssim_numpy(a, b, window)[0] ** weights[4])


def test_ssim_and_msssim_equal_the_standard_definitions() -> None:
    reference, noisy = frames_with_noise(12.0, (2, 3, 176, 176))
    blurred = np.stack(
        [cv2.GaussianBlur(f.transpose(1, 2, 0), (5, 5), 1.2).transpose(2, 0, 1) for f in noisy]
    )
    table = score_frames(reference, blurred, ["ssim", "msssim"])
    for i in range(2):
        skimage_ssim = np.mean(
            [
                structural_similarity(
                    reference[i, c],
                    blurred[i, c],
                    gaussian_weights=True,
                    sigma=1.5,
                    use_sample_covariance=False,
                    data_range=255,
                )
                for c in range(3)
            ]
        )
        assert table["ssim"][i] == pytest.approx(skimage_ssim, abs=2e-5)
        msssim = np.mean([_msssim_numpy(reference[i, c], blurred[i, c]) for c in range(3)])
        assert table["msssim"][i] == pytest.approx(msssim, abs=2e-5)
    assert (table["msssim"] < 0.99).all() and (table["ssim"] < table["msssim"]).all()


def test_batches_of_any_size_give_the_same_values() -> None:
    reference, noisy = frames_with_noise(6.0, (7, 3, 32, 32))
    names = ["psnr", "psnr_yuv", "ssim"]
    np.testing.assert_allclose(
        score_frames(reference, noisy, names, batch_size=3).to_numpy(),
        score_frames(reference, noisy, names, batch_size=1).to_numpy(),
        rtol=1e-6,
    )


def test_memory_mapped_files_are_scored(tmp_path: Path) -> None:
    reference, noisy = frames_with_noise(4.0, (3, 3, 16, 16))
    for name, frames in (("ref.rgb", reference), ("dec.rgb", noisy)):
        write_rgb444(tmp_path / name, frames)
    mapped = [np.memmap(tmp_path / n, np.uint8, "r", shape=reference.shape) for n in ("ref.rgb", "dec.rgb")]
    np.testing.assert_array_equal(
        score_frames(*mapped, ["psnr"]).to_numpy(), score_frames(reference, noisy, ["psnr"]).to_numpy()
    )


@pytest.mark.parametrize(
    ("distorted", "message"),
    [
        (np.zeros((3, 3, 16, 16), np.uint8), "job 7: reference has 2 frames, decoded has 3"),
        (np.zeros((2, 3, 16, 18), np.uint8), "job 7: reference frames are 16x16, decoded frames are 18x16"),
        (np.full((2, 3, 16, 16), np.nan), r"job 7: decoded frames 0-1 contain NaN"),
        (np.full((2, 3, 16, 16), 256.0), r"values in \[256.0, 256.0\]; expected 8-bit integers"),
        (np.zeros((2, 16, 16, 3), np.uint8), r"decoded frames have shape \(2, 16, 16, 3\), expected \(N, 3"),
    ],
)
def test_bad_input_names_the_job_and_the_mismatch(distorted: np.ndarray, message: str) -> None:
    with pytest.raises(MetricError, match=message):
        score_frames(np.zeros((2, 3, 16, 16), np.uint8), distorted, ["psnr"], label="job 7")


def test_unknown_metric_and_unsuitable_sizes() -> None:
    frames = np.zeros((1, 3, 15, 15), np.uint8)
    with pytest.raises(MetricError, match="unknown metric 'vmaf2'; available: dists, lpips"):
        score_frames(frames, frames, ["psnr", "vmaf2"])
    with pytest.raises(MetricError, match="vmaf needs even frame sizes for YUV 4:2:0, got 15x15"):
        score_frames(frames, frames, ["vmaf"])
    with pytest.raises(MetricError, match="psnr_yuv needs even frame sizes for YUV 4:2:0, got 15x15"):
        score_frames(frames, frames, ["psnr_yuv"])
    for width, height in ((16, 15), (15, 16)):  # one odd side is enough
        odd = np.zeros((1, 3, height, width), np.uint8)
        message = f"psnr_y needs even frame sizes for YUV 4:2:0, got {width}x{height}"
        with pytest.raises(MetricError, match=message):
            score_frames(odd, odd, ["psnr_y"])
    with pytest.raises(MetricError, match="msssim needs frames of at least 161x161, got 15x15"):
        score_frames(frames, frames, ["msssim"])
    assert score_frames(frames + 1, frames, ["psnr"])["psnr"][0] == pytest.approx(10 * np.log10(255**2))


def test_ssim_and_msssim_take_frames_of_exactly_their_smallest_side() -> None:
    """SSIM needs one 11x11 window, MS-SSIM (11 - 1) x 2^4 + 1 = 161 pixels at its first scale: a frame
    of that side is scored; one side shorter is refused, the message giving width x height."""
    for name, side in (("ssim", 11), ("msssim", 161)):
        reference, noisy = frames_with_noise(8.0, (1, 3, side, side))
        assert 0 < score_frames(reference, noisy, [name])[name][0] < 1
        wide = np.zeros((1, 3, side - 1, side + 4), np.uint8)
        message = f"{name} needs frames of at least {side}x{side}, got {side + 4}x{side - 1}"
        with pytest.raises(MetricError, match=message):
            score_frames(wide, wide, [name])


def test_metrics_are_built_once_per_process_and_device() -> None:
    assert get_metric("psnr", "cpu") is get_metric("psnr", "cpu")
    assert resolve_device("cuda:1") == "cuda:1"
    assert resolve_device("auto") in {"cpu", "cuda"}
    assert get_metric("psnr", "auto").device == resolve_device("auto")


def test_batch_size_depends_on_the_device() -> None:
    config = metric_config("ctc")
    assert batch_size_for(config, "cuda:0") == config["batch_size"]
    assert batch_size_for(config, "cpu") == config["cpu_batch_size"]
    assert batch_size_for({"batch_size": 8}, "cpu") == 8


def test_ctc_score_on_two_sequences(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    reference, noisy = frames_with_noise(3.0, (3, 3, 32, 48))
    write_rgb444(tmp_path / "ref.rgb", reference)
    write_rgb444(tmp_path / "dec.rgb", noisy)
    argv = [str(tmp_path / "ref.rgb"), str(tmp_path / "dec.rgb"), "--width", "48", "--height", "32"]
    assert ctc_score([*argv, "--metrics", "psnr,psnr_yuv", "--per-frame", "--frames", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["frames"], report["width"], report["height"]) == (2, 48, 32)
    expected = score_frames(reference[:2], noisy[:2], ["psnr"])["psnr"]
    assert report["metrics"]["psnr"]["value"] == pytest.approx(expected.mean())
    assert report["metrics"]["psnr"]["lower_is_better"] is False
    assert report["per_frame"]["psnr"] == pytest.approx(list(expected))

    assert ctc_score(argv[:2]) == 2
    assert "needs --width and --height" in capsys.readouterr().err
    (tmp_path / "short.rgb").write_bytes(reference.tobytes()[:-5])
    assert ctc_score([argv[0], str(tmp_path / "short.rgb"), *argv[2:], "--metrics", "psnr"]) == 2
    assert "not a whole number of 48x32 8-bit RGB 4:4:4 frames" in capsys.readouterr().err


def test_ctc_score_on_two_images(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    reference, noisy = frames_with_noise(3.0, (1, 3, 24, 40))
    for name, frame in (("ref.png", reference[0]), ("dec.bmp", noisy[0])):
        cv2.imwrite(str(tmp_path / name), frame.transpose(1, 2, 0)[:, :, ::-1])  # RGB planes -> BGR image
    assert ctc_score([str(tmp_path / "ref.png"), str(tmp_path / "dec.bmp"), "--metrics", "psnr", "ssim"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "image" and "per_frame" not in report
    expected = score_frames(reference, noisy, ["psnr"])["psnr"][0]
    assert report["metrics"]["psnr"]["value"] == pytest.approx(expected)
    assert ctc_score([str(tmp_path / "ref.png"), str(tmp_path / "missing.png")]) == 2
    assert "missing.png: no such file" in capsys.readouterr().err
    assert ctc_score([str(tmp_path / "ref.png"), str(tmp_path / "dec.bmp"), "--metrics", "sharpness"]) == 2
    assert "unknown metric or metric set 'sharpness'" in capsys.readouterr().err
