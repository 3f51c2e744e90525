"""Landmark error between the faces of a source frame and its translation.

Both frames go through one :class:`~retarget.faces.backends.FaceBackend` (detect, then
68 iBUG-300W landmarks). The source's face is its largest detection; the output's is
the detection whose centre lies nearest to it (and within one source-face width, else
the output counts as having no face). The error is the mean point-to-point distance
over the 68 landmarks divided by the source's inter-ocular distance (outer eye corners,
points 36 and 45): 0 when expression and pose were kept exactly, about 0.05 for two
runs of a landmark detector on slightly different renderings of one face.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np

from retarget.faces.backends import FaceBackend

#: Outer eye corners in the 68-point iBUG-300W order (0-based).
LEFT_EYE_OUTER = 36
RIGHT_EYE_OUTER = 45


def inter_ocular(points: np.ndarray) -> float:
    """Distance (px) between the outer eye corners of ``(68, 2)`` landmarks."""
    return float(np.hypot(*(points[RIGHT_EYE_OUTER] - points[LEFT_EYE_OUTER])))


def landmark_error(source: np.ndarray, output: np.ndarray) -> float:
    """Mean distance between corresponding landmarks over the source's inter-ocular distance.

    Args:
        source, output: ``(68, 2)`` landmark arrays (x, y) in the same pixel frame.

    Returns:
        The normalised error (0 = identical); NaN when the source's eye corners coincide.
    """
    source = np.asarray(source, np.float64)
    output = np.asarray(output, np.float64)
    if source.shape != (68, 2) or output.shape != (68, 2):
        raise ValueError(f"expected two (68, 2) landmark arrays, got {source.shape} and {output.shape}")
    iod = inter_ocular(source)
    if iod <= 1e-6:
        return float("nan")
    return float(np.hypot(*(output - source).T).mean() / iod)


def _centre(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0])


def largest_box(boxes: Sequence[np.ndarray]) -> Optional[np.ndarray]:
    """The box ``[x0, y0, x1, y1]`` of largest area, or None for no boxes."""
    if not boxes:
        return None
    return max(boxes, key=lambda b: float((b[2] - b[0]) * (b[3] - b[1])))


def matching_box(boxes: Sequence[np.ndarray], ref: np.ndarray) -> Optional[np.ndarray]:
    """The box whose centre is nearest ``ref``'s, if closer than ``ref``'s width; else None."""
    if not boxes:
        return None
    c = _centre(ref)
    best = min(boxes, key=lambda b: float(np.hypot(*(_centre(b) - c))))
    if float(np.hypot(*(_centre(best) - c))) > float(ref[2] - ref[0]):
        return None
    return best


@dataclass(frozen=True)
class FaceComparison:
    """How one source frame's face compares with its output's."""

    source_found: bool  # the source frame has a face
    output_found: bool  # the output has a face at the source face's place
    error: Optional[float]  # normalised landmark error when both were found
    source_box: Optional[np.ndarray] = None  # [x0, y0, x1, y1] of the source face, frame pixels
    source_points: Optional[np.ndarray] = None  # (68, 2) landmarks of the source face
    output_box: Optional[np.ndarray] = None  # [x0, y0, x1, y1] of the matching output face
    output_points: Optional[np.ndarray] = None  # (68, 2) landmarks of the output face


class FaceComparer:
    """Detects faces and landmarks in frame pairs and scores them.

    Args:
        backend: a landmark backend (``get_backend("dlib")``, or a fake in tests).
        detect_size: the detector sees the frame scaled to this longest side (px);
            when it finds nothing there it tries twice that, as extract's tracker does.
    """

    def __init__(self, backend: FaceBackend, detect_size: int = 480) -> None:
        self.backend = backend
        self.detect_size = int(detect_size)

    def _detect_at(self, image: np.ndarray, side: int) -> list[np.ndarray]:
        h, w = image.shape[:2]
        scale = side / max(h, w)
        if abs(scale - 1.0) < 1e-3:
            return [np.asarray(b, np.float64) for b in self.backend.detect(image)]
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=interp)
        return [np.asarray(b, np.float64) / scale for b in self.backend.detect(small)]

    def faces(self, image: np.ndarray) -> list[np.ndarray]:
        """Face boxes ``[x0, y0, x1, y1]`` in ``image`` pixels (``H x W x 3`` uint8 RGB)."""
        boxes = self._detect_at(image, self.detect_size)
        return boxes or self._detect_at(image, 2 * self.detect_size)

    def _work(self, image: np.ndarray) -> np.ndarray:
        if getattr(self.backend, "accepts_gray", False) and image.ndim == 3:
            return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        return image

    def compare(self, source: np.ndarray, output: np.ndarray) -> FaceComparison:
        """Landmark error of ``output``'s face against ``source``'s.

        Args:
            source, output: ``H x W x 3`` uint8 RGB frames of one size (the output is the
                translation of the source, in the same pixel frame).
        """
        src_img, out_img = self._work(source), self._work(output)
        src_box = largest_box(self.faces(src_img))
        if src_box is None:
            return FaceComparison(False, bool(self.faces(out_img)), None)
        src_pts = self.backend.landmarks(src_img, src_box)
        out_box = matching_box(self.faces(out_img), src_box)
        if out_box is None:
            return FaceComparison(True, False, None, src_box, src_pts)
        out_pts = self.backend.landmarks(out_img, out_box)
        return FaceComparison(True, True, landmark_error(src_pts, out_pts), src_box, src_pts, out_box, out_pts)

    def face(self, image: np.ndarray) -> Optional[tuple[np.ndarray, np.ndarray]]:
        """The largest face of ``image`` (``H x W x 3`` uint8 RGB): (box, ``(68, 2)`` landmarks), or None."""
        work = self._work(image)
        box = largest_box(self.faces(work))
        return None if box is None else (box, self.backend.landmarks(work, box))
