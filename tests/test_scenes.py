"""Scene-cut detection from HSV histograms."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import synth_frame
from retarget.dataset.scenes import SceneDetector, find_cuts, histogram_distance, hsv_histogram

SIZE = (96, 64)


def _shots(cuts, frames=30):
    scene = 0
    out = []
    for i in range(frames):
        if i in cuts:
            scene += 1
        out.append(synth_frame(i, SIZE, scene, frames))
    return out


def test_cuts_are_found_where_the_scene_changes():
    assert find_cuts(_shots((10, 21))) == [10, 21]


def test_motion_inside_a_shot_is_not_a_cut():
    assert find_cuts(_shots(())) == []


def test_distance_is_zero_for_identical_and_large_for_different():
    a, b = synth_frame(0, SIZE, 0), synth_frame(0, SIZE, 2)
    assert histogram_distance(hsv_histogram(a), hsv_histogram(a)) == pytest.approx(0.0, abs=1e-6)
    assert histogram_distance(hsv_histogram(a), hsv_histogram(b)) > 0.6


def test_same_colours_rearranged_is_a_cut():
    # Identical global histograms, different layout: the grid still sees the cut.
    img = np.zeros((64, 96, 3), np.uint8)
    img[:, :48] = (200, 30, 30)
    img[:, 48:] = (30, 30, 200)
    assert find_cuts([img, img.copy(), img[:, ::-1].copy()]) == [2]


def test_threshold_and_reset():
    frames = _shots((5,), frames=10)
    never = SceneDetector(threshold=1.0)
    assert not any(never(f) for f in frames)
    detector = SceneDetector(0.5)
    assert [detector(f) for f in frames].index(True) == 5
    detector.reset()
    assert detector(frames[0]) is False  # nothing to compare with after a reset


@pytest.mark.shared
def test_real_cuts_in_bikes(shared_video):
    from retarget.video.reader import VideoReader

    images = [f.image for f in VideoReader(shared_video("bikes.mp4"), max_frames=200)]
    assert find_cuts(images) == [30, 76, 137, 187]
