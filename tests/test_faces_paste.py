"""Pasting a translated face back into its frame (retarget.faces.paste)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from retarget.faces.align import TEMPLATE_68, apply, crop_matrix, warp_crop
from retarget.faces.paste import face_mask, face_outline, match_color_lab, paste_back

SIZE = 128


def scene(h: int = 180, w: int = 240, seed: int = 0):
    """A textured frame, face landmarks in it, and the crop matrix."""
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    frame = cv2.GaussianBlur(frame, (0, 0), 2)
    ang = 0.3
    rot = np.array([[math.cos(ang), math.sin(ang)], [-math.sin(ang), math.cos(ang)]])
    landmarks = ((TEMPLATE_68 - 0.5) * 70) @ rot + [w * 0.45, h * 0.55]
    return frame, landmarks.astype(np.float32), crop_matrix(landmarks, SIZE, 0.4)


def frame_mask(landmarks: np.ndarray, shape) -> np.ndarray:
    """The outline's convex hull in frame pixels (bool)."""
    hull = cv2.convexHull(face_outline(landmarks)).reshape(-1, 2)
    out = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(out, np.round(hull * 16).astype(np.int32), 1, shift=4)
    return out > 0


@pytest.mark.parametrize("mask", ["hull", "ellipse"])
@pytest.mark.parametrize("color_match", ["lab", "none"])
def test_only_pixels_inside_the_mask_change(mask, color_match):
    frame, lm, m = scene()
    translated = np.full((SIZE, SIZE, 3), (20, 200, 90), np.uint8)  # very different from the frame
    translated[::7] = (250, 10, 10)
    out = paste_back(frame, translated, m, lm, mask=mask, feather=0.08, color_match=color_match)
    assert out.shape == frame.shape and out.dtype == np.uint8
    changed = (out != frame).any(-1)
    region = frame_mask(lm, frame.shape)
    if mask == "ellipse":  # the fitted ellipse can reach a little beyond the hull
        region = cv2.dilate(region.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
    # Outside the face (plus one pixel of resampling) every pixel is bit-identical.
    grown = cv2.dilate(region.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert not changed[~grown].any()
    # Deep inside, the face was replaced.
    core = cv2.erode(frame_mask(lm, frame.shape).astype(np.uint8), np.ones((25, 25), np.uint8)) > 0
    assert core.sum() > 200
    assert changed[core].mean() > 0.95


def test_without_colour_match_the_core_is_the_translated_crop():
    frame, lm, m = scene(seed=1)
    translated = np.zeros((SIZE, SIZE, 3), np.uint8)
    translated[..., 1] = 180
    out = paste_back(frame, translated, m, lm, feather=0.05, color_match="none")
    core = cv2.erode(frame_mask(lm, frame.shape).astype(np.uint8), np.ones((31, 31), np.uint8)) > 0
    assert np.abs(out[core].astype(int) - [0, 180, 0]).max() <= 1


def test_lab_colour_match_moves_the_face_towards_the_original_colours():
    frame, lm, m = scene(seed=2)
    frame[...] = (frame * 0.3 + np.array([150, 110, 90]) * 0.7).astype(np.uint8)  # skin-ish frame
    translated = warp_crop(frame, m, SIZE).astype(np.int16)
    translated = np.clip(translated * 0.6 + [0, 60, 120], 0, 255).astype(np.uint8)  # a blue cast
    region = face_mask(apply(m, lm), SIZE) > 0.5
    original = warp_crop(frame, m, SIZE)
    fixed = match_color_lab(translated, original, region)
    before = np.abs(translated[region].mean(0) - original[region].mean(0)).max()
    after = np.abs(fixed[region].mean(0) - original[region].mean(0)).max()
    assert before > 30 and after < 5


def test_colour_match_with_an_empty_region_is_a_no_op():
    a = np.full((8, 8, 3), 7, np.uint8)
    assert np.array_equal(match_color_lab(a, a * 3, np.zeros((8, 8), bool)), a)


def test_mask_is_zero_outside_one_inside_and_feathered_between():
    _, lm, m = scene()
    pts = apply(m, lm)
    for kind in ("hull", "ellipse"):
        a = face_mask(pts, SIZE, mask=kind, feather=0.1)
        assert a.dtype == np.float32 and a.min() == 0.0 and a.max() == pytest.approx(1.0)
        centre = np.round(pts[27:36].mean(0)).astype(int)
        assert a[centre[1], centre[0]] == pytest.approx(1.0)
        assert a[0, 0] == 0 and a[-1, -1] == 0
        soft = (a > 0) & (a < 1)
        assert soft.sum() > 0.05 * (a > 0).sum()  # a real ramp, not a hard edge
    hard = face_mask(pts, SIZE, feather=0.0)
    assert set(np.unique(hard)) <= {0.0, 1.0}
    # A wider feather only makes the mask smaller, never bigger.
    assert (face_mask(pts, SIZE, feather=0.2) <= face_mask(pts, SIZE, feather=0.05) + 1e-6).all()


def test_forehead_is_included():
    _, lm, m = scene()
    pts = apply(m, lm)
    a = face_mask(pts, SIZE, feather=0.0)
    brow_top = pts[17:27, 1].min()
    above = np.round([pts[27, 0], brow_top - 8]).astype(int)
    assert a[above[1], above[0]] == 1.0


def test_crop_at_another_size_is_pasted_to_the_same_place():
    frame, lm, m = scene(seed=3)
    big = np.full((SIZE, SIZE, 3), 200, np.uint8)
    small = np.full((SIZE // 2, SIZE // 2, 3), 200, np.uint8)
    out_big = paste_back(frame, big, m, lm, color_match="none")
    out_small = paste_back(frame, small, m, lm, color_match="none", crop_size=SIZE)
    changed_big = (out_big != frame).any(-1)
    changed_small = (out_small != frame).any(-1)
    overlap = (changed_big & changed_small).sum() / max(changed_big.sum(), 1)
    assert overlap > 0.95


def test_face_outside_the_frame_or_mask_outside_the_crop():
    frame, lm, m = scene()
    # Landmarks far away from where the crop looks: the mask is empty, nothing changes.
    out = paste_back(frame, np.zeros((SIZE, SIZE, 3), np.uint8), m, lm + 1000, color_match="lab")
    assert np.array_equal(out, frame)
    # A face partly outside the frame still pastes without error, only inside the frame.
    shifted = lm - [90, 0]
    m2 = crop_matrix(shifted, SIZE, 0.4)
    out2 = paste_back(frame, np.zeros((SIZE, SIZE, 3), np.uint8), m2, shifted)
    changed = (out2 != frame).any(-1)
    assert changed[:, 0].any()  # the face runs off the left edge
    assert not changed[:, frame.shape[1] // 2 :].any()


def test_bad_shapes_are_rejected():
    frame, lm, m = scene()
    with pytest.raises(ValueError):
        paste_back(frame, np.zeros((10, 12, 3), np.uint8), m, lm)
    with pytest.raises(ValueError):
        paste_back(frame, np.zeros((SIZE, SIZE, 3), np.uint8), m, lm, color_match="rgb")  # type: ignore[arg-type]


def test_forehead_sets_how_far_the_mask_reaches_above_the_brows():
    from retarget.faces.align import template_points
    from retarget.faces.paste import FOREHEAD, face_mask

    lm = template_points(64, 0.3)
    full, low = face_mask(lm, 64, feather=0.0), face_mask(lm, 64, feather=0.0, forehead=0.0)
    rows = lambda m: np.nonzero(m.any(axis=1))[0]  # noqa: E731
    assert low.sum() < full.sum() and (low <= full).all()
    assert rows(low)[0] >= np.floor(lm[17:27, 1].min()) - 1  # stops at the brows
    up = np.linalg.norm(lm[36:48].mean(0) - lm[8])
    assert rows(full)[0] == pytest.approx(lm[17:27, 1].min() - FOREHEAD * up, abs=1.5)


def test_a_grow_past_the_crop_fills_or_empties_it_without_a_giant_kernel():
    """--mask-dilate / --mask-erode of any size: a grow past the crop's diagonal is the whole crop or
    nothing (a kernel that size would need gigabytes), and it agrees with the kernel just below it."""
    _, lm, m = scene()
    pts = apply(m, lm)
    inside = 1.0 - face_mask(pts, SIZE, feather=0.0, grow=-(10**9))
    full = face_mask(pts, SIZE, feather=0.0, grow=10**9)
    assert inside.min() == 1.0  # eroded away
    assert full[1:-1, 1:-1].min() == 1.0 and full[0].max() == 0.0  # everything but the crop's border
    near = math.ceil(SIZE * math.sqrt(2)) - 1
    np.testing.assert_array_equal(face_mask(pts, SIZE, feather=0.0, grow=near), full)
    assert face_mask(pts, SIZE, feather=0.0, grow=-near).max() == 0.0
