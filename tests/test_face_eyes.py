"""Eyes that belong in a face swap: the eye region's own pick, its continuity, lids closed without a dark socket."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from retarget.config import FaceConfig
from retarget.faces.align import template_points
from retarget.faces.eyes import EYES, closure, eye_cost, eye_region, keep_or_pick, lids_apart
from retarget.faces.retrieval import FaceIndex, FaceSwap, expression_features

SIZE = 256
MARGIN = 0.2
SKIN = (200, 160, 140)


def _face(mouth: float = 0.0, eyes: float = 1.0) -> np.ndarray:
    """Template landmarks (crop px): the lower lip dropped by ``mouth``, the eyes' height scaled by ``eyes``."""
    p = template_points(SIZE, MARGIN).copy()
    p[[65, 66, 67, 55, 56, 57, 58, 59], 1] += mouth * SIZE / (1 + 2 * MARGIN) * 0.25
    for eye in EYES:
        centre = p[eye, 1].mean()
        p[eye, 1] = centre + (p[eye, 1] - centre) * eyes
    return p


def _picture(points: np.ndarray, shade: int = 0) -> np.ndarray:
    """Skin (lit by ``shade``), a dark mouth, dark open eyes with a darker lash line on each upper lid."""
    img = np.full((SIZE, SIZE, 3), SKIN, np.uint8)
    img[..., 1] = np.clip(int(SKIN[1]) + shade, 0, 255)
    cv2.fillConvexPoly(img, np.round(points[60:68]).astype(np.int32), (40, 10, 10))
    for eye in EYES:
        cv2.fillConvexPoly(img, np.round(points[eye]).astype(np.int32), (20, 20, 60))
    return img


def _index(faces: list[np.ndarray], monkeypatch, shades: list[int] | None = None) -> FaceIndex:
    index = FaceIndex(
        root=None,  # type: ignore[arg-type]
        files=[None] * len(faces),  # type: ignore[list-item]
        points=np.stack(faces),
        segments=np.arange(len(faces)),  # no successors: each frame its own segment
        size=SIZE,
        face=FaceConfig(margin=MARGIN),
    )
    pictures = [_picture(p, s) for p, s in zip(faces, shades or [0] * len(faces))]
    monkeypatch.setattr(index, "image", lambda k: pictures[k])
    return index


def _luma(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64)


def test_the_eye_pick_follows_the_sources_eyes(monkeypatch):
    # open eyes on every frame but the last, whose mouth is open: the main pick never takes it
    faces = [_face(0.0, 1.0), _face(0.0, 1.0), _face(0.0, 0.9), _face(0.0, 0.5), _face(0.4, 0.1)]
    index = _index(faces, monkeypatch, shades=[0, 0, 0, 0, 60])
    swap = FaceSwap(index, smooth=0.0, fade=1)
    opens = [swap(_face(0.0, 1.0)) for _ in range(8)]
    assert all(o.eye_pick == o.pick for o in opens)  # the main pick's eyes are right: no second pick
    blink = [swap(_face(0.0, 0.1)) for _ in range(2)]
    assert all(b.eye_pick == 4 and b.pick != 4 for b in blink)  # the only frame with shut eyes, for the eyes alone
    # its pixels in the eye region (shade 60), the main pick's elsewhere
    eyes = eye_region(blink[0].points, SIZE) > 0.99
    assert blink[0].image[eyes, 1].mean() > SKIN[1] + 20
    assert abs(int(blink[0].image[SIZE // 2 + 20, 5, 1]) - SKIN[1]) <= 1
    half = swap(_face(0.0, 0.55))
    assert half.eye_pick == 3  # the half-open frame for half-open eyes
    assert FaceSwap(index, eyes=False)(_face(0.0, 1.0)).eye_pick is None


def test_a_closed_eye_with_only_open_eyes_to_pick_is_a_lid_not_a_dark_socket(monkeypatch):
    index = _index([_face(m, 1.0) for m in (0.0, 0.1, 0.2)], monkeypatch)

    def run(eyes: bool):
        swap = FaceSwap(index, smooth=0.0, fade=1, eyes=eyes)
        for _ in range(6):
            swap(_face(0.0, 1.0))
        return swap(_face(0.0, 0.05))

    def eye_luma(out) -> float:  # mean luma over each shut eye's outline, grown by 1 px
        mask = np.zeros((SIZE, SIZE), np.uint8)
        for eye in EYES:
            cv2.fillConvexPoly(mask, np.round(out.points[eye]).astype(np.int32), 1)
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8)).astype(bool)
        return float(_luma(out.image)[mask].mean())

    skin = float(_luma(np.full((1, 1, 3), SKIN, np.uint8))[0, 0])
    squashed, closed = run(False), run(True)
    assert expression_features(closed.points)[3] < 0.1  # the shape's eye is shut
    assert eye_luma(squashed) < skin - 30  # without: the open eye squashed into a dark slit
    assert eye_luma(closed) > skin - 12  # with: lid skin over it
    # the rest of the face is the same picture either way
    away = eye_region(closed.points, SIZE) < 1e-3
    assert np.abs(squashed.image[away].astype(int) - closed.image[away].astype(int)).max() <= 1


def test_the_eye_pick_holds_on_noise(monkeypatch):
    # the main pick (frame 0: the source's closed mouth) has shut eyes: the eyes come from frames 1-6,
    # open a little more or less each
    scales = [1.0, 0.97, 1.03, 0.94, 1.06, 0.9]
    index = _index([_face(0.0, 0.1)] + [_face(0.4, s) for s in scales], monkeypatch)
    rng = np.random.default_rng(0)
    noisy = [_face(0.0, 1.0) + rng.normal(0.0, SIZE / 400, (68, 2)) for _ in range(40)]  # landmark noise, no blink

    def picks(**kw) -> list[int]:
        swap = FaceSwap(index, smooth=0.0, **kw)
        return [swap(p).eye_pick for p in noisy]

    held, free = picks(), picks(eye_hold=0.0)
    assert 0 not in held and 0 not in free
    changes = lambda seq: sum(a != b for a, b in zip(seq, seq[1:]))  # noqa: E731
    assert changes(held) <= 2 < changes(free)  # the noise alone would move it


def test_keep_or_pick_prefers_the_main_pick_then_the_previous():
    cost = np.array([0.0, 0.5, 1.5, 9.0, 0.2])
    segments = np.array([0, 0, 0, 0, 1])
    assert keep_or_pick(cost, None, 1, segments, hold=1.0) == 1  # the main pick, near enough
    assert keep_or_pick(cost, None, 3, segments, hold=1.0) == 0  # too far: the nearest
    assert keep_or_pick(cost, 2, 3, segments, hold=1.0) == 0  # the previous too far as well
    assert keep_or_pick(cost, 1, 3, segments, hold=1.0) == 1  # the previous kept
    assert keep_or_pick(cost, 3, 3, segments, hold=0.1) == 0  # its successor (4) is another segment


def test_eye_cost_reads_the_eyes_and_pose_only():
    faces = np.stack([expression_features(_face(m, e)) for m, e in ((0.0, 1.0), (0.4, 1.0), (0.0, 0.3))])
    spread = faces.std(0) + 1e-3
    cost = eye_cost(faces, spread, expression_features(_face(0.0, 1.0)))
    assert cost[0] == pytest.approx(0.0) and cost[1] == pytest.approx(0.0, abs=1e-9) and cost[2] > 1.0


def test_lids_never_cross_and_closing_grows_with_the_closure():
    p = _face(0.0, 1.0)
    crossed = p.copy()
    crossed[[37, 38], 1] = p[[41, 40], 1] + 2.0  # the upper lid below the lower
    fixed = lids_apart(crossed)
    assert (fixed[[37, 38], 1] <= fixed[[41, 40], 1]).all()
    assert np.allclose(lids_apart(p), p)  # open eyes untouched
    have = np.array([0.3, 0.3])
    amounts = [closure(have, np.array([w, w]))[0] for w in (0.3, 0.24, 0.2, 0.15, 0.1, 0.05)]
    assert amounts[0] == 0.0 and amounts[-1] == 1.0 and all(b >= a for a, b in zip(amounts, amounts[1:]))


def test_eye_region_covers_the_eyes_and_spares_the_mouth():
    p = _face(0.2, 1.0)
    mask = eye_region(p, SIZE)
    for eye in EYES:
        x, y = np.round(p[eye].mean(0)).astype(int)
        assert mask[y, x] > 0.99
    x, y = np.round(p[60:68].mean(0)).astype(int)
    assert mask[y, x] == 0.0 and mask[int(p[30, 1]), int(p[30, 0])] < 0.05


def test_a_blink_reaches_the_shape_without_the_expressions_lag(monkeypatch):
    index = _index([_face(m, e) for m, e in ((0.0, 1.0), (0.1, 1.0), (0.0, 0.2))], monkeypatch)

    def shut(**kw) -> float:  # the shape's eye opening on the first frame of a blink
        swap = FaceSwap(index, smooth=0.5, **kw)
        for _ in range(6):
            swap(_face(0.0, 1.0))
        return float(expression_features(swap(_face(0.0, 0.1)).points)[3])

    assert shut(eye_smooth=0.0) < shut(eyes=False) - 0.05  # smoothed as the rest: half the blink


def test_set_eye_openings_moves_the_lids_only():
    from retarget.faces.features import set_eye_openings

    p = _face(0.0, 1.0)
    out = set_eye_openings(p, np.array([0.1, 0.4]))
    assert expression_features(out)[3:5] == pytest.approx([0.1, 0.4], abs=1e-6)
    lids = [37, 38, 40, 41, 43, 44, 46, 47]
    rest = np.setdiff1d(np.arange(68), lids)
    np.testing.assert_array_equal(out[rest], p[rest])  # corners, brows, mouth: where they were
    shut = set_eye_openings(p, np.zeros(2))
    assert expression_features(shut)[3:5] == pytest.approx([0.0, 0.0], abs=1e-9)


def test_a_squint_closes_the_targets_eye_in_proportion(monkeypatch):
    # the target's eyes are twice as open at rest as the source's: a squint to half the source's
    # rest must draw the target's at half of theirs, not at their rest less the source's few pixels
    target = [_face(0.0, 2.0)] * 3
    index = _index(target, monkeypatch)
    rest_target = expression_features(target[0])[3:5]

    def squint(relative: bool) -> np.ndarray:
        swap = FaceSwap(index, smooth=0.0, fade=1, relative_eyes=relative)
        for _ in range(8):
            swap(_face(0.0, 1.0))
        return expression_features(swap(_face(0.0, 0.5)).points)[3:5]

    assert squint(True) == pytest.approx(rest_target * 0.5, rel=0.05)
    assert (squint(False) > rest_target * 0.6).all()  # the source's motion added as it is: a lesser squint
