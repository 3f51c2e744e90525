"""``retarget render --target-faces B_FACES``: a face swap with no trained model.

Every face of the input is replaced by the target person's own face, taken from a face
dataset of them (``retarget extract --align face``): the frame of nearest expression and
pose, warped to move as the input's face moves (:class:`~retarget.faces.retrieval.FaceSwap`).
The input is aligned with the dataset's face options at its size, so the crops match, and
the rest is render's usual face path (the plan: :func:`retarget.render.plan.plan_swap`): paste along the mask (an outline inside both faces,
:func:`~retarget.faces.retrieval.mask_points`, reaching just above the brows), colour match, blend, ``--stabilize``,
``--start/--end``, sound kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from retarget.errors import RetargetError
from retarget.faces.align import apply, invert
from retarget.faces.retrieval import FaceIndex, FaceSwap, mask_points

__all__ = ["face_index", "swap_items"]


def face_index(path: str) -> FaceIndex:
    """The faces of a dataset written by ``retarget extract --align face``, landmarks in crop pixels.

    Raises:
        RetargetError: not a dataset, not face-aligned, without landmarks, or under 2 faces.
    """
    from pathlib import Path

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
    return FaceIndex(
        root=ds.root,
        files=[ds.root / f.file for f in kept],
        points=points.astype(np.float64),
        segments=np.array([f.segment for f in kept]),
        size=int(ds.size),
        face=ds.face,
    )


def swap_items(batch: list[Any], swap: FaceSwap) -> list[Any]:
    """The translate stage of a swap: set ``result`` and ``mask_landmarks`` of each item with a face.

    A frame without a face, or a face of a new track, starts the swap's continuity afresh.
    Returns ``batch``.
    """
    for item in batch:
        if item.net_input is None or item.landmarks is None:
            swap.reset()
            continue
        if swap.track != item.track:
            swap.reset()
            swap.track = item.track
        matrix = np.asarray(item.matrix, np.float64)
        points = apply(matrix, np.asarray(item.landmarks, np.float64))
        out = swap(points)
        item.result = out.image
        item.mask_landmarks = apply(invert(matrix), mask_points(points, out.points)).astype(np.float32)
    return batch
