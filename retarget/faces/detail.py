"""A swapped face's fine detail matched to the face it replaces, so it sits in the frame's focus.

A swap shows the target's own skin at the sharpness of the target's video, resampled three
times and blended along the flow: pasted into a sharper input (another camera, another codec)
the face reads as soft, as a patch; into a softer one, as cut-out. Compositors match a plate's
grain and focus; this module does the same for each face:

- :func:`skin_region`: where detail is compared, the skin between the lower lids and the chin
  (cheeks, nose, chin) with the eyes, brows and mouth left out: their edges (lashes, glasses,
  teeth, lipstick) belong to one person's features and one moment, not to the video's focus;
- :func:`needed_gain`: the unsharp-mask gain ``g`` for which the variance of the Laplacian of
  ``blur + g (face - blur)`` over that region equals the input face's (exact: the Laplacian is
  linear, so the variance is a quadratic in ``g``);
- :class:`DetailMatch`: per face track, that gain smoothed over frames (its log, an
  exponential mean: a gain that changed every frame would flicker) and kept within
  [:data:`MIN_GAIN`, :data:`MAX_GAIN`], applied to each crop before the paste.
"""

from __future__ import annotations

import math
from typing import Optional

import cv2
import numpy as np

__all__ = ["DetailMatch", "MAX_GAIN", "MIN_GAIN", "needed_gain", "sharpen", "skin_detail", "skin_region"]

#: Blur (sigma, crop px) whose difference from the face is the detail scaled: the finest band,
#: where focus, codec and resampling differ.
SIGMA = 1.0
#: The gains allowed: at most this much more detail (past it, the codec's blocks and noise are
#: what grows; 3 measured a warping-error ratio 1.27 on d19:d18, 2 1.21, none 1.16), and never
#: less: skin differs between people (age, stubble, freckles), and a face softened to match
#: a smoother input lost the target's own detail (d3:d9 0.62 of the input's sharpness, 1.1 kept).
MAX_GAIN, MIN_GAIN = 2.0, 1.0
#: Weight of each new frame's gain in the running (log) mean: about a second at 25 frames/s.
GAIN_MEMORY = 0.08
#: The lower lids (points 40, 41, 46, 47) are moved this share of the eye distance down before
#: they bound the region, so lashes and lid creases stay out.
BELOW_EYES = 0.25
#: The mouth's outer outline is widened by this share of the eye distance before it is cut out.
AROUND_MOUTH = 0.15
#: The jaw line is drawn in towards the nose tip to this share: the face's edge can hold the
#: target's background, which is not pasted.
INSIDE_JAW = 0.85
#: Regions with fewer pixels measure nothing (None).
MIN_PIXELS = 64


def _luma(image: np.ndarray) -> np.ndarray:
    """``H x W x 3`` uint8 RGB (or float) -> ``H x W`` float32 luma in [0, 255]."""
    img = np.asarray(image, np.float32)
    return img if img.ndim == 2 else img @ np.float32([0.299, 0.587, 0.114])


def skin_region(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The cheeks, nose and chin of a face, as an ``H x W`` bool mask.

    Args:
        points: ``(68, 2)`` landmarks (dlib's order) in the image's pixels.
        size: ``(H, W)`` of the image.

    Returns:
        Inside the jaw line (points 0-16, drawn in towards the nose tip to :data:`INSIDE_JAW`) and below the lower lids (moved down by
        :data:`BELOW_EYES` eye distances), without the mouth (its outline widened by
        :data:`AROUND_MOUTH`).
    """
    pts = np.asarray(points, np.float64)
    eye_dist = float(np.hypot(*(pts[36:42].mean(0) - pts[42:48].mean(0))))
    top = pts[[40, 41, 46, 47], 1].max() + BELOW_EYES * eye_dist
    mask = np.zeros(size, np.uint8)
    jaw = pts[30] + (pts[0:17] - pts[30]) * INSIDE_JAW  # off the face's edge: the target's background
    cv2.fillPoly(mask, [np.round(jaw).astype(np.int32)], 1)
    mask[: max(0, int(math.ceil(top)))] = 0
    mouth = pts[48:60]
    centre = mouth.mean(0)
    grown = centre + (mouth - centre) * (1 + AROUND_MOUTH * eye_dist / max(np.ptp(mouth[:, 0]) / 2, 1e-6))
    cv2.fillPoly(mask, [np.round(grown).astype(np.int32)], 0)
    return mask.astype(bool)


def skin_detail(image: np.ndarray, region: np.ndarray) -> Optional[float]:
    """Variance of the Laplacian of ``image``'s luma over ``region`` (H x W bool); None when too small."""
    if int(region.sum()) < MIN_PIXELS:
        return None
    return float(cv2.Laplacian(_luma(image), cv2.CV_32F)[region].var())


def needed_gain(face: np.ndarray, reference: np.ndarray, region: np.ndarray) -> Optional[float]:
    """The gain of :func:`sharpen` that gives ``face`` the detail of ``reference`` over ``region``.

    Args:
        face: ``H x W x 3`` uint8 RGB, the swapped face.
        reference: ``H x W x 3`` uint8 RGB, the input's face on the same grid (its aligned crop).
        region: ``H x W`` bool (:func:`skin_region`).

    Returns:
        ``g >= 0`` with ``var(L(blur + g (face - blur))) = var(L(reference))`` over ``region``
        (unclipped), or None when the region is too small or either face has no detail there.
    """
    want = skin_detail(reference, region)
    if want is None or want <= 1e-6:
        return None
    luma = _luma(face)
    low = cv2.GaussianBlur(luma, (0, 0), SIGMA)
    lap_low = cv2.Laplacian(low, cv2.CV_32F)[region].astype(np.float64)
    lap_high = cv2.Laplacian(luma - low, cv2.CV_32F)[region].astype(np.float64)
    lap_low, lap_high = lap_low - lap_low.mean(), lap_high - lap_high.mean()
    a, b, c = float((lap_high**2).mean()), float((lap_low * lap_high).mean()), float((lap_low**2).mean()) - want
    if a <= 1e-9:
        return None
    disc = b * b - a * c  # a g^2 + 2 b g + c = 0
    return max(0.0, (-b + math.sqrt(disc)) / a) if disc >= 0 else max(0.0, -b / a)


def sharpen(face: np.ndarray, gain: float) -> np.ndarray:
    """``blur + gain (face - blur)`` (an unsharp mask for gain > 1, a blur under 1), uint8 like ``face``."""
    if abs(gain - 1.0) < 1e-3:
        return face
    img = np.asarray(face, np.float32)
    low = cv2.GaussianBlur(img, (0, 0), SIGMA)
    return np.clip(low + gain * (img - low) + 0.5, 0, 255).astype(np.uint8)


class DetailMatch:
    """One face's detail, matched to the input's face frame after frame (see the module).

    Call it with each swapped crop, the input's aligned crop on the same grid and the
    input's landmarks there, in frame order; :meth:`reset` at a new track.

    Attributes:
        gain: the running gain (None before the first measured frame).
        measured, short: frames measured, and of them those that needed more than :data:`MAX_GAIN`
            (the face stayed softer than the input's), over the object's life.
    """

    def __init__(self, memory: float = GAIN_MEMORY) -> None:
        self.memory = memory
        self.gain: Optional[float] = None
        self.measured = self.short = 0

    def reset(self) -> None:
        self.gain = None

    def __call__(self, face: np.ndarray, reference: np.ndarray, points: np.ndarray) -> np.ndarray:
        """``face`` (``S x S x 3`` uint8) with the running gain applied.

        Args:
            face: the swapped face crop.
            reference: the input's face crop (``S x S x 3`` uint8, same grid).
            points: the input's ``(68, 2)`` landmarks in crop pixels.
        """
        need = needed_gain(face, reference, skin_region(points, face.shape[:2]))
        if need is not None:
            self.measured += 1
            self.short += need > MAX_GAIN
            log_need = math.log(min(MAX_GAIN, max(MIN_GAIN, need)))
            if self.gain is None:
                self.gain = math.exp(log_need)
            else:
                self.gain = math.exp((1 - self.memory) * math.log(self.gain) + self.memory * log_need)
        return face if self.gain is None else sharpen(face, self.gain)
