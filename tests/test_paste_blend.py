"""Blend controls of the face paste-back: --blend, --color-match hist, --mask-erode / --mask-dilate."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from test_faces_paste import SIZE, frame_mask, scene

from retarget.faces.align import crop_matrix
from retarget.faces.paste import match_color_hist, paste_back


def _translated(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    crop = np.full((SIZE, SIZE, 3), (20, 200, 90), np.uint8)
    crop[::7] = (250, 10, 10)
    return np.clip(crop + rng.integers(-20, 20, crop.shape), 0, 255).astype(np.uint8)


def _grown(mask: np.ndarray, px: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


@pytest.mark.parametrize("blend", ["alpha", "seamless"])
@pytest.mark.parametrize("color_match", ["lab", "hist", "none"])
@pytest.mark.parametrize("dilate", [0, 6])
def test_pixels_outside_the_dilated_mask_are_unchanged(blend, color_match, dilate):
    frame, lm, m = scene()
    out = paste_back(frame, _translated(), m, lm, blend=blend, color_match=color_match, dilate=dilate)
    assert out.shape == frame.shape and out.dtype == np.uint8
    changed = (out != frame).any(-1)
    # the hull grown by the dilation, + 2 px for rounding at the crop's scale and resampling
    assert not changed[~_grown(frame_mask(lm, frame.shape), dilate + 2)].any()
    core = cv2.erode(frame_mask(lm, frame.shape).astype(np.uint8), np.ones((25, 25), np.uint8)) > 0
    assert changed[core].mean() > 0.9  # the face itself was replaced
    if dilate:  # and the dilation reaches beyond the hull
        plain = (paste_back(frame, _translated(), m, lm, blend=blend, color_match=color_match) != frame).any(-1)
        assert changed.sum() > plain.sum() * 1.1 and (changed & ~_grown(frame_mask(lm, frame.shape), 1)).any()


def test_erode_shrinks_the_changed_area():
    frame, lm, m = scene(seed=1)
    areas = [(paste_back(frame, _translated(), m, lm, erode=px) != frame).any(-1) for px in (0, 4, 10)]
    assert areas[0].sum() > areas[1].sum() > areas[2].sum() > 0
    assert not (areas[2] & ~areas[0]).any()  # eroded: inside the plain mask
    # 10 frame pixels of erosion leave a band of the hull's edge untouched (7 px of it: rounding, resampling)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15))
    band = frame_mask(lm, frame.shape) & ~(cv2.erode(frame_mask(lm, frame.shape).astype(np.uint8), disc) > 0)
    assert not areas[2][band].any()


def test_erode_and_dilate_together_are_refused():
    frame, lm, m = scene()
    with pytest.raises(ValueError, match="exclude each other"):
        paste_back(frame, _translated(), m, lm, erode=2, dilate=2)
    with pytest.raises(ValueError, match="blend"):
        paste_back(frame, _translated(), m, lm, blend="poisson")  # type: ignore[arg-type]


@pytest.mark.parametrize("dx", [-90, 0, 95])
def test_seamless_runs_on_a_face_at_the_frame_border(dx):
    frame, lm, m = scene(seed=2)
    shifted = (lm + [dx, 0]).astype(np.float32)  # half outside on the left, inside, half outside on the right
    m2 = crop_matrix(shifted, SIZE, 0.4)
    out = paste_back(frame, _translated(), m2, shifted, blend="seamless", dilate=3)
    changed = (out != frame).any(-1)
    assert changed.any()
    if dx < 0:
        assert changed[:, 0].any() and not changed[:, frame.shape[1] // 2 :].any()
    if dx > 0:
        assert changed[:, -1].any() and not changed[:, : frame.shape[1] // 2].any()


def test_seamless_takes_the_frame_colours_at_the_edge_of_the_face():
    frame, lm, m = scene(seed=4)
    flat = np.full((SIZE, SIZE, 3), 250, np.uint8)  # a face far brighter than the frame
    alpha = paste_back(frame, flat, m, lm, color_match="none", feather=0.0)
    seamless = paste_back(frame, flat, m, lm, color_match="none", feather=0.0, blend="seamless")
    hull = frame_mask(lm, frame.shape)
    rim = hull & ~(cv2.erode(hull.astype(np.uint8), np.ones((5, 5))) > 0)  # the face's outer 2 px
    jump = [np.abs(img[rim].astype(int) - frame[rim].astype(int)).mean() for img in (alpha, seamless)]
    assert jump[1] < jump[0] / 3  # Poisson: no step at the border


def test_hist_matching_maps_a_known_histogram():
    region = np.zeros((20, 20), bool)
    region[:10] = True  # 200 pixels
    source = np.zeros((20, 20, 3), np.uint8)
    levels = np.repeat(np.arange(100), 2).reshape(10, 20)  # 0..99, twice each
    source[:10] = levels[..., None]
    source[10:] = 50  # outside the region: mapped with the same table
    reference = np.zeros_like(source)
    reference[:10, :, 0] = levels + 100  # the same shape shifted by 100
    reference[:10, :, 1] = levels * 2  # stretched to 0..198
    reference[:10, :, 2] = 255 - levels  # reversed order, same set of levels 156..255
    out = match_color_hist(source, reference, region)
    assert np.array_equal(out[:10, :, 0], levels + 100)
    assert np.array_equal(out[:10, :, 1], levels * 2)
    assert np.array_equal(out[:10, :, 2], levels + 156)
    assert out[15, 5].tolist() == [150, 100, 206]
    # the matched histogram inside the region is the reference's
    for c in range(3):
        assert np.array_equal(
            np.bincount(out[..., c][region], minlength=256), np.bincount(reference[..., c][region], minlength=256)
        )
    assert np.array_equal(match_color_hist(source, reference, np.zeros_like(region)), source)  # empty: no-op
