"""A swapped face's fine detail matched to the input face's: the gain is recovered, steady, bounded, per track."""

from __future__ import annotations

import types

import cv2
import numpy as np
import pytest

from retarget.faces.align import template_points
from retarget.faces.detail import MAX_GAIN, MIN_GAIN, DetailMatch, needed_gain, sharpen, skin_detail, skin_region
from retarget.render.swap import FaceDetail

SIZE = 128
MARGIN = 0.2


def _points() -> np.ndarray:
    return template_points(SIZE, MARGIN)


def _skin(seed: int = 0, blur: float = 1.2) -> np.ndarray:
    """A skin-coloured crop with fine texture (noise blurred by ``blur``): ``SIZE x SIZE x 3`` uint8."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.normal(0, 60, (SIZE, SIZE)).astype(np.float32), (0, 0), blur)
    base = np.float32([190, 150, 130])[None, None, :] + noise[..., None]
    return np.clip(base, 0, 255).astype(np.uint8)


def test_the_skin_region_leaves_out_eyes_brows_and_mouth():
    p = _points()
    region = skin_region(p, (SIZE, SIZE))
    assert region.sum() > 0.05 * SIZE * SIZE  # cheeks, nose, chin
    for k in [*range(17, 27), *range(36, 48), *range(48, 68)]:  # brows, eyes, lips
        x, y = np.round(p[k]).astype(int)
        assert not region[y, x], k
    for where in (p[33], (p[4] + p[48]) / 2, (p[12] + p[54]) / 2):  # below the nose, the cheeks
        x, y = np.round(where).astype(int)
        assert region[y, x], where


@pytest.mark.parametrize("gain", [0.6, 1.0, 1.8, 2.5])
def test_a_known_sharpening_is_recovered(gain):
    face = _skin(1)
    reference = sharpen(face, gain)  # the input's face: the same skin at another sharpness
    found = needed_gain(face, reference, skin_region(_points(), (SIZE, SIZE)))
    assert found == pytest.approx(gain, rel=0.08)


def test_sharpen_raises_or_lowers_detail_and_leaves_gain_one_alone():
    face, region = _skin(2), skin_region(_points(), (SIZE, SIZE))
    assert sharpen(face, 1.0) is face
    assert skin_detail(sharpen(face, 2.0), region) > 2.5 * skin_detail(face, region)
    assert skin_detail(sharpen(face, 0.5), region) < 0.6 * skin_detail(face, region)
    assert abs(float(sharpen(face, 2.0).mean()) - float(face.mean())) < 1.0  # the light stays


def test_the_running_gain_is_steady_bounded_and_restarts():
    p = _points()
    soft = _skin(3, blur=2.0)
    sharp = _skin(3, blur=0.6)  # far more detail than any allowed gain gives the soft face
    match = DetailMatch(memory=0.2)
    match(soft, sharp, p)
    assert match.gain == pytest.approx(MAX_GAIN)
    match(soft, soft, p)  # one frame asking for gain 1 moves the running gain only a little
    assert MAX_GAIN * 0.8 < match.gain < MAX_GAIN
    match.reset()
    out = match(sharp, soft, p)  # a new track sharper than its input: never softened (MIN_GAIN 1)
    assert MIN_GAIN == 1.0 and match.gain == pytest.approx(1.0)
    assert out is sharp


def test_a_face_without_measurable_skin_is_passed_through():
    match = DetailMatch()
    flat = np.full((SIZE, SIZE, 3), 128, np.uint8)
    face = _skin(4)
    assert match(face, flat, _points()) is face  # the input shows no detail: nothing to match
    assert match.gain is None


def test_the_render_step_keeps_a_gain_per_lane_and_restarts_at_a_new_track():
    p = _points()
    matrix = np.float64([[1, 0, 0], [0, 1, 0]])
    soft, sharp = _skin(5, blur=1.6), _skin(5, blur=0.8)

    def face(lane: int, track: int, result: np.ndarray, source: np.ndarray):
        return types.SimpleNamespace(
            lane=lane, track=track, result=result, net_input=source, matrix=matrix, landmarks=p
        )

    step = FaceDetail()
    a = face(0, 1, soft, sharp)
    step(a)
    b = face(1, 7, sharp, soft)  # another face in the same frame: its own gain
    step(b)
    gains = {lane: m.gain for lane, m in step.matches.made().items()}
    assert gains[0] > 1.2 and gains[1] == pytest.approx(1.0)
    region = skin_region(p, (SIZE, SIZE))
    assert skin_detail(a.result, region) > skin_detail(soft, region)
    step(face(0, 2, sharp, soft))  # lane 0's face is a new track: its gain starts afresh
    assert step.matches[0].gain == pytest.approx(1.0)


def test_the_render_says_when_the_targets_faces_stay_softer_than_the_input():
    p = _points()
    matrix = np.float64([[1, 0, 0], [0, 1, 0]])
    soft, sharp = _skin(6, blur=2.5), _skin(6, blur=0.6)  # far more detail in the input than 2x gives
    step = FaceDetail()
    assert step.hint("data/bob") == []  # no face seen
    for k in range(4):
        step(types.SimpleNamespace(lane=0, track=1, result=soft, net_input=sharp, matrix=matrix, landmarks=p))
    (line,) = step.hint("data/bob")
    assert line.startswith("note: 100% of the swapped faces stayed softer") and "data/bob" in line
    same = FaceDetail()
    same(types.SimpleNamespace(lane=0, track=1, result=sharp, net_input=sharp, matrix=matrix, landmarks=p))
    assert same.hint("data/bob") == []  # as sharp as the input: nothing to say
