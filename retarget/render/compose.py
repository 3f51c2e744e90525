"""The compose stage of render: an item -> the output picture.

:class:`Composer` puts a translation back the way it was taken: an aligned face is pasted
along its mask (:func:`retarget.faces.paste.paste_back`; every face of the frame in turn), a square or whole-frame cut is
upscaled into its region of the frame (``--upscale bilinear`` or ``detail``, see
:mod:`retarget.render.upscale`; outside the region the frame keeps the input), or, with
``--output-size model``, the translation is the picture; ``--side-by-side`` puts the input
on its left (:func:`side_by_side`). :func:`face_paste` binds render's blend options
(``--mask``, ``--feather``, ``--color-match``, ``--blend``, ``--mask-erode``, ``--mask-dilate``)
and the face enhancer (``--enhancer``) to the paste.

The crop geometry (cuts, their matrices, ``place_back``) lives in :mod:`retarget.geometry`,
shared with extract.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Optional

import cv2
import numpy as np

from retarget.faces.paste import FOREHEAD
from retarget.geometry import Cut, place_back

__all__ = ["Composer", "face_paste", "side_by_side"]


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left`` and ``right`` (H x W x 3 uint8) next to each other; ``left`` is resized to
    ``right``'s height when they differ (e.g. ``--output-size model``).

    Returns:
        H_r x (W_l' + W_r) x 3 uint8.
    """
    if left.shape[0] != right.shape[0]:
        h = right.shape[0]
        w = max(1, round(left.shape[1] * h / left.shape[0]))
        left = cv2.resize(left, (w, h), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(np.concatenate([left, right], axis=1))


def face_paste(
    cfg: Any, enhance: Optional[Callable[[list[np.ndarray]], list[np.ndarray]]] = None, forehead: float = FOREHEAD
) -> Callable[..., np.ndarray]:
    """``paste(frame, crop, matrix, landmarks) -> frame`` with the blend options of ``cfg`` (a
    :class:`~retarget.config.RenderConfig`) bound: :func:`retarget.faces.paste.paste_back`.

    ``enhance`` (``--enhancer``): crops ``S x S x 3`` -> larger crops ``kS x kS x 3`` of the same
    region, applied to each translated face before the paste (the matrix still maps to ``S``).
    ``forehead``: the mask's reach above the brows (:func:`retarget.faces.paste.face_outline`).
    """
    from retarget.faces.paste import paste_back

    paste = functools.partial(
        paste_back,
        mask=cfg.mask,
        feather=cfg.feather,
        color_match=cfg.color_match,
        blend=cfg.blend,
        erode=cfg.mask_erode,
        dilate=cfg.mask_dilate,
        forehead=forehead,
    )
    if enhance is None:
        return paste

    def enhanced(frame: np.ndarray, crop: np.ndarray, matrix: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return paste(frame, enhance([crop])[0], matrix, landmarks, crop_size=crop.shape[0])

    return enhanced


@dataclass(frozen=True)
class Composer:
    """Item -> output picture (see the module).

    Attributes:
        fallback: the model-size picture of a frame that has no translation (face mode
            without a face, ``--output-size model``): this cut of the frame.
        output_size: ``"source"`` (the frame's size) or ``"model"`` (the translation's).
        side_by_side: the input on the left of the picture.
        upscale: ``"bilinear"`` or ``"detail"`` (cuts only).
        paste: face mode: ``paste(frame, crop, matrix, landmarks) -> frame`` (the mask options
            bound); None: cuts are placed back.
    """

    fallback: Cut
    output_size: str = "source"
    side_by_side: bool = False
    upscale: str = "bilinear"
    paste: Optional[Callable[..., np.ndarray]] = None

    def __call__(self, item: Any) -> np.ndarray:
        """The output picture of ``item`` (a :class:`retarget.render.source.Item`), ``H x W x 3`` uint8."""
        if self.output_size == "model":
            picture = item.result if item.result is not None else self.fallback.apply(item.image)
        elif self.paste is not None:
            picture = item.image if getattr(item, "backdrop", None) is None else item.backdrop
            for face in item.faces() if hasattr(item, "faces") else [item]:  # every face of the frame, in turn
                if face.result is not None:
                    outline = face.landmarks if getattr(face, "mask_landmarks", None) is None else face.mask_landmarks
                    picture = self.paste(picture, face.result, face.matrix, outline)
        elif item.result is None:
            picture = item.image
        elif self.upscale == "detail":
            from retarget.render.upscale import place_back_detail

            picture = place_back_detail(item.image, item.result, item.net_input, item.matrix)
        else:
            picture = place_back(item.image, item.result, item.matrix)
        if self.side_by_side:
            picture = side_by_side(item.image, picture)
        return picture
