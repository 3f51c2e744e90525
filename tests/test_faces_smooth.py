"""Temporal smoothing of crop matrices (retarget.faces.smooth)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from retarget.faces.align import TEMPLATE_68, apply, crop_matrix, eye_centres
from retarget.faces.smooth import OneEuroFilter, TransformSmoother, one_euro_params

SIZE = 256


def face_at(x: float, y: float, scale: float = 100.0, angle: float = 0.0) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    pts = (TEMPLATE_68 - 0.5) * scale
    return pts @ np.array([[c, s], [-s, c]]) + [x, y]


def aligned_eyes(smoother: TransformSmoother, tracks, times):
    """Eye centres of the *true* faces mapped through the smoothed crop matrices."""
    out = []
    for (true_lm, noisy_lm), t in zip(tracks, times):
        m = smoother(crop_matrix(noisy_lm, SIZE, 0.4), t)
        out.append(eye_centres(apply(m, true_lm)))
    return np.array(out)


def jitter(eyes: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(eyes, axis=0), axis=-1).mean())


def test_smoothing_lowers_jitter_on_a_noisy_still_face():
    rng = np.random.default_rng(0)
    true = face_at(300, 200)
    tracks = [(true, true + rng.normal(0, 0.5, true.shape)) for _ in range(120)]
    times = np.arange(120) / 30.0
    raw = jitter(aligned_eyes(TransformSmoother(SIZE, 0.0), tracks, times))
    smooth = jitter(aligned_eyes(TransformSmoother(SIZE, 1.0), tracks, times))
    stronger = jitter(aligned_eyes(TransformSmoother(SIZE, 3.0), tracks, times))
    assert raw > 0.2  # the noise is visible without smoothing
    assert smooth < raw / 3
    assert stronger < smooth


def test_smoothing_follows_a_steady_motion_with_little_lag():
    rng = np.random.default_rng(1)
    n, speed = 90, 4.0  # source px per frame, a brisk head movement
    tracks, centres = [], []
    for i in range(n):
        true = face_at(100 + speed * i, 200 + 0.5 * speed * i, angle=0.004 * i)
        tracks.append((true, true + rng.normal(0, 0.3, true.shape)))
        centres.append(true[36:48].mean(0))
    times = np.arange(n) / 30.0
    sm = TransformSmoother(SIZE, 1.0)
    lags = []
    for i, ((true, noisy), t) in enumerate(zip(tracks, times)):
        m = sm(crop_matrix(noisy, SIZE, 0.4), t)
        # Which source point does the smoothed crop put where the raw one puts the eyes?
        raw = crop_matrix(true, SIZE, 0.4)
        target = eye_centres(apply(raw, true)).mean(0)
        seen = apply(np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2], target)
        if i >= 20:  # after the filter has picked up the speed
            lags.append(np.linalg.norm(seen - centres[i]) / (speed * math.hypot(1, 0.5)))
    assert np.mean(lags) < 1.0  # frames behind


def test_smooth_zero_passes_matrices_through():
    sm = TransformSmoother(SIZE, 0.0)
    rng = np.random.default_rng(2)
    for i in range(5):
        m = crop_matrix(face_at(200, 200) + rng.normal(0, 2, (68, 2)), SIZE, 0.4)
        assert np.array_equal(sm(m, i / 30), m)
    assert one_euro_params(0.0)[0] == math.inf


def test_strength_maps_to_lower_cutoff_and_beta():
    mc1, b1 = one_euro_params(1.0)
    mc2, b2 = one_euro_params(2.0)
    assert mc2 < mc1 and b2 < b1 and mc1 > 0 and b1 > 0


def test_time_based_variable_frame_rate():
    """The same motion sampled irregularly gives the same result at the common times."""
    f_regular = OneEuroFilter(1.0, 0.1)
    f_irregular = OneEuroFilter(1.0, 0.1)
    regular = {}
    for i in range(61):
        t = i / 60
        regular[round(t, 6)] = f_regular(np.array([100 * t]), t)[0]
    # Every other frame missing in the second half: a VFR stream.
    times = [i / 60 for i in range(31)] + [i / 60 for i in range(32, 61, 2)]
    for t in times:
        y = f_irregular(np.array([100 * t]), t)[0]
    assert abs(y - regular[1.0]) < 0.5  # both reach the same place at t = 1 s
    # A filter that ignored time (fixed dt) would fall behind on the sparser frames.
    f_frames = OneEuroFilter(1.0, 0.1)
    for k, t in enumerate(times):
        y_frames = f_frames(np.array([100 * t]), k / 60)[0]
    assert abs(y_frames - regular[1.0]) > abs(y - regular[1.0])


def test_reset_and_repeated_times():
    f = OneEuroFilter(0.5, 0.0)
    f(np.array([0.0]), 0.0)
    y = f(np.array([10.0]), 1 / 30)[0]
    assert 0 < y < 10
    y2 = f(np.array([10.0]), 1 / 30)[0]  # same time again: still finite, still moving on
    assert y < y2 < 10
    f.reset()
    assert f.value is None
    assert f(np.array([42.0]), 5.0)[0] == 42.0


def test_rotation_unwraps_across_pi():
    sm = TransformSmoother(SIZE, 1.0)
    out = []
    for i, a in enumerate(np.linspace(math.pi - 0.05, math.pi + 0.05, 11)):
        m = crop_matrix(face_at(300, 300, angle=a), SIZE, 0.4)
        out.append(sm(m, i / 30))
    angles = np.unwrap([math.atan2(m[1, 0], m[0, 0]) for m in out])
    # A filter on the wrapped angle would swing round through zero; this one moves a little.
    assert np.abs(np.diff(angles)).max() < 0.05
    scales = [math.hypot(m[0, 0], m[1, 0]) for m in out]
    assert np.ptp(scales) < 1e-6 * scales[0] + 1e-9


@pytest.mark.parametrize("strength", [0.5, 1.0])
def test_smoother_converges_to_a_still_face(strength):
    sm = TransformSmoother(SIZE, strength)
    start = crop_matrix(face_at(100, 100), SIZE, 0.4)
    end = crop_matrix(face_at(130, 100), SIZE, 0.4)
    sm(start, 0.0)
    for i in range(1, 150):
        m = sm(end, i / 30)
    assert np.abs(m - end).max() < 1e-2
