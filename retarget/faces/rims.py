"""The input's glasses where the swapped face does not reach: found, and painted out.

A face swap pastes the target's face inside an outline both faces share, reaching just
above the brows. When the input wears glasses, their rims run past that outline, and the
arms on to the ears: pasted over, the input's glasses would stay as a ghost at the sides
of the target's face. This module finds them and paints them out of the frame the face
is pasted onto:

- :func:`bridge_line`: glasses bridge the nose between the eyes, a thin horizontal line
  no bare face has there. Its contrast (grey levels) measured on the shared talking heads:
  5-6 on the two without glasses (at most 9), 15-49 on the three with (at least 7);
- :class:`GlassesGate`: the running median of that contrast over a face's track, so the
  decision is steady (a frame's value jumps with the light) and the threshold
  :data:`WEARS_GLASSES` lies between the two groups;
- :func:`clear_rims`: thin lines (a morphological top-hat and black-hat about a tenth of
  the eye distance across) in a band around the eyes and within reach of the face, above
  a share of the bridge's contrast, painted out of a copy of the frame (:func:`cv2.inpaint`,
  Telea). Inside the pasted face the painting is covered; what shows is the rims and arms
  beyond it, gone;
- :func:`wears_glasses`: whether the *target* wears glasses (the median bridge over some of
  their faces). Then the input's are kept: their arms carry the target's rims on to the
  ears, where painted out they would leave the target's glasses floating without arms.
"""

from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np

__all__ = ["GlassesGate", "WEARS_GLASSES", "bridge_line", "clear_rims", "wears_glasses"]

#: Running-median bridge contrast (grey levels) above which a face wears glasses.
WEARS_GLASSES = 10.0
#: ... and below which a face said to wear them no longer does (a margin against toggling).
TAKES_OFF = 7.0
#: Frames of a track before :class:`GlassesGate` decides (1: from the first frame; waiting
#: made the glasses vanish a few frames in, a jump that cost more steadiness than a rare
#: wrong first guess).
GATE_FRAMES = 1
#: Frames of a track the running median looks back over.
GATE_MEMORY = 25
#: Lines weaker than this share of the face's bridge contrast are left (skin, shading).
LINE_SHARE = 0.25
#: The weakest line painted out (grey levels), whatever the bridge: below it, hair and skin
#: texture (on d12, whose hair falls over her temples, 6 painted out her hair and flickered).
MIN_LINE = 10.0
#: Line probes' width, as a share of the eye distance (rims are a few pixels wide).
PROBE = 0.1
#: How far the band reaches beyond the face (eye distances): sideways to the ears, up and down.
REACH_SIDE, REACH_UP, REACH_DOWN = 0.7, 0.15, 0.1
#: How far from the face outline a line may lie and still be the glasses' (eye distances).
NEAR_FACE = 0.5
#: Telea's inpainting radius (px). A smooth fill (a normalised convolution) measured the same
#: steadiness on d19:d18 (warping-error ratio 1.13 against 1.12) and smeared the face's edge more.
INPAINT_RADIUS = 3


def _eye_distance(landmarks: np.ndarray) -> float:
    return float(np.linalg.norm(landmarks[36:42].mean(0) - landmarks[42:48].mean(0)))


def _hats(gray: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Thin bright or dark structures narrower than ``kernel``: max of top-hat and black-hat, float32."""
    top = cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, kernel)
    black = cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, kernel)
    return np.maximum(top, black).astype(np.float32)


def bridge_line(image: np.ndarray, landmarks: np.ndarray) -> float:
    """Contrast (grey levels) of the strongest horizontal thin line across the nose between the eyes.

    Args:
        image: ``H x W x 3`` uint8 RGB frame.
        landmarks: ``(68, 2)`` the face's landmarks in frame pixels.

    Returns:
        The peak, over the rows between the brows and the nose's upper half, of the mean
        line response across the bridge; 0.0 where the region falls outside the frame.
    """
    lm = np.asarray(landmarks, np.float64)
    e = _eye_distance(lm)
    x = lm[27, 0]
    y0 = int(round((lm[21, 1] + lm[22, 1]) / 2 + 0.08 * e))
    y1 = int(round(lm[29, 1]))
    x0, x1 = int(round(x - PROBE * e)), int(round(x + PROBE * e)) + 1
    h, w = image.shape[:2]
    pad = int(round(PROBE * e)) + 2
    if y1 - y0 < 3 or x0 - pad < 0 or y0 - pad < 0 or x1 + pad > w or y1 + pad > h:
        return 0.0
    gray = cv2.cvtColor(np.ascontiguousarray(image[y0 - pad : y1 + pad, x0 - pad : x1 + pad]), cv2.COLOR_RGB2GRAY)
    k = max(5, int(round(PROBE * e)) | 1)
    resp = _hats(gray, cv2.getStructuringElement(cv2.MORPH_RECT, (1, k)))  # a vertical probe: level lines
    return float(resp[pad:-pad, pad:-pad].mean(1).max())


class GlassesGate:
    """Whether a face's track wears glasses: the running median of :func:`bridge_line` over its
    last frames, on above ``threshold``, off again only below ``off`` (hysteresis)."""

    def __init__(self, threshold: float = WEARS_GLASSES, off: float = TAKES_OFF) -> None:
        self.threshold, self.off = float(threshold), float(off)
        self.reset()

    def reset(self) -> None:
        """A new track: decide afresh."""
        self.values: list[float] = []
        self.on = False

    def __call__(self, image: np.ndarray, landmarks: np.ndarray) -> Optional[float]:
        """Take in one frame; the track's bridge contrast when it wears glasses, else None."""
        self.values = (self.values + [bridge_line(image, landmarks)])[-GATE_MEMORY:]
        if len(self.values) < GATE_FRAMES:
            return None
        level = float(np.median(self.values))
        self.on = level >= (self.off if self.on else self.threshold)
        return level if self.on else None


def wears_glasses(faces: Sequence[tuple[np.ndarray, np.ndarray]]) -> bool:
    """Whether the person of these faces wears glasses: the median :func:`bridge_line` of
    ``(image, landmarks)`` pairs (``S x S x 3`` uint8 RGB, ``(68, 2)`` px) reaches :data:`WEARS_GLASSES`."""
    values = [bridge_line(image, points) for image, points in faces]
    return bool(values) and float(np.median(values)) >= WEARS_GLASSES


def clear_rims(image: np.ndarray, landmarks: np.ndarray, bridge: float) -> np.ndarray:
    """``image`` with the thin lines around the eyes, where glasses run, painted out.

    Args:
        image: ``H x W x 3`` uint8 RGB frame (not changed).
        landmarks: ``(68, 2)`` the face's landmarks in frame pixels.
        bridge: the face's bridge contrast (:class:`GlassesGate`): lines weaker than
            :data:`LINE_SHARE` of it (or :data:`MIN_LINE`) stay.

    Returns:
        A new ``H x W x 3`` uint8 RGB frame; outside the band around the eyes, ``image``'s pixels.
    """
    lm = np.asarray(landmarks, np.float64)
    e = _eye_distance(lm)
    h, w = image.shape[:2]
    x0 = int(max(0, np.floor(min(lm[0, 0], lm[17, 0]) - REACH_SIDE * e)))
    x1 = int(min(w, np.ceil(max(lm[16, 0], lm[26, 0]) + REACH_SIDE * e)))
    y0 = int(max(0, np.floor(lm[17:27, 1].min() - REACH_UP * e)))
    y1 = int(min(h, np.ceil(lm[30, 1] + REACH_DOWN * e)))
    out = image.copy()
    if x1 - x0 < 8 or y1 - y0 < 8:
        return out
    region = np.ascontiguousarray(image[y0:y1, x0:x1])
    k = max(5, int(round(PROBE * e)) | 1)
    resp = _hats(cv2.cvtColor(region, cv2.COLOR_RGB2GRAY), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    lines = (resp >= max(MIN_LINE, LINE_SHARE * bridge)).astype(np.uint8)
    near = np.zeros_like(lines)  # within reach of the face: not the background's lines
    hull = cv2.convexHull((lm[:27] - [x0, y0]).astype(np.int32))
    cv2.fillConvexPoly(near, hull, 1)
    reach = max(3, int(round(NEAR_FACE * e)))
    near = cv2.dilate(near, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1)))
    lines = cv2.dilate(lines * near, np.ones((5, 5), np.uint8))  # with the lines' soft edges
    if lines.any():
        out[y0:y1, x0:x1] = cv2.inpaint(region, lines, INPAINT_RADIUS, cv2.INPAINT_TELEA)
    return out
