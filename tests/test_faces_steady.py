"""Steady landmarks: points carried along the flow, corrected by the detections."""

from __future__ import annotations

import numpy as np
import pytest

from retarget.faces.steady import SteadyLandmarks, follow_flow

H = W = 64


def _maps(dx: float, dy: float) -> tuple[np.ndarray, np.ndarray]:
    """Sample maps of a picture that moved by (dx, dy): current pixel x was at x - d."""
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    return xs - dx, ys - dy


def test_follow_flow_moves_points_with_a_known_shift_and_a_zoom():
    pts = np.array([[10.0, 20.0], [40.5, 33.25], [31.0, 31.0]])
    assert np.allclose(follow_flow(pts, *_maps(2.5, -1.25)), pts + [2.5, -1.25], atol=1e-3)
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    c = 32.0  # a zoom by 1.05 about the centre: current x was at c + (x - c) / 1.05
    got = follow_flow(pts, c + (xs - c) / 1.05, c + (ys - c) / 1.05)
    assert np.allclose(got, c + (pts - c) * 1.05, atol=0.02)


def test_jitter_is_removed_where_the_flow_is_trusted_and_the_face_is_followed():
    rng = np.random.default_rng(0)
    truth = np.array([[20.0, 20.0], [40.0, 30.0], [30.0, 45.0]])
    steady, raw_err, steady_err = SteadyLandmarks(0.9), [], []
    for t in range(40):
        truth = truth + [0.5, 0.25]  # the face moves steadily
        detected = truth + rng.normal(0, 1.0, truth.shape)  # the detector jitters by a pixel
        got = steady(detected, *(_maps(0.5, 0.25) if t else (None, None)))
        if t >= 10:
            raw_err.append(np.abs(detected - truth).mean())
            steady_err.append(np.abs(got - truth).mean())
    assert np.mean(steady_err) < 0.45 * np.mean(raw_err)  # the shimmer goes
    assert np.mean(steady_err) < 0.5  # and nothing lags behind the moving face


def test_untrusted_flow_and_resets_pass_the_detection_through():
    steady = SteadyLandmarks(0.9)
    first = np.array([[10.0, 10.0], [50.0, 50.0]])
    assert np.array_equal(steady(first), first)
    moved = first + 3.0
    # the flow says nothing moved, but it cannot be trusted at the first point
    trust = np.ones((H, W), np.float32)
    trust[:, :30] = 0.0
    got = steady(moved, *_maps(0.0, 0.0), trust=trust)
    assert np.allclose(got[0], moved[0]) and np.allclose(got[1], moved[1] - 0.9 * 3.0)
    steady.reset()
    assert np.array_equal(steady(moved, *_maps(0.0, 0.0)), moved)  # a new track: no history
    assert np.array_equal(SteadyLandmarks(0.0)(moved, *_maps(1.0, 1.0)), moved)
    with pytest.raises(ValueError, match="gain"):
        SteadyLandmarks(1.5)


def test_tracks_are_smoothed_within_segments_only():
    from retarget.faces.steady import smooth_tracks

    rng = np.random.default_rng(0)
    t = np.arange(30, dtype=np.float64)
    line = np.stack([t, 2 * t], axis=1)[:, None, :].repeat(3, axis=1)  # three points moving steadily
    noisy = line + rng.normal(0, 1.0, line.shape)
    segments = np.array([0] * 15 + [1] * 15)
    got = smooth_tracks(noisy, segments, sigma=2.0)
    inner = np.r_[4:11, 19:26]  # away from the segments' ends
    assert np.abs(got - line)[inner].mean() < 0.5 * np.abs(noisy - line)[inner].mean()
    # a jump between segments stays a jump: nothing leaks across
    jump = np.zeros((10, 1, 2))
    jump[5:] = 100.0
    got = smooth_tracks(jump, np.array([0] * 5 + [1] * 5), sigma=2.0)
    assert np.array_equal(got, jump)
    assert np.array_equal(smooth_tracks(noisy, segments, sigma=0.0), noisy)
