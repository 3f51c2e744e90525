"""PSNR, SSIM and flicker against a truth (retarget.eval.metrics)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from retarget.eval.metrics import PSNR_CAP, flicker, luma, psnr, ssim


def _img(seed: int = 0, h: int = 40, w: int = 48) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_psnr_is_capped_for_identical_frames_and_matches_the_formula():
    a = _img()
    assert psnr(a, a) == PSNR_CAP == 100.0
    b = a.astype(np.int16)
    b[::2] += 10  # half the rows off by 10 -> MSE 50 (no clipping below 246)
    b = np.clip(b, 0, 255).astype(np.uint8)
    mse = np.mean((a.astype(float) - b) ** 2)
    assert psnr(a, b) == pytest.approx(10 * np.log10(255**2 / mse))
    assert psnr(np.zeros_like(a), np.full_like(a, 255)) == pytest.approx(0.0)


def test_ssim_is_one_for_identical_frames_and_drops_with_noise_and_structure():
    a = _img(1)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-6)
    smooth = cv2.resize(_img(1, 8, 8), (48, 40), interpolation=cv2.INTER_CUBIC)
    noisy = np.clip(smooth + np.random.default_rng(2).normal(0, 25, smooth.shape), 0, 255).astype(np.uint8)
    light = np.clip(smooth + np.random.default_rng(2).normal(0, 5, smooth.shape), 0, 255).astype(np.uint8)
    assert 0 < ssim(smooth, noisy) < ssim(smooth, light) < 1
    assert ssim(smooth, noisy) < 0.8
    assert abs(ssim(a, _img(3))) < 0.1  # unrelated structure


def test_ssim_constants_on_flat_frames():
    # no variance: SSIM = (2 mx my + C1) / (mx^2 + my^2 + C1) with C1 = (0.01 * 255)^2
    x = np.full((32, 32, 3), 100, np.uint8)
    y = np.full((32, 32, 3), 140, np.uint8)
    c1 = (0.01 * 255) ** 2
    assert ssim(x, y) == pytest.approx((2 * 100 * 140 + c1) / (100**2 + 140**2 + c1), rel=1e-4)


def test_ssim_is_on_luma():
    # BT.601 weights, in RGB order
    y = luma(np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], np.uint8))
    assert y.shape == (1, 4) and y.dtype == np.float32
    assert y[0].tolist() == pytest.approx([0.299 * 255, 0.587 * 255, 0.114 * 255, 255.0], abs=1e-3)
    # a gray texture against a coloured one of the same luma: 299 * 15 - 587 * 9 + 114 * 7 = 0,
    # so adding k * (15, -9, 7) to a pixel changes its colour, not its luma
    gray_level = cv2.resize(_img(4, 8, 8)[..., 0], (48, 40), interpolation=cv2.INTER_CUBIC) // 2 + 64
    gray = np.repeat(gray_level[..., None], 3, axis=2).astype(np.int16)
    k = np.random.default_rng(5).integers(-3, 4, gray.shape[:2])[..., None]
    coloured = (gray + k * np.array([15, -9, 7], np.int16)).astype(np.uint8)
    gray = gray.astype(np.uint8)
    assert np.abs(coloured.astype(int) - gray).max() >= 45  # clearly other colours
    assert ssim(gray, coloured) == pytest.approx(1.0, abs=1e-5)
    # the same size of change, with a luma component, does lower it
    bright = (gray.astype(np.int16) + k * np.array([15, 9, 7], np.int16)).astype(np.uint8)
    assert ssim(gray, bright) < 0.9


def test_flicker_is_zero_for_the_truth_and_for_a_constant_offset_only():
    frames = [_img(s) for s in range(3)]
    assert flicker(frames[0], frames[1], frames[0], frames[1]) == 0.0
    # an output that stays still while the truth changes: flicker = mean |truth change|
    still = flicker(frames[0], frames[0], frames[0], frames[1])
    assert still == pytest.approx(np.abs(frames[1].astype(float) - frames[0]).mean())
    # a constant offset of the output does not flicker
    off_a = np.full((8, 8, 3), 50, np.uint8)
    off_b = np.full((8, 8, 3), 60, np.uint8)
    assert flicker(off_a + 7, off_b + 7, off_a, off_b) == 0.0
    # a frame-to-frame jump the truth does not have does
    assert flicker(off_a, off_a + 20, off_a, off_a) == pytest.approx(20.0)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        psnr(_img(h=10), _img(h=12))
    with pytest.raises(ValueError):
        ssim(_img(h=10), _img(h=12))
