"""The input's glasses beyond a swapped face: the bridge found, the rims painted out, nothing else touched."""

from __future__ import annotations

import cv2
import numpy as np

from retarget.faces.align import TEMPLATE_68
from retarget.faces.rims import WEARS_GLASSES, GlassesGate, bridge_line, clear_rims

W, H = 320, 240
FACE = ((TEMPLATE_68 - 0.5) * 120 + [160, 120]).astype(np.float64)  # a 120 px face in the middle


def skin(seed: int = 0) -> np.ndarray:
    """A frame of softly varying skin tone with a little noise (no thin lines)."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.uniform(120, 180, (H, W)).astype(np.float32), (0, 0), 12)
    img = np.stack([base + 30, base, base - 20], axis=2) + rng.normal(0, 1.5, (H, W, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def glasses(img: np.ndarray, lm: np.ndarray = FACE) -> np.ndarray:
    """Thin dark round rims about the eyes, a bridge between them and arms out to the sides."""
    out = img.copy()
    e = float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0)))
    left, right = lm[36:42].mean(0), lm[42:48].mean(0)
    for c in (left, right):
        cv2.circle(out, tuple(int(v) for v in c), int(0.42 * e), (40, 35, 30), 2, cv2.LINE_AA)
    y = int((left[1] + right[1]) / 2 - 0.05 * e)
    cv2.line(out, (int(left[0] + 0.42 * e), y), (int(right[0] - 0.42 * e), y), (40, 35, 30), 2, cv2.LINE_AA)
    for c, side in ((left, -1), (right, 1)):
        x0 = int(c[0] + side * 0.42 * e)
        cv2.line(out, (x0, int(c[1] - 0.1 * e)), (x0 + side * int(0.7 * e), int(c[1] - 0.15 * e)), (40, 35, 30), 2)
    return out


def test_the_bridge_line_tells_glasses_from_a_bare_face():
    bare, worn = skin(), glasses(skin())
    assert bridge_line(bare, FACE) < WEARS_GLASSES / 2
    assert bridge_line(worn, FACE) > WEARS_GLASSES * 2
    assert bridge_line(worn, FACE + [1000, 0]) == 0.0  # outside the frame: nothing to measure


def test_the_gate_decides_from_the_first_frame_holds_its_decision_and_starts_afresh():
    gate = GlassesGate()
    worn, bare = glasses(skin()), skin()
    level = gate(worn, FACE)
    assert level is not None and level > WEARS_GLASSES  # no waiting: glasses vanishing later would jump
    assert all(gate(worn, FACE) is not None for _ in range(4))
    assert gate(bare, FACE) is not None and gate(bare, FACE) is not None  # a bare frame or two: the median holds
    assert [gate(bare, FACE) is None for _ in range(5)][-1] and not gate.on  # then they are off
    gate.reset()
    assert [gate(bare, FACE) for _ in range(4)] == [None] * 4
    faint = GlassesGate(threshold=30.0, off=5.0)  # between the two thresholds the decision holds
    assert faint(worn, FACE) is not None and faint.on


def test_clear_rims_paints_the_rims_out_and_leaves_the_rest():
    clean = skin(1)
    worn = glasses(clean)
    drawn = np.abs(worn.astype(int) - clean.astype(int)).max(axis=2) > 20
    cleared = clear_rims(worn, FACE, bridge_line(worn, FACE))
    assert cleared is not worn and np.array_equal(worn, glasses(clean))  # the input stays as it was
    left = np.abs(cleared.astype(int) - clean.astype(int)).max(axis=2)
    assert left[drawn].mean() < 8  # the rims, bridge and arms are gone (skin painted in)
    assert np.abs(worn.astype(int) - clean.astype(int)).max(axis=2)[drawn].mean() > 40
    far = np.ones((H, W), bool)
    far[40:200, 50:270] = False  # the band about the eyes, with room
    assert np.array_equal(cleared[far], worn[far])
    # a bare face's own features (a thick dark brow) are not lines: they stay
    browed = clean.copy()
    cv2.rectangle(browed, (90, 62), (140, 74), (60, 45, 40), -1)
    kept = clear_rims(browed, FACE, 30.0)
    assert np.abs(kept[64:72, 95:135].astype(int) - browed[64:72, 95:135].astype(int)).max() < 12


def test_wears_glasses_is_the_median_over_a_persons_faces():
    from retarget.faces.rims import wears_glasses

    worn, bare = glasses(skin()), skin()
    assert wears_glasses([(worn, FACE)] * 3) and not wears_glasses([(bare, FACE)] * 3)
    assert wears_glasses([(worn, FACE), (worn, FACE), (bare, FACE)])  # a frame without them: still theirs
    assert not wears_glasses([])
