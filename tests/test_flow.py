"""Optical flow helpers: a known shift is recovered, warping lines frames up, occlusions fail the check."""

from __future__ import annotations

import numpy as np

from retarget.video.flow import FlowEstimator, consistent, motion, warp


def _texture(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    import cv2

    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def test_known_shift_is_recovered():
    img = _texture()
    shifted = np.roll(img, 3, axis=1)  # content moves 3 px right
    m = motion(img, shifted)
    inner = m.backward[16:-16, 16:-16]
    # cur(x) = prev(x - 3): the backward flow points 3 px left
    assert abs(float(np.median(inner[..., 0])) + 3) < 0.3
    assert abs(float(np.median(inner[..., 1]))) < 0.3
    aligned = warp(img, m.backward)
    err = np.abs(aligned.astype(float) - shifted.astype(float))[16:-16, 16:-16].mean()
    assert err < 6
    assert m.valid[16:-16, 16:-16].mean() > 0.9


def test_inconsistent_flow_is_rejected():
    h, w = 32, 32
    back = np.zeros((h, w, 2), np.float32)
    back[..., 0] = 4.0
    fwd_good = np.full((h, w, 2), 0, np.float32)
    fwd_good[..., 0] = -4.0
    fwd_bad = np.zeros((h, w, 2), np.float32)
    fwd_bad[..., 0] = 4.0
    good = consistent(back, fwd_good)
    assert good[:, : w - 5].all()
    assert not good[:, w - 3 :].any()  # sampled outside the frame
    assert not consistent(back, fwd_bad).any()


def test_estimator_shape_and_sizes():
    est = FlowEstimator("fast")
    a = _texture(64, 64)
    f = est(a, a)
    assert f.shape == (64, 64, 2) and f.dtype == np.float32
    assert np.abs(f).max() < 0.5


def test_frames_too_small_for_dis_still_get_their_flow():
    """DIS refuses frames under 12 px; they are measured enlarged, and the shift comes back in their pixels."""
    est = FlowEstimator()
    big = _texture(80, 80)
    import cv2

    small = cv2.resize(big, (10, 10), interpolation=cv2.INTER_AREA)
    moved = cv2.resize(np.roll(big, 8, axis=1), (10, 10), interpolation=cv2.INTER_AREA)  # 1 small px right
    f = est(moved, small)  # moved(x) ~ small(x + f): f points 1 px left
    assert f.shape == (10, 10, 2) and f.dtype == np.float32
    assert abs(float(np.median(f[3:7, 3:7, 0])) + 1) < 0.35
    for h, w in ((1, 1), (5, 40), (11, 200)):
        a = np.zeros((h, w, 3), np.uint8)
        assert est(a, a).shape == (h, w, 2)


def test_warping_error_of_consistent_and_noisy_outputs():
    from retarget.eval.temporal import warping_errors

    base = _texture(64, 64, seed=3)
    sources = [np.roll(base, 2 * t, axis=1) for t in range(6)]
    mapped = [255 - s for s in sources]  # a fixed colour map follows the motion exactly
    rng = np.random.default_rng(0)
    noisy = [np.clip(m.astype(int) + rng.integers(-20, 21, m.shape), 0, 255).astype(np.uint8) for m in mapped]
    own = warping_errors(sources, sources).mean()
    consistent_err = warping_errors(mapped, sources).mean()
    noisy_err = warping_errors(noisy, sources).mean()
    assert abs(consistent_err - own) < 1.0
    assert noisy_err > consistent_err + 5
