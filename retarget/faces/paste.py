"""Paste a translated face crop back into its frame.

The blend mask is drawn in crop space from the landmarks (their convex hull extended
up over the forehead, or an ellipse fitted to it), grown or shrunk by ``--mask-dilate`` /
``--mask-erode`` pixels, feathered inwards so that it is exactly zero on and outside the
shape; the crop is colour-matched to the face it replaces (``lab``: mean and spread per
Lab channel; ``hist``: each RGB channel's histogram; or ``none``) and warped back with
the inverse crop matrix over the face's bounding region only. ``alpha`` blends it along
the feathered mask; ``seamless`` first solves for the face whose gradients are the
translation's and whose border is the frame's (OpenCV's Poisson ``seamlessClone``), then
blends that the same way. Pixels where the warped mask is zero keep their original
values bit for bit.
"""

from __future__ import annotations

import math
from typing import Literal

import cv2
import numpy as np

from retarget.faces.align import RESAMPLE, apply, invert, warp_crop

__all__ = [
    "BLENDS",
    "COLOR_MATCHES",
    "face_outline",
    "face_mask",
    "match_color_hist",
    "match_color_lab",
    "paste_back",
    "rescale_matrix",
]

#: ``--blend`` modes and ``--color-match`` modes.
BLENDS = ("alpha", "seamless")
COLOR_MATCHES = ("lab", "hist", "none")

#: How far above the eyebrows the mask's forehead reaches, as a fraction of the
#: eye-to-chin distance; the hull of the 68 points alone would cut the face at the brows.
FOREHEAD = 0.35
# Limits on the Lab contrast correction, so a flat translated face is not blown up.
_MAX_STD_RATIO = 3.0
# Padding (px) around a seamless clone: more than the 1 px ring seamlessClone clears and the
# 3 px it erodes the mask by, so a face cut by the frame's border is not pinned to the frame there.
_SEAMLESS_PAD = 8


def face_outline(landmarks: np.ndarray, forehead: float = FOREHEAD) -> np.ndarray:
    """Outline points of the face: jaw, eyebrows and the forehead above them.

    Args:
        landmarks: (68, 2) points in any pixel frame.
        forehead: how far above the brows the outline reaches, as a fraction of the
            eye-to-chin distance (:data:`FOREHEAD`; 0 = the brows).

    Returns:
        (N, 2) float32 points in the same frame, whose convex hull covers the face.
    """
    lm = np.asarray(landmarks, np.float64)
    eyes = lm[36:48].mean(0)
    up = eyes - lm[8]  # chin -> eyes: "up" along the face, whatever the head roll
    return np.concatenate([lm[0:27], lm[17:27] + forehead * up]).astype(np.float32)


def face_mask(
    landmarks: np.ndarray,
    size: int,
    *,
    mask: Literal["hull", "ellipse"] = "hull",
    feather: float = 0.08,
    grow: int = 0,
    forehead: float = FOREHEAD,
) -> np.ndarray:
    """Feathered face mask in crop space.

    Args:
        landmarks: (68, 2) landmarks in crop pixels.
        size: crop side.
        mask: "hull" (convex hull of :func:`face_outline`) or "ellipse" (fitted to it).
        feather: width of the soft edge as a fraction of ``size`` (>= 0); the ramp lies
            inside the shape, so the mask is 0 on its boundary and outside.
        grow: crop pixels the shape is dilated by (> 0) or eroded by (< 0) before feathering.
        forehead: the outline's reach above the brows (:func:`face_outline`).

    Returns:
        size x size float32 in [0, 1].
    """
    pts = face_outline(landmarks, forehead)
    hard = np.zeros((size, size), np.uint8)
    if mask == "hull":
        hull = cv2.convexHull(pts).reshape(-1, 2)
        cv2.fillConvexPoly(hard, np.round(hull * 16).astype(np.int32), 255, lineType=cv2.LINE_8, shift=4)
    elif mask == "ellipse":
        (cx, cy), (ew, eh), ang = cv2.fitEllipse(pts)
        cv2.ellipse(hard, ((cx, cy), (ew, eh), ang), 255, thickness=-1)
    else:
        raise ValueError(f"unknown mask {mask!r}; choose hull or ellipse")
    if abs(grow) >= size * math.sqrt(2):  # past the crop's diagonal: the whole crop, or nothing
        hard[:] = 255 if grow > 0 and hard.any() else 0
    elif grow:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(grow) + 1, 2 * abs(grow) + 1))
        hard = cv2.dilate(hard, kernel) if grow > 0 else cv2.erode(hard, kernel)
    # The crop border is an edge too: without it a face leaving the crop gets a hard seam.
    hard[0, :] = hard[-1, :] = 0
    hard[:, 0] = hard[:, -1] = 0
    width = feather * size
    if width < 1.0:
        return (hard > 0).astype(np.float32)
    dist = cv2.distanceTransform(hard, cv2.DIST_L2, 5)
    a = np.clip(dist / width, 0.0, 1.0)
    return (a * a * (3.0 - 2.0 * a)).astype(np.float32)  # smoothstep: no visible ramp ends


def match_color_lab(source: np.ndarray, reference: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Match the per-channel mean and standard deviation of ``source`` to ``reference`` in Lab.

    Args:
        source: H x W x 3 uint8 RGB image to correct (the translated face).
        reference: H x W x 3 uint8 RGB image with the wanted colours (the original face).
        region: H x W bool, where the statistics are measured.

    Returns:
        H x W x 3 uint8 RGB corrected ``source`` (unchanged if the region is empty).
    """
    if region.sum() < 16:
        return source.copy()
    # 8-bit Lab (OpenCV's table-driven conversion) is ~10x faster than float Lab; one
    # level of a, b or L*255/100 is below what the eye tells apart on a face.
    src = cv2.cvtColor(np.ascontiguousarray(source), cv2.COLOR_RGB2LAB)
    ref = cv2.cvtColor(np.ascontiguousarray(reference), cv2.COLOR_RGB2LAB)
    mask = region.astype(np.uint8)
    ms, ss = (v.ravel() for v in cv2.meanStdDev(src, mask=mask))
    mr, sr = (v.ravel() for v in cv2.meanStdDev(ref, mask=mask))
    ratio = np.clip(sr / np.maximum(ss, 0.5), 1.0 / _MAX_STD_RATIO, _MAX_STD_RATIO)
    # out = src * ratio + (mr - ms * ratio), per channel, rounded and saturated to uint8.
    lab = cv2.transform(src, np.concatenate([np.diag(ratio), (mr - ms * ratio)[:, None]], axis=1))
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def match_color_hist(source: np.ndarray, reference: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Map each RGB channel of ``source`` so that its histogram inside ``region`` becomes ``reference``'s.

    Histogram specification: a level whose cumulative share in ``source`` is ``q`` becomes
    the lowest level of ``reference`` whose cumulative share reaches ``q``; the same
    per-channel table is applied to every pixel of ``source``.

    Args:
        source: H x W x 3 uint8 RGB image to correct (the translated face).
        reference: H x W x 3 uint8 RGB image with the wanted colours (the original face).
        region: H x W bool, where the histograms are measured.

    Returns:
        H x W x 3 uint8 RGB corrected ``source`` (unchanged if the region is empty).
    """
    if region.sum() < 16:
        return source.copy()
    out = np.empty_like(source)
    for c in range(3):
        cdf_s = np.cumsum(np.bincount(source[..., c][region], minlength=256)) / region.sum()
        cdf_r = np.cumsum(np.bincount(reference[..., c][region], minlength=256)) / region.sum()
        lut = np.minimum(np.searchsorted(cdf_r, cdf_s - 1e-9), 255).astype(np.uint8)
        out[..., c] = cv2.LUT(np.ascontiguousarray(source[..., c]), lut)
    return out


def _match_color(crop: np.ndarray, original: np.ndarray, inside: np.ndarray, color_match: str) -> np.ndarray:
    if color_match == "lab":
        return match_color_lab(crop, original, inside)
    if color_match == "hist":
        return match_color_hist(crop, original, inside)
    if color_match != "none":
        raise ValueError(f"unknown color_match {color_match!r}; choose {', '.join(COLOR_MATCHES)}")
    return crop


def _seamless(face: np.ndarray, region: np.ndarray, inside: np.ndarray, edges: tuple[bool, ...]) -> np.ndarray:
    """``face`` (h x w x 3 uint8) cloned into ``region`` along the bool mask ``inside`` (Poisson, NORMAL_CLONE).

    ``edges`` says which sides of ``region`` (left, top, right, bottom) are the frame's
    border. The three pictures are padded: seamlessClone refuses a clone that reaches the
    picture's edge, and pins the clone to the destination along the mask's outline, which
    at the frame's border would fade the face into the original there; so on those sides
    the mask runs on into the padding and the outline lies outside the frame. The clone is
    centred on the mask's own box, so it lands where it was.
    """
    p = _SEAMLESS_PAD
    mask = cv2.copyMakeBorder(inside.astype(np.uint8) * 255, p, p, p, p, cv2.BORDER_REPLICATE)
    left, top, right, bottom = edges
    if not left:
        mask[:, :p] = 0
    if not top:
        mask[:p] = 0
    if not right:
        mask[:, -p:] = 0
    if not bottom:
        mask[-p:] = 0
    mask[[0, -1]] = 0  # seamlessClone clears the outermost ring anyway; the box must not touch it
    mask[:, [0, -1]] = 0
    x, y, w, h = cv2.boundingRect(mask)
    if w < 3 or h < 3:
        return face
    src = cv2.copyMakeBorder(face, p, p, p, p, cv2.BORDER_REPLICATE)
    dst = cv2.copyMakeBorder(np.ascontiguousarray(region), p, p, p, p, cv2.BORDER_REPLICATE)
    cloned = cv2.seamlessClone(src, dst, mask, (x + w // 2, y + h // 2), cv2.NORMAL_CLONE)
    return cloned[p:-p, p:-p]


def _grow_px(matrix: np.ndarray, erode: float, dilate: float) -> int:
    """Frame pixels of ``--mask-erode`` / ``--mask-dilate`` as crop pixels (negative: erode)."""
    if erode < 0 or dilate < 0:
        raise ValueError(f"mask erode and dilate must be >= 0, got {erode}, {dilate}")
    if erode and dilate:
        raise ValueError("mask erode and dilate exclude each other; give one")
    scale = math.sqrt(abs(float(np.linalg.det(matrix[:, :2]))))  # crop pixels per frame pixel
    return round((dilate - erode) * scale)


# Longer than 60 lines on purpose: one image operation whose steps feed each other (mask, feather, colour, blend).
def paste_back(
    frame: np.ndarray,
    crop: np.ndarray,
    matrix: np.ndarray,
    landmarks: np.ndarray,
    *,
    mask: Literal["hull", "ellipse"] = "hull",
    feather: float = 0.08,
    color_match: Literal["lab", "hist", "none"] = "lab",
    crop_size: int | None = None,
    blend: Literal["alpha", "seamless"] = "alpha",
    erode: float = 0.0,
    dilate: float = 0.0,
    forehead: float = FOREHEAD,
) -> np.ndarray:
    """Blend a (translated) aligned crop back into the frame it was cut from.

    Args:
        frame: H x W x 3 uint8 RGB source frame.
        crop: S x S x 3 uint8 RGB face crop.
        matrix: (2, 3) crop matrix (source pixels -> crop pixels) the face was aligned with.
        landmarks: (68, 2) landmarks in source pixels.
        mask: "hull" or "ellipse", see :func:`face_mask`.
        feather: soft-edge width as a fraction of the crop side.
        color_match: "lab" matches mean and std per Lab channel inside the mask to the
            original face (:func:`match_color_lab`), "hist" each RGB channel's histogram
            (:func:`match_color_hist`); "none" pastes the colours as they are.
        crop_size: the crop side ``matrix`` was made for, when it differs from S (e.g.
            aligned at 256, translated by a 128 px model); default S.
        blend: "alpha" blends along the feathered mask; "seamless" blends the Poisson
            clone of the face into the frame (:func:`cv2.seamlessClone`) along it.
        erode, dilate: frame pixels the mask shrinks or grows by (at most one of them).
        forehead: how far above the brows the mask reaches (:func:`face_outline`; the face
            swap keeps the target's hair out with a lower one).

    Returns:
        H x W x 3 uint8 RGB new frame; pixels outside the warped mask are unchanged.
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or crop.ndim != 3 or crop.shape[0] != crop.shape[1]:
        raise ValueError(f"expected an H x W x 3 frame and an S x S x 3 crop, got {frame.shape}, {crop.shape}")
    if blend not in BLENDS:
        raise ValueError(f"unknown blend {blend!r}; choose {', '.join(BLENDS)}")
    size = crop.shape[0]
    m = np.asarray(matrix, np.float64)
    if crop_size is not None and crop_size != size:
        m = rescale_matrix(m, crop_size, size)
    grow = _grow_px(m, erode, dilate)
    alpha = face_mask(apply(m, landmarks), size, mask=mask, feather=feather, grow=grow, forehead=forehead)
    inside = alpha > 0
    out = frame.copy()
    if not inside.any():
        return out
    crop = _match_color(crop, warp_crop(frame, m, size), inside, color_match)
    # Only the frame region the mask can reach is warped and blended.
    ys, xs = np.nonzero(inside)
    lo_x, hi_x, lo_y, hi_y = xs.min() - 1, xs.max() + 1, ys.min() - 1, ys.max() + 1
    corners = np.array([[lo_x, lo_y], [hi_x, lo_y], [lo_x, hi_y], [hi_x, hi_y]], np.float64)
    back = apply(invert(m), corners)
    h, w = frame.shape[:2]
    x0, y0 = np.maximum(np.floor(back.min(0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(back.max(0)).astype(int) + 2, [w, h])
    if x1 <= x0 or y1 <= y0:
        return out
    # Crop matrix for ROI pixel coordinates: roi (u, v) = frame (u + x0, v + y0).
    m_roi = m.copy()
    m_roi[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    face = cv2.warpAffine(
        crop, m_roi, (x1 - x0, y1 - y0), flags=RESAMPLE | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )
    a = cv2.warpAffine(alpha, m_roi, (x1 - x0, y1 - y0), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    region = out[y0:y1, x0:x1]
    if blend == "seamless":
        face = _seamless(face, region, a > 0, (x0 == 0, y0 == 0, x1 == w, y1 == h))
    blended = cv2.blendLinear(face, np.ascontiguousarray(region), a, 1.0 - a)
    np.copyto(region, blended, where=(a > 0)[..., None])
    return out


def rescale_matrix(matrix: np.ndarray, from_size: int, to_size: int) -> np.ndarray:
    """A crop matrix for a crop of side ``to_size`` instead of ``from_size``.

    Args:
        matrix: (2, 3) crop matrix for ``from_size`` crops.

    Returns:
        (2, 3) float64 matrix; the same source region maps onto the new crop side.
    """
    return np.asarray(matrix, np.float64) * (to_size / from_size)
