"""``render --target-faces B --refiner R``: every swapped face through the refiner learnt from B's own video.

The refiner (:mod:`retarget.nn.refiner`, trained by ``retarget train-refiner`` on B's face
dataset) turns a warped face of B into what B's camera would have seen: it is applied to
each swapped crop after the warp and before the mouth and the paste
(:func:`retarget.render.swap.swap_items`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from retarget.errors import RetargetError
from retarget.faces.index import FaceIndex

__all__ = ["swap_refiner"]


def swap_refiner(path: str, index: FaceIndex) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
    """The refiner of folder ``path`` as a crops -> crops function (``S x S x 3`` uint8 RGB each), for ``index``'s faces.

    Raises:
        RetargetError: not a refiner, or one that learnt other faces (another crop size or margin).
    """
    from retarget.device import resolve_device
    from retarget.progress import console
    from retarget.render.translate import Translator
    from retarget.run.refiner import describe, load_refiner

    device = resolve_device("auto")
    ref = load_refiner(path, device)
    if ref.data.size != index.size:
        raise RetargetError(f"{path}: learnt {ref.data.size} px faces, the target's are {index.size} px")
    margin = ref.data.face.margin if ref.data.face else None
    if margin is not None and abs(margin - index.face.margin) > 1e-6:
        raise RetargetError(
            f"{path}: learnt faces cut with margin {margin:g}, the target's are cut with {index.face.margin:g}"
        )
    console.print(describe(ref), markup=False)
    return Translator(ref.net, device, "auto")
