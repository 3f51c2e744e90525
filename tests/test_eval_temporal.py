"""Lai et al.'s E_warp on a case computed by hand, and what the frame scorer counts
(frames, pairs, scene cuts, gaps, unreliable pairs) (retarget.eval.temporal, score)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import retarget.eval.score as score_mod
from retarget.eval.score import FrameScorer, score_frames
from retarget.eval.temporal import motion_boundary, non_occluded, pair_e_warp, pair_warping_error
from retarget.video.flow import Motion


def _hand_case():
    """A 4 x 4 pair whose E_warp is worked out by hand in the test below.

    Backward flow: 1 px left in columns 0-2, 2 px left in column 3 (so ``warp(prev)`` at
    ``(y, x)`` is ``prev(y, x - 1)``, and ``prev(y, 1)`` in column 3). The forward-backward
    check (``valid``) fails in column 0 (its match lies outside the frame) and at
    ``(1, 1)`` (an occlusion).
    """
    flow = np.zeros((4, 4, 2), np.float32)
    flow[:, :3, 0] = -1.0
    flow[:, 3, 0] = -2.0
    valid = np.ones((4, 4), bool)
    valid[:, 0] = False
    valid[1, 1] = False
    prev = np.zeros((4, 4, 3), np.uint8)
    prev[..., 0] = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10
    prev[..., 1] = 100
    prev[..., 2] = 200
    cur = np.zeros_like(prev)
    for y in range(4):
        for x in range(4):
            cur[y, x] = prev[y, max(x + int(flow[y, x, 0]), 0)]
    # what the measure must see: 0.2 in red at (0, 1); 0.2 in red and 0.4 in green at (3, 3)
    cur[0, 1, 0] += 51
    cur[3, 3, 0] += 51
    cur[3, 3, 1] += 102
    # what it must not see: large changes where the mask is 0
    cur[:, 0] = 255  # outside the frame
    cur[1, 1] = 0  # occluded
    cur[:, 2, 2] = 0  # on the motion boundary
    return prev, cur, Motion(flow, valid)


def test_motion_boundary_and_mask_of_the_hand_case():
    _, _, m = _hand_case()
    # column 2: forward difference of u to column 3 is -1, |grad|^2 = 1 > 0.01 * |w|^2 + 0.002 = 0.012;
    # elsewhere the flow is constant to the right and below (last column: difference 0)
    expected_boundary = np.zeros((4, 4), bool)
    expected_boundary[:, 2] = True
    assert np.array_equal(motion_boundary(m.backward), expected_boundary)
    # the same flow change from one row to the next: the boundary is row 2
    down = np.ascontiguousarray(m.backward.transpose(1, 0, 2))
    assert np.array_equal(motion_boundary(down), expected_boundary.T)
    # M = forward-backward check and not a boundary: column 1 without (1, 1), and column 3
    expected = np.zeros((4, 4), bool)
    expected[[0, 2, 3], 1] = True
    expected[:, 3] = True
    assert np.array_equal(non_occluded(m), expected)
    # the boundary threshold grows with the flow: a gradient of 0.1 px/px is a boundary
    # at rest (0.01 > 0.002), not where the flow is 1 px (0.01 < 0.01 * 1 + 0.002)
    ramp = np.zeros((1, 3, 2), np.float32)
    ramp[0, :, 0] = [0.0, 0.1, 0.2]
    assert motion_boundary(ramp)[0].tolist() == [True, True, False]
    ramp[0, :, 0] += 1.0
    assert motion_boundary(ramp)[0].tolist() == [False, False, False]


def test_e_warp_of_the_hand_case():
    prev, cur, m = _hand_case()
    # 7 pixels in M; squared RGB distances on [0, 1]: 0.2^2 at (0, 1), 0.2^2 + 0.4^2 at (3, 3), 0 elsewhere
    expected = (0.2**2 + (0.2**2 + 0.4**2)) / 7
    assert pair_e_warp(prev, cur, m) == pytest.approx(expected, rel=1e-5)
    assert pair_e_warp(prev, cur, m, non_occluded(m)) == pytest.approx(expected, rel=1e-5)
    # the L1 figure of the same pair: forward-backward mask only (columns 1-3 without (1, 1): 11 pixels),
    # mean over pixels and channels of |difference| on 0-255; the boundary column counts here
    l1 = (51 + 51 + 102 + 4 * 200) / (11 * 3)
    assert pair_warping_error(prev, cur, m) == pytest.approx(l1, rel=1e-5)
    # no pixel in M: no value
    empty = Motion(m.backward, np.zeros((4, 4), bool))
    assert np.isnan(pair_e_warp(prev, cur, empty))


def test_e_warp_is_squared_and_on_the_unit_scale_with_sub_pixel_warps():
    # half a pixel to the left: warp(prev) is the mean of two neighbours (bilinear, in float)
    prev = np.zeros((3, 4, 3), np.uint8)
    prev[:, ::2] = 100  # columns 0 and 2 bright
    flow = np.zeros((3, 4, 2), np.float32)
    flow[..., 0] = -0.5
    valid = np.zeros((3, 4), bool)
    valid[:, 1:3] = True  # columns 1 and 2 only
    cur = np.full((3, 4, 3), 50, np.uint8)
    m = Motion(flow, valid)
    assert not motion_boundary(flow).any()
    # warp(prev) is 50 in columns 1-3 exactly: no error
    assert pair_e_warp(prev, cur, m) == pytest.approx(0.0, abs=1e-12)
    cur[:, 1] = 80  # 30 levels off in each channel of column 1: 3 * (30/255)^2 there, half the masked pixels
    assert pair_e_warp(prev, cur, m) == pytest.approx(0.5 * 3 * (30 / 255) ** 2, rel=1e-5)


def _texture(seed: int, tint, h: int = 48, w: int = 64) -> np.ndarray:
    small = np.random.default_rng(seed).integers(40, 180, (h // 6, w // 6), dtype=np.uint8)
    tex = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    return np.clip(tex[..., None] + np.array(tint, np.int16), 0, 255).astype(np.uint8)


def _shot(seed: int, tint, frames: int) -> list[np.ndarray]:
    base = _texture(seed, tint)
    return [np.roll(base, 2 * t, axis=1) for t in range(frames)]


def test_e_warp_of_added_noise_is_twice_its_variance_per_channel():
    src = _shot(0, (30, 20, 0), 8)
    mapped = [np.ascontiguousarray(255 - f[..., ::-1]) for f in src]  # follows the motion exactly
    sigma = 6.0
    rng = np.random.default_rng(1)
    noisy = [np.clip(f + rng.normal(0, sigma, f.shape), 0, 255).astype(np.uint8) for f in mapped]
    good = score_frames(mapped, src)["e_warp"]
    bad = score_frames(noisy, src)["e_warp"]
    assert good["pairs"] == bad["pairs"] == 7 and good["cuts"] == 0
    assert good["output"] == pytest.approx(good["source"], rel=0.15)
    # independent noise in both frames of a pair: 2 sigma^2 per channel, three channels, on [0, 1]
    added = 3 * 2 * (sigma / 255) ** 2
    assert bad["output"] - good["output"] == pytest.approx(added, rel=0.2)
    assert bad["ratio"] > 2 * good["ratio"]


def _two_shots():
    """Shot A (5 frames) then shot B (5 frames) of another texture and tint: one scene cut."""
    sources = _shot(0, (60, 30, 0), 5) + _shot(7, (0, 30, 60), 5)
    truth = [np.ascontiguousarray(255 - s) for s in sources]
    # the output is the truth in shot A and the truth 40 levels darker in shot B: steady
    # within each shot, a jump of 40 the truth does not make only across the cut
    outputs = truth[:5] + [np.clip(t.astype(np.int16) - 40, 0, 255).astype(np.uint8) for t in truth[5:]]
    return outputs, sources, truth


def test_no_pair_score_across_a_scene_cut():
    outputs, sources, truth = _two_shots()
    s = score_frames(outputs, sources, truth=truth, per_frame=True)
    t, pf = s["truth"], s["per_frame"]
    assert t["cuts"] == s["warping_error"]["cuts"] == s["e_warp"]["cuts"] == 1
    assert t["pairs"] == 8 and s["warping_error"]["pairs"] == s["e_warp"]["pairs"] == 8
    # the pair (4, 5) spans the cut: no flicker, no flicker reference, no warping error there
    for key in ("flicker", "flicker_still", "flicker_source", "warp_output", "e_warp_output"):
        assert pf[key][5] is None and pf[key][4] is not None and pf[key][6] is not None, key
    assert t["flicker"] == pytest.approx(0.0, abs=0.5)  # steady within both shots
    # with the cut check off, the jump counts: one pair in nine of about 40
    off = score_frames(outputs, sources, truth=truth, cut_threshold=1.0)["truth"]
    assert off["cuts"] == 0 and off["pairs"] == 9 and off["flicker"] > 3
    # without a source, the cut is found on the truth
    no_src = score_frames(outputs, truth=truth)["truth"]
    assert no_src["cuts"] == 1 and no_src["pairs"] == 8 and no_src["flicker"] == pytest.approx(t["flicker"])


def test_scorer_counts_frames_pairs_cuts_gaps_and_unreliable_pairs(monkeypatch):
    outputs, sources, truth = _two_shots()
    real_motion = score_mod.motion
    calls = []

    def motion(prev, cur, estimator=None):
        m = real_motion(prev, cur, estimator)
        calls.append(len(calls))
        if len(calls) == 5:  # the pair (5, 6): no pixel passes the forward-backward check
            return Motion(m.backward, np.zeros_like(m.valid))
        return m

    monkeypatch.setattr(score_mod, "motion", motion)
    scorer = FrameScorer(per_frame=True)
    for i in range(10):
        scorer.add(outputs[i], sources[i], truth[i], time=i / 25, contiguous=i != 8)  # frame 7 -> 8 is a gap
    s = scorer.summary()
    # pairs: (0,1) (1,2) (2,3) (3,4) | cut (4,5) | (5,6) unreliable, (6,7) | gap (7,8) | (8,9)
    assert (s["frames"], s["gaps"]) == (10, 1)
    assert len(calls) == 7  # the flow is measured on every pair but the cut and the gap
    for key in ("warping_error", "e_warp"):
        w = s[key]
        assert (w["pairs"], w["cuts"], w["unreliable"]) == (6, 1, 1), key
    t = s["truth"]
    assert (t["frames"], t["pairs"], t["cuts"]) == (10, 7, 1)  # flicker needs no flow
    pf = s["per_frame"]
    assert all(len(v) == 10 for v in pf.values()) and pf["time"][3] == pytest.approx(3 / 25)
    assert [i for i, v in enumerate(pf["flicker"]) if v is None] == [0, 5, 8]
    assert [i for i, v in enumerate(pf["warp_output"]) if v is None] == [0, 5, 6, 8]  # NaN -> null at 6
