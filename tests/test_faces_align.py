"""Template, similarity estimation and crop matrices (retarget.faces.align)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from retarget.faces.align import (
    STABLE_POINTS,
    TEMPLATE_68,
    apply,
    crop_matrix,
    estimate_similarity,
    eye_centres,
    five_points,
    invert,
    matrix_to_params,
    params_to_matrix,
    template_points,
    warp_crop,
)


def similarity(scale: float, angle: float, tx: float, ty: float) -> np.ndarray:
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    return np.array([[c, -s, tx], [s, c, ty]])


def test_template_is_a_symmetric_face_in_the_unit_square():
    t = TEMPLATE_68
    assert t.shape == (68, 2)
    assert t[:, 1].min() == pytest.approx(0.0) and t[:, 1].max() == pytest.approx(1.0)
    assert (t[:, 0] > 0).all() and (t[:, 0] < 1).all()
    left, right = eye_centres(t)
    assert left[0] < 0.5 < right[0] and left[1] == pytest.approx(right[1])
    # Mirror symmetry: jaw point k mirrors 16 - k, the nose tip is on the axis.
    assert np.allclose(t[0:17, 0] + t[16::-1, 0], 1.0) and np.allclose(t[0:17, 1], t[16::-1, 1])
    assert t[30, 0] == pytest.approx(0.5)
    # Top to bottom: brows, eyes, nose tip, mouth, chin.
    assert t[17:27, 1].mean() < left[1] < t[30, 1] < t[48, 1] < t[8, 1]


def test_estimate_similarity_recovers_a_known_transform():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 200, (20, 2))
    for scale, angle, tx, ty in [(1.0, 0.0, 0.0, 0.0), (2.7, 0.4, -30.0, 12.5), (0.31, -2.9, 400.0, -7.0)]:
        m = similarity(scale, angle, tx, ty)
        est = estimate_similarity(src, apply(m, src))
        assert np.allclose(est, m, atol=1e-9)


def test_estimate_similarity_is_least_squares_under_noise_and_ignores_zero_weights():
    rng = np.random.default_rng(2)
    src = rng.uniform(0, 100, (68, 2))
    m = similarity(1.7, 0.25, 10.0, -4.0)
    dst = apply(m, src) + rng.normal(0, 0.5, (68, 2))
    est = estimate_similarity(src, dst)
    assert np.abs(est - m).max() < 0.2
    # An outlier with zero weight has no influence.
    dst2 = apply(m, src)
    dst2[0] += 500
    w = np.ones(68)
    w[0] = 0
    assert np.allclose(estimate_similarity(src, dst2, w), m, atol=1e-9)
    assert not np.allclose(estimate_similarity(src, dst2), m, atol=1e-3)


def test_crop_matrix_maps_a_transformed_template_onto_the_template():
    size, margin = 128, 0.3
    src_to_face = similarity(0.02, -0.3, 0.1, -0.2)  # image pixels -> face units
    landmarks = apply(invert(src_to_face), TEMPLATE_68)  # the template seen in an image
    m = crop_matrix(landmarks, size, margin)
    assert np.allclose(apply(m, landmarks), template_points(size, margin), atol=1e-6)
    # Pure similarity: equal scale on both axes, no shear.
    a = m[:, :2]
    assert np.allclose(a.T @ a, np.eye(2) * (a.T @ a)[0, 0], atol=1e-9)


def test_crop_matrix_ignores_the_jaw():
    landmarks = TEMPLATE_68 * 100 + 50
    moved = landmarks.copy()
    moved[0:17] += [[5.0, 9.0]]  # a different jaw line changes nothing
    assert np.allclose(crop_matrix(landmarks, 64, 0.4), crop_matrix(moved, 64, 0.4))
    assert not set(range(17)) & set(STABLE_POINTS.tolist())


def test_margin_shrinks_the_face_in_the_crop():
    pts0 = template_points(256, 0.0)
    pts1 = template_points(256, 0.5)
    assert pts0[:, 1].min() == pytest.approx(0) and pts0[:, 1].max() == pytest.approx(256)
    assert np.ptp(pts1[:, 1]) == pytest.approx(128)
    assert pts1[:, 1].min() == pytest.approx(64)


def test_inverse_maps_the_crop_back_into_the_image():
    rng = np.random.default_rng(3)
    # A smooth image so bilinear resampling twice stays close to the original.
    yy, xx = np.mgrid[0:240, 0:320].astype(np.float64)
    img = np.stack([128 + 100 * np.sin(xx / 17), 128 + 100 * np.cos(yy / 23), (xx + yy) / 560 * 255], -1)
    img = img.clip(0, 255).astype(np.uint8)
    face = apply(invert(similarity(1 / 90, 0.2, -1.2, -0.9)), TEMPLATE_68)
    m = crop_matrix(face + rng.normal(0, 0.3, face.shape), 200, 0.4)
    crop = warp_crop(img, m, 200)
    assert crop.shape == (200, 200, 3) and crop.dtype == np.uint8
    # Point round trip.
    pts = rng.uniform(0, 300, (10, 2))
    assert np.allclose(apply(invert(m), apply(m, pts)), pts)
    # Image round trip: warp the crop back with the inverse and compare inside the face.
    import cv2

    back = cv2.warpAffine(crop, invert(m), (320, 240), flags=cv2.INTER_LINEAR)
    inside = cv2.fillConvexPoly(np.zeros((240, 320), np.uint8), cv2.convexHull(face.astype(np.int32)), 1) > 0
    diff = np.abs(back.astype(int) - img.astype(int))[inside]
    assert diff.mean() < 2.0
    # The crop itself shows what the matrix says: a source pixel lands where m maps it.
    x, y = 160, 120
    cx, cy = apply(m, [x, y])
    assert np.abs(crop[int(round(cy)), int(round(cx))].astype(int) - img[y, x].astype(int)).max() < 12


def test_params_round_trip_and_meaning():
    size = 256
    for scale, angle in [(1.0, 0.0), (3.3, 3.0), (0.5, -1.2)]:
        m = similarity(scale, angle, 17.0, -40.0)
        p = matrix_to_params(m, size)
        assert p[2] == pytest.approx(math.log(scale)) and p[3] == pytest.approx(angle)
        # The centre parameter is the source point that lands on the crop centre.
        assert np.allclose(apply(m, p[:2]), [size / 2, size / 2])
        assert np.allclose(params_to_matrix(p, size), m)


def test_five_points():
    lm = TEMPLATE_68 * 10
    fp = five_points(lm)
    assert fp.shape == (5, 2)
    assert np.allclose(fp[:2], eye_centres(lm)) and np.allclose(fp[2:], lm[[30, 48, 54]])
