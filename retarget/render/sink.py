"""The sink stage of render: in frame order, stabilize, compose and write.

:class:`Sink` is called with each translated batch, in order, in the encode thread: with
``--stabilize`` it blends every translation with the previous one warped along the
source's motion (:meth:`retarget.render.stabilize.Stabilizer.blend`, which must see the
frames in order; each face of a frame with its own lane's stabilizer), composes the output picture (:class:`retarget.render.compose.Composer`)
and hands it to ``write`` (:meth:`retarget.video.writer.VideoWriter.write`, or a list's
``append`` in a test) with the frame's timestamp.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from retarget.render.source import Lanes


class Sink:
    """Write translated items in order (see the module).

    Args:
        write: ``write(picture, pts)``; picture ``H x W x 3`` uint8 RGB.
        compose: item -> picture.
        stabilizer: a :class:`~retarget.render.stabilize.Stabilizer` (its ``blend`` half),
            :class:`~retarget.render.source.Lanes` of them (one per face lane), or None.
        advance: called with the number of frames written after each batch (progress).
        finish: called with each face item that has a result, after the stabilizer, before the
            paste (a swap's detail match, :class:`~retarget.render.swap.FaceDetail`); it may replace ``result``.

    Attributes:
        frames: items written so far.
    """

    def __init__(
        self,
        write: Callable[[np.ndarray, Optional[int]], Any],
        compose: Callable[[Any], np.ndarray],
        stabilizer: Any = None,
        advance: Optional[Callable[[int], Any]] = None,
        finish: Optional[Callable[[Any], None]] = None,
    ) -> None:
        self.write = write
        self.compose = compose
        self.stabilizer = Lanes.of(stabilizer) if stabilizer is not None else None  # per face lane
        self.advance = advance
        self.finish = finish
        self.frames = 0

    def __call__(self, batch: list) -> None:
        """Stabilize, compose and write the items of ``batch`` (:class:`~retarget.render.source.Item` s)."""
        for item in batch:
            for face in item.faces() if self.stabilizer is not None or self.finish is not None else []:
                if face.result is None:
                    continue
                if self.stabilizer is not None:
                    face.result = self.stabilizer[face.lane].blend(face.result, face.link)
                if self.finish is not None:
                    self.finish(face)
            self.write(self.compose(item), item.pts)
        self.frames += len(batch)
        if self.advance is not None:
            self.advance(len(batch))
