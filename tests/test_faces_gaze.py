"""Gaze that follows the source in a swap: the iris found, moved inside the lids, and followed per track."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from retarget.faces.align import template_points
from retarget.faces.gaze import EYES, MIN_FRAMES, GazeFollow, iris_offset, move_iris, target_gaze

SIZE = 256
MARGIN = 0.2


def _points(eyes: float = 1.6) -> np.ndarray:
    """Template landmarks (crop px) with each eye's height scaled by ``eyes`` (1.6: wide open)."""
    p = template_points(SIZE, MARGIN).copy()
    for eye in EYES:
        centre = p[eye, 1].mean()
        p[eye, 1] = centre + (p[eye, 1] - centre) * eyes
    return p


def _width(p: np.ndarray, eye: np.ndarray) -> float:
    return float(np.hypot(*(p[eye[3]] - p[eye[0]])))


def _face(points: np.ndarray, look: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Skin, white eyes (the lids' polygons) and a dark iris per eye, ``look`` eye widths off its centre."""
    img = np.full((SIZE, SIZE, 3), (190, 150, 130), np.uint8)
    for eye in EYES:
        inside = np.zeros((SIZE, SIZE), np.uint8)
        cv2.fillPoly(inside, [np.round(points[eye]).astype(np.int32)], 1)
        w = _width(points, eye)
        centre = points[eye].mean(0) + np.array(look) * w
        iris = np.zeros_like(inside)
        cv2.circle(iris, tuple(int(v) for v in np.round(centre)), int(round(0.18 * w)), 1, -1)
        img[inside.astype(bool)] = (235, 235, 230)
        img[(inside & iris).astype(bool)] = (60, 40, 30)
    return img


def _outside_eyes(points: np.ndarray) -> np.ndarray:
    mask = np.ones((SIZE, SIZE), np.uint8)
    for eye in EYES:
        cv2.fillPoly(mask, [np.round(points[eye]).astype(np.int32)], 0)
    return cv2.erode(mask, np.ones((5, 5), np.uint8)).astype(bool)


@pytest.mark.parametrize("look", [(0.0, 0.0), (0.12, 0.0), (-0.12, 0.0)])
def test_the_iris_offset_is_found(look):
    p = _points()
    offset = iris_offset(_face(p, look), p)
    assert offset is not None
    assert offset[:, 0] == pytest.approx([look[0]] * 2, abs=0.04)
    assert np.abs(offset[:, 1]).max() < 0.04


def test_a_closed_or_empty_eye_measures_nothing():
    shut = _points(eyes=0.2)
    assert iris_offset(_face(shut), shut) is None
    p = _points()
    assert iris_offset(np.full((SIZE, SIZE, 3), 200, np.uint8), p) is None  # no iris stands out


def test_moving_the_iris_carries_it_and_leaves_the_lids():
    p = _points()
    face = _face(p)
    w = _width(p, EYES[0])
    moved = move_iris(face, p, np.array([[0.1 * w, 0.0], [-0.1 * w, 0.0]]))
    offset = iris_offset(moved, p)
    assert offset[0, 0] > 0.06 and offset[1, 0] < -0.06  # each eye its own way
    keep = _outside_eyes(p)
    np.testing.assert_array_equal(moved[keep], face[keep])  # skin and lids untouched
    assert move_iris(face, p, np.zeros((2, 2))) is face


def test_the_swap_looks_where_the_source_looks():
    p = _points()
    target = target_gaze([_face(p)] * 3, [p] * 3)
    assert np.abs(target).max() < 0.03
    follow = GazeFollow(target)
    shown = _face(p)  # the target's picked frame looks ahead throughout
    for _ in range(MIN_FRAMES + 2):  # the source looks ahead for a while: nothing moves
        out = follow(shown, p, _face(p), p)
    assert np.abs(iris_offset(out, p)[:, 0]).max() < 0.03
    for _ in range(4):  # then to the image's left: the swap's irises follow
        out = follow(shown, p, _face(p, (-0.15, 0.0)), p)
    assert iris_offset(out, p)[:, 0].max() < -0.06
    shut = _points(eyes=0.2)
    assert follow(shown, p, _face(shut), shut) is shown  # a blink: the shown eye stays


def test_a_new_track_does_not_move_until_its_own_gaze_is_known():
    p = _points()
    follow = GazeFollow(np.zeros((2, 2)))
    shown = _face(p)
    for _ in range(MIN_FRAMES + 1):
        follow(shown, p, _face(p, (0.12, 0.0)), p)
    follow.reset()
    assert follow(shown, p, _face(p, (-0.12, 0.0)), p) is shown


def test_the_swap_stage_moves_each_faces_irises_where_its_input_looks():
    from types import SimpleNamespace

    from retarget.render.source import Item, Lanes
    from retarget.render.swap import swap_items

    p = _points()
    shown = _face(p)

    class StubSwap:  # the target's face looks ahead, shaped as the input's
        track = None

        def reset(self):
            pass

        def __call__(self, points):
            return SimpleNamespace(image=shown.copy(), points=points)

    matrix = np.float32([[1, 0, 0], [0, 1, 0]])  # crop px = frame px

    def frames(look, n):
        return [Item(k, k, _face(p, look), _face(p, look), matrix, p.astype(np.float32)) for k in range(n)]

    gaze = Lanes(lambda: GazeFollow(np.zeros((2, 2))))
    swap = StubSwap()
    swap_items(frames((0.0, 0.0), MIN_FRAMES + 1), swap, gaze=gaze)
    aside = swap_items(frames((-0.15, 0.0), 4), swap, gaze=gaze)
    assert iris_offset(aside[-1].result, p)[:, 0].max() < -0.06
    kept = swap_items(frames((-0.15, 0.0), 2), StubSwap())  # --gaze keep
    np.testing.assert_array_equal(kept[-1].result, shown)


def test_eval_scores_the_gaze_in_step_and_how_far():
    from retarget.eval.expression import ExpressionTrack
    from retarget.eval.faces import FaceComparison

    p = _points()
    track = ExpressionTrack()
    for look in (-0.12, -0.06, 0.0, 0.06, 0.12, 0.0):
        found = FaceComparison(True, True, 0.0, source_points=p, output_points=p)
        track.add(_face(p, (look, 0.0)), _face(p, (look / 2, 0.0)), found)  # in step, half as far
    expr = track.summary()["expression"]
    assert expr["gaze_correlation"] > 0.95
    assert expr["gaze_output_sd"] / expr["gaze_source_sd"] == pytest.approx(0.5, abs=0.15)
    assert track.per_frame()["gaze_source"][2] == pytest.approx(0.0, abs=0.03)
