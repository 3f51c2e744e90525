"""The source's own mouth interior inside a swapped face (``retarget render --mouth source``).

A face swap by retrieval (:mod:`retarget.faces.retrieval`) shows the target's own teeth
and tongue, from the target frame it picked. Where the target's footage has no such
mouth, or where the user wants the speaker's own mouth (teeth, tongue, the dark of the
throat, so speech reads as the source's), :func:`paste_mouth` puts the source's mouth
interior inside the swapped face's inner lips:

1. **Warp**: the source's aligned crop is warped piecewise affinely
   (:func:`retarget.faces.morph.warp_picture`) so its lip landmarks (outer 48-59, inner
   60-67, and the inner lips' centre) land on the swapped face's, over a *fixed*
   triangulation (:data:`TRIANGLES`: a fan from the centre to every inner-lip edge, and a
   ring of triangles between inner and outer lips). Fixed, because a Delaunay
   triangulation of moving points flips edges from frame to frame and the teeth would
   jump; piecewise, because only then does the source's inner-lip polygon land exactly on
   the face's, so the mask holds the source's mouth interior and never its lips (a single
   affine fit of the lip points leaves the two polygons apart where the mouths' shapes
   differ: a lip colour band along the mask's edge).
2. **Colour**: the pasted interior keeps its own contrast (white teeth, dark throat) but
   takes the swapped face's lighting and tint: its Lab lightness is scaled, and its a, b
   shifted, by how the face's lip ring (between the outer and inner lips) differs from
   the source's lip ring (:func:`match_lips`), so the source's lighting and skin tone do
   not come along.
3. **Mask**: the face's inner-lip polygon, feathered by :data:`FEATHER` of the mouth's
   width, and weighted by how open both mouths are (:func:`open_weight`): a closed mouth
   (either one's) leaves the face unchanged, a mouth just opening fades in.
"""

from __future__ import annotations

import cv2
import numpy as np

from retarget.faces.morph import warp_picture

__all__ = ["FEATHER", "TRIANGLES", "match_lips", "mouth_mask", "mouth_open", "open_weight", "paste_mouth"]

#: Outer (48-59) and inner (60-67) lip landmarks.
OUTER = np.arange(48, 60)
INNER = np.arange(60, 68)
#: Feather of the mask's edge (Gaussian sigma), per outer mouth width (48 to 54).
FEATHER = 0.03
#: Inner-lip area per squared mouth width at and under which a mouth is closed, and from
#: which it is fully open (about 0.015 with lips together, 0.08 mid-word).
CLOSED, OPEN = 0.015, 0.04
#: Bounds of the lightness gain and of the a, b shift of the colour match.
GAIN = (0.5, 2.0)
SHIFT = 25.0


def _triangles() -> np.ndarray:
    """:data:`TRIANGLES`, as indices into the 21 mouth points of :func:`_mouth_points`."""
    o = {k: k - 48 for k in range(48, 68)}  # landmark -> its row among the mouth points
    centre = 20
    fan = [(centre, o[60 + i], o[60 + (i + 1) % 8]) for i in range(8)]
    quads = [(48, 49, 61, 60), (50, 51, 62, 61), (51, 52, 63, 62), (53, 54, 64, 63)]
    quads += [(54, 55, 65, 64), (56, 57, 66, 65), (57, 58, 67, 66), (59, 48, 60, 67)]
    ring = [(o[a], o[b], o[c]) for a, b, c, _ in quads] + [(o[a], o[c], o[d]) for a, _, c, d in quads]
    ring += [(o[49], o[50], o[61]), (o[52], o[53], o[63]), (o[55], o[56], o[65]), (o[58], o[59], o[67])]
    return np.asarray(fan + ring, np.int64)


#: The fixed triangulation of the mouth (rows of :func:`_mouth_points`): fan and lip ring.
TRIANGLES = _triangles()


def _mouth_points(points: np.ndarray) -> np.ndarray:
    """Lip landmarks 48-67 and the inner lips' centre: ``(21, 2)`` float64."""
    p = np.asarray(points, np.float64)
    return np.vstack([p[48:68], p[INNER].mean(0, keepdims=True)])


def _area(polygon: np.ndarray) -> float:
    """Signed area: positive for the inner lips of an open mouth (upper lip above the lower, y down)."""
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def mouth_open(points: np.ndarray) -> float:
    """How open a mouth is: the inner-lip polygon's area over the squared outer mouth width.

    Args:
        points: ``(68, 2)`` landmarks (any pixels).

    Returns:
        >= 0; about 0.015 and under with the lips together, 0.05-0.1 mid-word; 0 where the
        lower lip lies above the upper (a landmark error: no mouth to see).
    """
    p = np.asarray(points, np.float64)
    width = float(np.linalg.norm(p[54] - p[48]))
    return max(_area(p[INNER]), 0.0) / max(width * width, 1e-6)


def open_weight(points: np.ndarray) -> float:
    """0 for a closed mouth (:data:`CLOSED`), 1 for an open one (:data:`OPEN`), smooth between."""
    a = float(np.clip((mouth_open(points) - CLOSED) / (OPEN - CLOSED), 0.0, 1.0))
    return a * a * (3.0 - 2.0 * a)


def mouth_mask(points: np.ndarray, size: int) -> np.ndarray:
    """The inner-lip polygon of ``points`` (crop px) filled and feathered (:data:`FEATHER`).

    Returns:
        ``size x size`` float32 in [0, 1]; 0.5 on the inner lips' line.
    """
    p = np.asarray(points, np.float64)
    mask = np.zeros((size, size), np.float32)
    shift = 4  # sub-pixel vertices
    cv2.fillPoly(mask, [np.round(p[INNER] * (1 << shift)).astype(np.int32)], 1.0, cv2.LINE_AA, shift)
    sigma = FEATHER * float(np.linalg.norm(p[54] - p[48]))
    if sigma >= 0.3:
        mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    return np.clip(mask, 0.0, 1.0)


def _ring_stats(image: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, float]:
    """Mean Lab (8-bit OpenCV scale) of the lip ring of ``image`` (RGB uint8), and its pixel count."""
    ring = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(ring, [np.round(points[OUTER]).astype(np.int32)], 1)
    cv2.fillPoly(ring, [np.round(points[INNER]).astype(np.int32)], 0)
    lab = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2LAB)
    return np.asarray(cv2.mean(lab, mask=ring)[:3], np.float64), float(ring.sum())


def match_lips(interior: np.ndarray, face: np.ndarray, points: np.ndarray, source: np.ndarray,
               source_points: np.ndarray) -> np.ndarray:  # fmt: skip
    """``interior`` (the warped source, RGB uint8) in the face's light and tint: Lab lightness
    times the face's lip-ring lightness over the source's (within :data:`GAIN`), a and b
    shifted by the difference of the rings' means (within :data:`SHIFT`).

    Args:
        interior: ``S x S x 3`` uint8 RGB to correct.
        face, points: the swapped face and its ``(68, 2)`` landmarks (crop px).
        source, source_points: the source's crop and its landmarks.

    Returns:
        ``S x S x 3`` uint8 RGB; ``interior`` unchanged where a ring is under 4 px.
    """
    mine, n_face = _ring_stats(face, np.asarray(points, np.float64))
    theirs, n_source = _ring_stats(source, np.asarray(source_points, np.float64))
    if min(n_face, n_source) < 4:
        return interior.copy()
    gain = float(np.clip(mine[0] / max(theirs[0], 1.0), *GAIN))
    shift = np.clip(mine[1:] - theirs[1:], -SHIFT, SHIFT)
    lab = cv2.cvtColor(np.ascontiguousarray(interior), cv2.COLOR_RGB2LAB)
    matrix = np.array([[gain, 0, 0, 0], [0, 1, 0, shift[0]], [0, 0, 1, shift[1]]], np.float64)
    return cv2.cvtColor(cv2.transform(lab, matrix), cv2.COLOR_LAB2RGB)


def paste_mouth(face: np.ndarray, points: np.ndarray, source: np.ndarray, source_points: np.ndarray) -> np.ndarray:
    """The swapped ``face`` with the source's mouth interior inside its inner lips (see the module).

    Args:
        face: ``S x S x 3`` uint8 RGB, the swapped face crop.
        points: ``(68, 2)`` its landmarks in crop pixels (dlib/iBUG order).
        source: ``S x S x 3`` uint8 RGB, the source's aligned crop (same crop geometry).
        source_points: ``(68, 2)`` the source's landmarks in crop pixels.

    Returns:
        ``S x S x 3`` uint8 RGB: ``face`` itself (a copy) where either mouth is closed,
        else the colour-matched source interior blended in along :func:`mouth_mask`.
    """
    weight = min(open_weight(points), open_weight(source_points))
    if weight <= 0.0:
        return face.copy()
    dst, src = _mouth_points(points), _mouth_points(source_points)
    warped = warp_mouth(source, src, dst)
    interior = match_lips(warped, face, points, source, source_points)
    alpha = (weight * mouth_mask(points, face.shape[0]))[..., None]
    out = face.astype(np.float32) * (1.0 - alpha) + interior.astype(np.float32) * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def warp_mouth(source: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """``source`` warped so its mouth points ``src`` land on ``dst`` (``(21, 2)``, :func:`_mouth_points`),
    over :data:`TRIANGLES`; pixels outside the outer lips keep their place."""
    return warp_picture(source, src, dst, TRIANGLES)
