"""Raw IO round trips (planar RGB 4:4:4 and YUV 4:2:0, 8 and 10 bits) and the OpenCV conversion."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ctc.frames import (
    Yuv420,
    read_rgb444,
    read_yuv420,
    rgb444_frame_bytes,
    rgb_to_yuv420,
    write_rgb444,
    write_yuv420,
    yuv420_frame_bytes,
    yuv420_to_rgb,
)

WIDTH, HEIGHT, FRAMES = 24, 16, 3


def random_rgb(bit_depth: int, frames: int = FRAMES, seed: int = 0) -> np.ndarray:
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    return np.random.default_rng(seed).integers(0, 1 << bit_depth, (frames, 3, HEIGHT, WIDTH), dtype=dtype)


@pytest.mark.parametrize("bit_depth", [8, 10])
def test_rgb444_round_trip_and_layout(tmp_path, bit_depth):
    frames = random_rgb(bit_depth)
    path = tmp_path / "seq.rgb"
    write_rgb444(path, frames, bit_depth)
    assert path.stat().st_size == FRAMES * rgb444_frame_bytes(WIDTH, HEIGHT, bit_depth)
    back = read_rgb444(path, WIDTH, HEIGHT, bit_depth=bit_depth)
    assert isinstance(back, np.memmap)
    np.testing.assert_array_equal(back, frames)
    # planar: the file starts with the whole R plane of frame 0, little-endian when wider than 8 bits
    raw = np.fromfile(path, dtype=np.uint8 if bit_depth == 8 else "<u2", count=WIDTH * HEIGHT)
    np.testing.assert_array_equal(raw.reshape(HEIGHT, WIDTH), frames[0, 0])
    np.testing.assert_array_equal(read_rgb444(path, WIDTH, HEIGHT, 2, bit_depth), frames[:2])


@pytest.mark.parametrize("bit_depth", [8, 10])
def test_yuv420_round_trip_and_layout(tmp_path, bit_depth):
    rng = np.random.default_rng(1)
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    planes = [
        rng.integers(0, 1 << bit_depth, (FRAMES, h, w), dtype=dtype)
        for h, w in ((HEIGHT, WIDTH), (HEIGHT // 2, WIDTH // 2), (HEIGHT // 2, WIDTH // 2))
    ]
    path = tmp_path / "seq.yuv"
    write_yuv420(path, Yuv420(*planes), bit_depth)
    assert path.stat().st_size == FRAMES * yuv420_frame_bytes(WIDTH, HEIGHT, bit_depth)
    back = read_yuv420(path, WIDTH, HEIGHT, bit_depth=bit_depth)
    assert back.num_frames == FRAMES
    for plane, expected in zip((back.y, back.u, back.v), planes, strict=True):
        np.testing.assert_array_equal(plane, expected)
    # I420 order within a frame: Y, then U, then V; frame 1 follows
    raw = np.fromfile(path, dtype=dtype)
    luma, chroma = WIDTH * HEIGHT, WIDTH * HEIGHT // 4
    np.testing.assert_array_equal(raw[luma : luma + chroma], planes[1][0].ravel())
    np.testing.assert_array_equal(raw[luma + 2 * chroma : 2 * luma + 2 * chroma], planes[0][1].ravel())
    assert read_yuv420(path, WIDTH, HEIGHT, 1, bit_depth).num_frames == 1


def test_reading_an_empty_file_gives_no_frames(tmp_path):
    path = tmp_path / "empty.rgb"
    path.write_bytes(b"")
    assert read_rgb444(path, WIDTH, HEIGHT).shape == (0, 3, HEIGHT, WIDTH)
    assert read_yuv420(path, WIDTH, HEIGHT).num_frames == 0


def test_conversion_equals_opencv_i420_per_frame():
    frames = random_rgb(8, seed=2)
    yuv = rgb_to_yuv420(frames)
    for index in range(FRAMES):
        i420 = cv2.cvtColor(np.ascontiguousarray(frames[index].transpose(1, 2, 0)), cv2.COLOR_RGB2YUV_I420)
        chroma = i420[HEIGHT:].reshape(2, HEIGHT // 2, WIDTH // 2)
        np.testing.assert_array_equal(yuv.y[index], i420[:HEIGHT])
        np.testing.assert_array_equal(yuv.u[index], chroma[0])
        np.testing.assert_array_equal(yuv.v[index], chroma[1])
        expected_rgb = cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420).transpose(2, 0, 1)
        np.testing.assert_array_equal(yuv420_to_rgb(yuv)[index], expected_rgb)
    # on smooth content the round trip loses only chroma subsampling and rounding: a few levels
    y, x = np.mgrid[:HEIGHT, :WIDTH]
    smooth = np.stack([40 + 4 * x + 3 * y, 150 - 2 * x + y, 90 + x + 5 * y]).astype(np.uint8)[None]
    assert np.abs(yuv420_to_rgb(rgb_to_yuv420(smooth)).astype(int) - smooth).max() <= 8


def test_conversion_rejects_odd_sizes_and_wide_samples():
    with pytest.raises(ValueError, match="even width and height, not 5x4"):
        rgb_to_yuv420(np.zeros((1, 3, 4, 5), np.uint8))
    with pytest.raises(ValueError, match="uint8 samples, not uint16"):
        rgb_to_yuv420(random_rgb(10))
    with pytest.raises(ValueError, match="bit depth 17 is not supported"):
        rgb444_frame_bytes(WIDTH, HEIGHT, 17)
