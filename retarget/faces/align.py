"""Canonical face template, similarity estimation and crop matrices.

All matrices are ``2 x 3`` float64 affine matrices ``M`` acting on column vectors
``[x, y, 1]`` in pixels: ``dst = M[:, :2] @ src + M[:, 2]``. A *crop matrix* maps
source-image pixels to pixels of the ``size x size`` aligned crop; its inverse maps
the crop back into the source frame.

The template is a symmetric 68-point face (dlib / iBUG-300W point order) drawn from
average facial proportions into a unit square: y runs from the top of the eyebrows (0)
to the chin (1), x is centred on 0.5 with the same scale. Only its *stable* points (eyes, nose,
mouth corners) drive the alignment, since the jaw outline and the lips move with
expression and head turn.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = [
    "TEMPLATE_68",
    "STABLE_POINTS",
    "LEFT_EYE",
    "RIGHT_EYE",
    "eye_centres",
    "five_points",
    "template_points",
    "estimate_similarity",
    "crop_matrix",
    "warp_crop",
    "invert",
    "apply",
    "matrix_to_params",
    "params_to_matrix",
]

#: Landmark indices of the two eyes (image-left eye first) in the 68-point layout.
LEFT_EYE = np.arange(36, 42)
RIGHT_EYE = np.arange(42, 48)
NOSE = np.arange(27, 36)
MOUTH_CORNERS = np.array([48, 54])


def _build_template() -> np.ndarray:
    # Drawn in units of the eye-centre distance, origin midway between the eyes, y down;
    # proportions of an average frontal adult face.
    p = np.zeros((68, 2), np.float64)
    # Jaw 0..16: from the left temple round the chin to the right temple.
    t = np.linspace(0.0, math.pi, 17)
    p[0:17, 0] = -1.1 * np.cos(t)
    p[0:17, 1] = 0.2 + 1.75 * np.sin(t) ** 0.8  # a squarer jaw than an ellipse
    # Eyebrows 17..21 (outer to inner) and 22..26 (inner to outer): shallow arcs.
    bx = np.array([-0.85, -0.68, -0.5, -0.33, -0.18])
    by = np.array([-0.30, -0.40, -0.42, -0.38, -0.30])
    p[17:22, 0], p[17:22, 1] = bx, by
    p[22:27, 0], p[22:27, 1] = -bx[::-1], by[::-1]
    # Nose bridge 27..30 down to the tip, then the nostril line 31..35.
    p[27:31, 0] = 0.0
    p[27:31, 1] = np.linspace(-0.02, 0.58, 4)
    p[31:36, 0] = [-0.28, -0.14, 0.0, 0.14, 0.28]
    p[31:36, 1] = [0.70, 0.74, 0.76, 0.74, 0.70]
    # Eyes, clockwise from the image-left corner: two upper-lid points, the right
    # corner, two lower-lid points (the same order for both eyes in the 68 layout).
    w, h = 0.21, 0.08
    eye = np.array([[-w, 0], [-w / 3, -h], [w / 3, -h], [w, 0], [w / 3, h * 0.9], [-w / 3, h * 0.9]])
    p[36:42] = eye + [-0.5, 0.0]
    p[42:48] = eye + [0.5, 0.0]
    # Outer lip 48..59: left corner, upper lip, right corner, lower lip back.
    p[48:60, 0] = [-0.45, -0.30, -0.14, 0.0, 0.14, 0.30, 0.45, 0.33, 0.17, 0.0, -0.17, -0.33]
    p[48:60, 1] = [1.12, 1.03, 0.98, 1.00, 0.98, 1.03, 1.12, 1.22, 1.29, 1.31, 1.29, 1.22]
    # Inner lip 60..67.
    p[60:68, 0] = [-0.37, -0.15, 0.0, 0.15, 0.37, 0.15, 0.0, -0.15]
    p[60:68, 1] = [1.12, 1.09, 1.10, 1.09, 1.12, 1.15, 1.16, 1.15]
    # Into the unit square, one scale for both axes: brows at the top, chin at the bottom.
    top, bottom = p[:, 1].min(), p[:, 1].max()
    p = (p - [0.0, top]) / (bottom - top)
    p[:, 0] += 0.5
    return p


#: Canonical 68-point face in the unit square, float64 (68, 2).
TEMPLATE_68: np.ndarray = _build_template()
TEMPLATE_68.setflags(write=False)

#: Indices of the landmarks the similarity is fitted to (eyes, nose, mouth corners).
STABLE_POINTS: np.ndarray = np.concatenate([LEFT_EYE, RIGHT_EYE, NOSE, MOUTH_CORNERS])

# Eyes weigh more: they are the most precise dlib points and the jitter is judged there.
_STABLE_WEIGHTS = np.concatenate([np.full(12, 2.0), np.full(9, 1.0), np.full(2, 1.0)])


def eye_centres(landmarks: np.ndarray) -> np.ndarray:
    """Centres of the two eyes.

    Args:
        landmarks: (68, 2) or (N, 68, 2) points.

    Returns:
        (2, 2) or (N, 2, 2): image-left eye first, then image-right eye.
    """
    lm = np.asarray(landmarks, np.float64)
    return np.stack([lm[..., LEFT_EYE, :].mean(-2), lm[..., RIGHT_EYE, :].mean(-2)], axis=-2)


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """The 5-point layout derived from 68 points: eye centres, nose tip, mouth corners.

    Args:
        landmarks: (68, 2) points.

    Returns:
        (5, 2) float64: left eye, right eye, nose tip (30), left (48) and right (54) mouth corner.
    """
    lm = np.asarray(landmarks, np.float64)
    return np.concatenate([eye_centres(lm), lm[[30, 48, 54]]], axis=0)


def template_points(size: int, margin: float) -> np.ndarray:
    """The template's 68 points in crop pixels.

    Args:
        size: side of the square crop in pixels (> 0).
        margin: border around the unit-square face, as a fraction of the face size (>= 0);
            the face occupies ``1 / (1 + 2 * margin)`` of the crop side.

    Returns:
        (68, 2) float64 crop-pixel coordinates in ``[0, size]``.
    """
    return (TEMPLATE_68 + margin) * (size / (1.0 + 2.0 * margin))


def estimate_similarity(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Least-squares similarity (scale, rotation, translation; no shear or reflection) src -> dst.

    Weighted Umeyama closed form: minimises ``sum_i w_i |s R src_i + t - dst_i|^2``.

    Args:
        src: (N, 2) source points, N >= 2.
        dst: (N, 2) target points.
        weights: (N,) non-negative weights, default all 1.

    Returns:
        (2, 3) float64 matrix ``[s R | t]``.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    mu_s = w @ src
    mu_d = w @ dst
    a = src - mu_s
    b = dst - mu_d
    var_s = float(w @ (a * a).sum(1))
    # With complex numbers a 2-D similarity is one multiplication: z_d = c * z_s.
    za = a[:, 0] + 1j * a[:, 1]
    zb = b[:, 0] + 1j * b[:, 1]
    c = (w * np.conj(za) * zb).sum() / max(var_s, 1e-12)
    m = np.array([[c.real, -c.imag, 0.0], [c.imag, c.real, 0.0]])
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def crop_matrix(landmarks: np.ndarray, size: int, margin: float) -> np.ndarray:
    """The similarity taking a face's landmarks onto the template in a ``size`` crop.

    Args:
        landmarks: (68, 2) source-image pixel coordinates.
        size: crop side in pixels.
        margin: border fraction, see :func:`template_points`.

    Returns:
        (2, 3) float64 crop matrix, source pixels -> crop pixels.
    """
    dst = template_points(size, margin)[STABLE_POINTS]
    return estimate_similarity(np.asarray(landmarks, np.float64)[STABLE_POINTS], dst, _STABLE_WEIGHTS)


#: Interpolation of every resampling of a face picture (the crop, the swap's warp, the paste back).
#: A face is resampled three times between the video and the output; bilinear at each step
#: kept 0.14 of the face's fine detail (Laplacian variance, a real 480 px face, 256 px crops),
#: Lanczos (8 x 8) 0.56 and bicubic 0.42 (docs/benchmarks.md, "sharp and steady").
RESAMPLE = cv2.INTER_LANCZOS4


def warp_crop(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Cut the aligned crop out of an image.

    Args:
        image: H x W x C uint8 (any channel order; it is kept).
        matrix: (2, 3) crop matrix, source pixels -> crop pixels.
        size: crop side.

    Returns:
        size x size x C uint8; parts outside the image are filled by reflection so the
        networks never see hard black borders.
    """
    return cv2.warpAffine(
        image, np.asarray(matrix, np.float64), (size, size), flags=RESAMPLE, borderMode=cv2.BORDER_REFLECT_101
    )


def invert(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine matrix (crop pixels -> source pixels for a crop matrix)."""
    return cv2.invertAffineTransform(np.asarray(matrix, np.float64))


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (..., 2) points through a (2, 3) matrix; returns float64 (..., 2)."""
    m = np.asarray(matrix, np.float64)
    return np.asarray(points, np.float64) @ m[:, :2].T + m[:, 2]


def matrix_to_params(matrix: np.ndarray, size: int) -> np.ndarray:
    """Decompose a crop matrix into parameters that are meaningful to smooth.

    Translation is expressed as the source point that lands on the crop centre, so a
    small rotation does not swing it around the image origin.

    Args:
        matrix: (2, 3) similarity, source pixels -> crop pixels.
        size: crop side.

    Returns:
        (4,) float64: centre x, centre y (source pixels), log scale, angle (radians, (-pi, pi]).
    """
    m = np.asarray(matrix, np.float64)
    a, b = m[0, 0], m[1, 0]
    scale = math.hypot(a, b)
    angle = math.atan2(b, a)
    centre = invert(m) @ np.array([size / 2.0, size / 2.0, 1.0])
    return np.array([centre[0], centre[1], math.log(scale), angle])


def params_to_matrix(params: np.ndarray, size: int) -> np.ndarray:
    """Inverse of :func:`matrix_to_params`: (4,) parameters -> (2, 3) crop matrix."""
    cx, cy, log_s, angle = (float(v) for v in params)
    s = math.exp(log_s)
    r = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]) * s
    m = np.zeros((2, 3))
    m[:, :2] = r
    m[:, 2] = np.array([size / 2.0, size / 2.0]) - r @ np.array([cx, cy])
    return m
