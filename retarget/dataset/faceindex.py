"""A face dataset as the swap's :class:`~retarget.faces.retrieval.FaceIndex`: its faces, landmarks in crop pixels.

Read by ``render --target-faces`` (:mod:`retarget.render.swap`) and ``train-refiner``
(:mod:`retarget.train.refiner`), which both need the target person's aligned faces with
their landmarks; this module is their one reader (datasets sit above faces in the layers).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from retarget.errors import RetargetError
from retarget.faces.align import apply
from retarget.faces.retrieval import FaceIndex
from retarget.faces.steady import smooth_tracks

__all__ = ["crop_scale", "face_index"]


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
    return FaceIndex(
        root=ds.root,
        files=[ds.root / f.file for f in kept],
        points=smooth_tracks(points, segments),  # the detector's jitter would shimmer in the swap
        segments=segments,
        size=int(ds.size),
        face=ds.face,
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
