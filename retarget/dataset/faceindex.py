"""A face dataset as the swap's :class:`~retarget.faces.index.FaceIndex`: its faces, landmarks in crop pixels.

Read by ``render --target-faces`` (:mod:`retarget.render.swap`) and ``train-refiner``
(:mod:`retarget.train.refiner`), which both need the target person's aligned faces with
their landmarks; this module is their one reader (datasets sit above faces in the layers).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from retarget.errors import RetargetError
from retarget.faces.align import apply
from retarget.faces.index import FaceIndex
from retarget.faces.steady import smooth_tracks

__all__ = ["crop_scale", "face_index", "face_speed"]

#: Landmarks that move with the head only: the nose (27-35) and the eyes' corners.
RIGID = np.r_[27:36, 36, 39, 42, 45]


def face_speed(points: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """How fast each face moves in its video: the mean displacement of its rigid landmarks
    (:data:`RIGID`: nose and eye corners, not a talking mouth or a blink) between its
    neighbours in the same segment, per frame, in the face's eye distances.

    Args:
        points: ``(N, 68, 2)`` landmarks in the video's pixels, in the dataset's order.
        segments: ``(N,)`` the segment of each face (consecutive frames share one).

    Returns:
        ``(N,)`` float64 >= 0 (0 for a face alone in its segment).
    """
    n = len(points)
    before = np.arange(n) - 1
    after = np.arange(n) + 1
    before[0], after[-1] = 0, n - 1
    before = np.where(segments[before] == segments, before, np.arange(n))
    after = np.where(segments[after] == segments, after, np.arange(n))
    steps = np.maximum(after - before, 1)
    moved = np.linalg.norm(points[after][:, RIGID] - points[before][:, RIGID], axis=2).mean(1) / steps
    eyes = np.linalg.norm(points[:, 36:42].mean(1) - points[:, 42:48].mean(1), axis=1)
    return moved / np.maximum(eyes, 1e-6)


def face_index(path: str) -> FaceIndex:
    """The faces of a dataset written by ``retarget extract --align face``, landmarks in crop pixels,
    smoothed over time within each segment (:func:`~retarget.faces.steady.smooth_tracks`).

    Raises:
        RetargetError: not a dataset, not face-aligned, without landmarks, or under 2 faces.
    """
    from retarget.dataset.manifest import read_dataset

    if Path(path).is_file():
        raise RetargetError(
            f"{path}: a file, not a face dataset; extract the target first: "
            f"retarget extract {path} -o FOLDER --align face --size 256"
        )
    ds = read_dataset(path)  # RetargetError for a missing folder or a broken manifest
    if ds.align != "face" or ds.face is None or ds.plain:
        raise RetargetError(f"{path}: not a face dataset; extract the target with --align face")
    kept = [f for f in ds.frames if f.landmarks is not None and f.matrix is not None]
    if len(kept) < 2:
        raise RetargetError(f"{path}: {len(kept)} faces with landmarks; the swap needs at least 2")
    points = np.stack([apply(np.asarray(f.matrix, np.float64), f.landmarks) for f in kept])
    segments = np.array([f.segment for f in kept])
    speed = face_speed(np.stack([np.asarray(f.landmarks, np.float64) for f in kept]), segments)
    return FaceIndex(
        root=ds.root,
        files=[ds.root / f.file for f in kept],
        points=smooth_tracks(points, segments),  # the detector's jitter would shimmer in the swap
        segments=segments,
        size=int(ds.size),
        face=ds.face,
        speed=speed,
    )


def crop_scale(path: str) -> float:
    """Crop pixels per video pixel of a face dataset's faces (the median; under 1: the video held
    each face at more pixels than the crop keeps). 1.0 when the dataset has no face matrices."""
    from retarget.dataset.manifest import read_dataset

    scales = [
        float(np.hypot(*np.asarray(f.matrix, np.float64)[:, 0]))
        for f in read_dataset(path).frames
        if f.matrix is not None
    ]
    return float(np.median(scales)) if scales else 1.0
