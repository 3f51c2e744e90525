"""Does the output face move like the source's? Mouth and eye openings over time, and sharpness.

From the 68 iBUG-300W landmarks (0-based) that :class:`~retarget.eval.faces.FaceComparer`
finds in both frames:

* **mouth opening** ``|p62 - p66| / |p36 - p45|``: the gap between the middles of the
  inner lips over the inter-ocular distance (outer eye corners); about 0.03 closed,
  0.1-0.2 mid-word;
* **eye opening**: per eye, the mean of its two eyelid distances over its width
  (``(|p37 - p41| + |p38 - p40|) / 2 / |p36 - p39|`` and ``(|p43 - p47| + |p44 - p46|)
  / 2 / |p42 - p45|``), averaged over both eyes; about 0.3 open, under 0.15 in a blink.

Their Pearson correlation between source and output over the frames says whether the
output opens its mouth and blinks when the source does (1 = in step). **Sharpness** is
the variance of the Laplacian of the luma inside the central part of the source's face
box (:data:`SHARPNESS_INNER` of its width and height: eyes, nose, mouth, where a pasted
face replaces every pixel), in the output and in the source: their ratio is about 1 for
a face as detailed as the source's, well under 1 for a blurred one (a blur also drifts
towards every identity), above 1 for added noise or checkerboard. The whole box would
count the paste's seam and the hair and cheeks the mask leaves alone, and read the same
for any face pasted inside them.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import cv2
import numpy as np

from retarget.eval.faces import FaceComparison, inter_ocular
from retarget.faces.gaze import iris_offset

#: Middles of the upper and lower inner lip.
MOUTH_INNER = (62, 66)
#: Per eye: the two (upper, lower) eyelid point pairs and the (outer, inner) corners.
EYES = (
    (((37, 41), (38, 40)), (36, 39)),
    (((43, 47), (44, 46)), (42, 45)),
)
#: Fewer frames than this with both values give no correlation.
MIN_FRAMES = 3
#: Share of the face box's width and height, about its centre, where sharpness is measured:
#: inside the paste mask on any face (the box's rim holds the seam, cheeks and hairline,
#: which made renders of very different faces read alike, 0.39, on the face benchmark).
SHARPNESS_INNER = 0.6


def _dist(points: np.ndarray, i: int, j: int) -> float:
    return float(np.hypot(*(points[i] - points[j])))


def mouth_opening(points: np.ndarray) -> float:
    """Inner-lip gap over the inter-ocular distance of ``(68, 2)`` landmarks; NaN without eyes apart."""
    pts = np.asarray(points, np.float64)
    iod = inter_ocular(pts)
    return _dist(pts, *MOUTH_INNER) / iod if iod > 1e-6 else float("nan")


def eye_opening(points: np.ndarray) -> float:
    """Mean over both eyes of (mean eyelid distance / eye width) of ``(68, 2)`` landmarks; NaN if degenerate."""
    pts = np.asarray(points, np.float64)
    values = []
    for lids, corners in EYES:
        width = _dist(pts, *corners)
        if width <= 1e-6:
            return float("nan")
        values.append(np.mean([_dist(pts, *pair) for pair in lids]) / width)
    return float(np.mean(values))


def face_sharpness(image: np.ndarray, box: np.ndarray, inner: float = 1.0) -> float:
    """Variance of the Laplacian of the luma inside ``box``; NaN for a region under 3 px.

    Args:
        image: ``H x W x 3`` uint8 RGB (or ``H x W`` luma).
        box: ``[x0, y0, x1, y1]`` in image pixels; clipped to the image.
        inner: the share (0, 1] of the box's width and height measured, about its centre
            (:data:`SHARPNESS_INNER` for a face box).
    """
    h, w = image.shape[:2]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    hw, hh = (box[2] - box[0]) * inner / 2, (box[3] - box[1]) * inner / 2
    x0, y0 = max(0, int(math.floor(cx - hw))), max(0, int(math.floor(cy - hh)))
    x1, y1 = min(w, int(math.ceil(cx + hw))), min(h, int(math.ceil(cy + hh)))
    if x1 - x0 < 3 or y1 - y0 < 3:
        return float("nan")
    patch = image[y0:y1, x0:x1]
    if patch.ndim == 3:
        patch = cv2.cvtColor(np.ascontiguousarray(patch), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(patch, cv2.CV_64F).var())


def _gaze(image: np.ndarray, points: np.ndarray) -> Optional[float]:
    """The irises' mean offset along the eyes (eye widths, :func:`retarget.faces.gaze.iris_offset`); None
    when an eye is shut or shows no iris."""
    offset = iris_offset(image, points)
    return None if offset is None else float(offset[:, 0].mean())


def _finite_pairs(x: Sequence[Optional[float]], y: Sequence[Optional[float]]) -> tuple[np.ndarray, np.ndarray]:
    pairs = [(a, b) for a, b in zip(x, y) if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]
    arr = np.asarray(pairs, np.float64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def pearson(
    x: Sequence[Optional[float]], y: Sequence[Optional[float]], min_frames: int = MIN_FRAMES
) -> Optional[float]:
    """Pearson correlation of two series over the positions where both are finite.

    Returns:
        The correlation in [-1, 1]; None with fewer than ``min_frames`` such positions or
        when either series does not vary there.
    """
    a, b = _finite_pairs(x, y)
    if len(a) < min_frames:
        return None
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    if den <= 1e-12:
        return None
    return float(np.clip((a * b).sum() / den, -1.0, 1.0))


class ExpressionTrack:
    """Per-frame mouth and eye openings and face sharpness of source and output.

    Call :meth:`add` once per scored frame (with None when the frame had no face
    comparison), then read :meth:`summary` and :meth:`per_frame`.
    """

    KEYS = (
        "mouth_source", "mouth_output", "eyes_source", "eyes_output", "sharp_source", "sharp_output",
        "gaze_source", "gaze_output",
    )  # fmt: skip

    def __init__(self) -> None:
        self.values: dict[str, list[Optional[float]]] = {k: [] for k in self.KEYS}

    def add(self, source: np.ndarray, output: np.ndarray, found: Optional[FaceComparison]) -> None:
        """Measure one frame pair (``H x W x 3`` uint8 RGB, one size) from its face comparison."""
        row: dict[str, Optional[float]] = dict.fromkeys(self.KEYS)
        if found is not None and found.source_points is not None:
            row["mouth_source"] = mouth_opening(found.source_points)
            row["eyes_source"] = eye_opening(found.source_points)
        if found is not None and found.output_points is not None:
            row["mouth_output"] = mouth_opening(found.output_points)
            row["eyes_output"] = eye_opening(found.output_points)
        if found is not None and found.source_points is not None and found.output_points is not None:
            row["gaze_source"] = _gaze(source, found.source_points)
            row["gaze_output"] = _gaze(output, found.output_points)
        if found is not None and found.source_box is not None:
            row["sharp_source"] = face_sharpness(source, found.source_box, SHARPNESS_INNER)
            row["sharp_output"] = face_sharpness(output, found.source_box, SHARPNESS_INNER)
        for k, v in row.items():
            self.values[k].append(v)

    def summary(self) -> dict[str, Any]:
        """``expression`` and ``sharpness``, each over the frames where source and output were measured.

        ``expression``: ``mouth_correlation``, ``eye_correlation`` (:func:`pearson`, None
        when undefined), the mean openings ``mouth_source``, ``mouth_output``,
        ``eyes_source``, ``eyes_output``, the source's standard deviations
        ``mouth_source_sd``, ``eyes_source_sd``, and ``frames``. ``sharpness``: the mean
        Laplacian variances ``source`` and ``output``, ``ratio`` output / source, ``frames``.
        """
        v = self.values
        mouth = _finite_pairs(v["mouth_source"], v["mouth_output"])
        eyes = _finite_pairs(v["eyes_source"], v["eyes_output"])
        sharp = _finite_pairs(v["sharp_source"], v["sharp_output"])
        gaze = _finite_pairs(v["gaze_source"], v["gaze_output"])
        src, out = (float(s.mean()) if len(s) else None for s in sharp)
        return {
            "expression": {
                "mouth_correlation": pearson(*mouth),
                "eye_correlation": pearson(*eyes),
                "mouth_source": float(mouth[0].mean()) if len(mouth[0]) else None,
                "mouth_output": float(mouth[1].mean()) if len(mouth[0]) else None,
                "eyes_source": float(eyes[0].mean()) if len(eyes[0]) else None,
                "eyes_output": float(eyes[1].mean()) if len(eyes[0]) else None,
                # how much the source moves: a correlation with a nearly still mouth (sd under ~0.02) is noise
                "mouth_source_sd": float(mouth[0].std()) if len(mouth[0]) else None,
                "eyes_source_sd": float(eyes[0].std()) if len(eyes[0]) else None,
                # where the irises look, along the eye (retarget.faces.gaze.iris_offset): in step, and how far
                "gaze_correlation": pearson(*gaze),
                "gaze_source_sd": float(gaze[0].std()) if len(gaze[0]) else None,
                "gaze_output_sd": float(gaze[1].std()) if len(gaze[0]) else None,
                "frames": len(mouth[0]),
            },
            "sharpness": {
                "source": src,
                "output": out,
                "ratio": out / src if src is not None and out is not None and src > 1e-9 else None,
                "frames": len(sharp[0]),
            },
        }

    def per_frame(self) -> dict[str, list[Optional[float]]]:
        """Equal-length lists, one entry per :meth:`add` (None where not measured)."""
        return {k: [x if x is not None and math.isfinite(x) else None for x in vals] for k, vals in self.values.items()}
