"""Crop geometry shared by extract, render and the stabiliser.

Matrices are ``2 x 3`` float64 affine maps ``source pixels -> crop pixels`` acting on
``[x, y, 1]`` (pixel centres at integer coordinates, the convention of
``cv2.warpAffine``), the same as :mod:`retarget.faces.align`'s face crops
(:func:`retarget.faces.align.crop_matrix`).

- :class:`Cut`: an axis-aligned source region resized to an output size, the frames of
  ``--align none``; :func:`square_cut` (``--frame square``: the centre square of the frame
  or of its ``--crop`` region) and :func:`full_cut` (``--frame full``: the whole frame or
  region, its aspect kept, short side given); :func:`frame_cut` picks one by name;
- :func:`none_matrix` / :func:`crop_none`: the square cut as extract used it first;
- :func:`center_crop` / :func:`center_crop_matrix`: the square cut of one image, as render
  needs it;
- :func:`place_back`: the inverse, upscaling a translated cut into its frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

#: An extract ``--crop`` region: ``(x, y, w, h)`` in source pixels.
Region = tuple[int, int, int, int]
#: The two ``--frame`` modes of ``--align none``.
FRAME_MODES = ("full", "square")


def _region(width: int, height: int, crop: Optional[Region]) -> Region:
    """``crop`` checked against the frame, or the whole frame; ValueError if it does not fit."""
    rx, ry, rw, rh = crop if crop is not None else (0, 0, width, height)
    if rw <= 0 or rh <= 0 or rx < 0 or ry < 0 or rx + rw > width or ry + rh > height:
        raise ValueError(f"crop {rx},{ry},{rw},{rh} does not fit in the {width}x{height} frame")
    return (int(rx), int(ry), int(rw), int(rh))


@dataclass(frozen=True)
class Cut:
    """An axis-aligned source region resized to an output size (``--align none`` frames).

    Attributes:
        region: ``(x, y, w, h)`` of the source frame that is used (px).
        size: ``(width, height)`` of the output (px).
    """

    region: Region
    size: tuple[int, int]

    @property
    def matrix(self) -> np.ndarray:
        """(2, 3) float64 source pixels -> output pixels, as ``cv2.resize`` of the region maps them.

        ``cv2.resize`` samples source ``(x_dst + 0.5) / s - 0.5``, i.e. ``dst = (src + 0.5) s - 0.5``
        per axis, with ``s = out / region`` (a square region gives one scale).
        """
        x0, y0, rw, rh = self.region
        sx, sy = self.size[0] / rw, self.size[1] / rh
        return np.array([[sx, 0.0, (0.5 - x0) * sx - 0.5], [0.0, sy, (0.5 - y0) * sy - 0.5]], dtype=np.float64)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The region of ``image`` (H x W x C uint8) resized to :attr:`size`: ``size[1] x size[0] x C``."""
        x0, y0, rw, rh = self.region
        ow, oh = self.size
        region = image[y0 : y0 + rh, x0 : x0 + rw]
        if rw > 2 * ow and rh > 2 * oh:
            # INTER_AREA at a non-integer ratio costs ~5 ms on a 720p frame; bilinear to
            # twice the size and an exact 2x box average look the same at a quarter of it.
            region = cv2.resize(region, (2 * ow, 2 * oh), interpolation=cv2.INTER_LINEAR)
        interp = cv2.INTER_AREA if region.shape[0] > oh else cv2.INTER_LINEAR
        return cv2.resize(region, (ow, oh), interpolation=interp)


def square_cut(width: int, height: int, size: int, crop: Optional[Region] = None) -> Cut:
    """``--frame square``: the centre square of the frame (or of ``crop``), at ``size x size``.

    Raises:
        ValueError: ``crop`` does not lie inside the frame.
    """
    rx, ry, rw, rh = _region(width, height, crop)
    side = min(rw, rh)
    return Cut((rx + (rw - side) // 2, ry + (rh - side) // 2, side, side), (int(size), int(size)))


def full_size(width: int, height: int, short: int) -> tuple[int, int]:
    """``(w, h)`` of a ``width x height`` picture scaled so its short side is ``short`` (long side rounded)."""
    if width <= height:
        return int(short), max(int(short), int(round(height * short / width)))
    return max(int(short), int(round(width * short / height))), int(short)


def full_cut(width: int, height: int, short: int, crop: Optional[Region] = None) -> Cut:
    """``--frame full``: the whole frame (or ``crop``), its aspect kept, short side ``short`` px.

    Raises:
        ValueError: ``crop`` does not lie inside the frame.
    """
    region = _region(width, height, crop)
    return Cut(region, full_size(region[2], region[3], short))


def frame_cut(frame: str, width: int, height: int, size: int, crop: Optional[Region] = None) -> Cut:
    """:func:`full_cut` (``frame="full"``, ``size`` = short side) or :func:`square_cut` (``"square"``)."""
    if frame not in FRAME_MODES:
        raise ValueError(f"unknown frame mode {frame!r}; choose full or square")
    return (full_cut if frame == "full" else square_cut)(width, height, size, crop)


def none_matrix(
    width: int, height: int, size: int, crop: Optional[Region] = None
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Crop matrix and source square of :func:`square_cut`.

    Args:
        width, height: source frame size (px, after rotation).
        size: output side (px).
        crop: optional source region ``(x, y, w, h)``; the square is centred in it.

    Returns:
        (2x3 float64 matrix mapping source pixels to output pixels, the centre-of-pixel
        convention of ``cv2.warpAffine``; ``(x0, y0, side)`` of the source square).

    Raises:
        ValueError: ``crop`` does not lie inside the frame.
    """
    cut = square_cut(width, height, size, crop)
    return cut.matrix, cut.region[:3]


def crop_none(image: np.ndarray, square: tuple[int, int, int], size: int) -> np.ndarray:
    """Cut the source square ``(x0, y0, side)`` out of ``image`` (H x W x 3 uint8) and resize it to size x size."""
    x0, y0, side = square
    return Cut((x0, y0, side, side), (size, size)).apply(image)


def center_crop_matrix(width: int, height: int, size: int, crop: Optional[Region] = None) -> np.ndarray:
    """The matrix of extract's ``--frame square`` crop: centre square of the short side, scaled to ``size``.

    Args:
        width, height: source frame size (px, >= 1).
        size: crop side (px).
        crop: extract's ``--crop`` region ``(x, y, w, h)``; the square is centred in it.

    Returns:
        (2, 3) float64, source pixels -> crop pixels, as extract records it in the manifest.
    """
    return square_cut(width, height, size, crop).matrix


def center_crop(image: np.ndarray, size: int, crop: Optional[Region] = None) -> np.ndarray:
    """Extract's ``--frame square`` network input: the centre square of ``image`` at ``size``.

    Args:
        image: H x W x 3 uint8 RGB.
        size: crop side (px).
        crop: extract's ``--crop`` region ``(x, y, w, h)``; the square is centred in it.

    Returns:
        size x size x 3 uint8, the same pixels extract writes for this frame (same code).
    """
    h, w = image.shape[:2]
    return square_cut(w, h, size, crop).apply(image)


def back_window(
    matrix: np.ndarray, crop_hw: tuple[int, int], frame_hw: tuple[int, int]
) -> tuple[slice, slice, np.ndarray]:
    """Where a cut lands back in its frame, for :func:`place_back` and detail upscaling.

    Args:
        matrix: (2, 3) axis-aligned source -> cut matrix (scale and shift).
        crop_hw: ``(h, w)`` of the cut (px).
        frame_hw: ``(h, w)`` of the frame (px).

    Returns:
        ``(rows, cols, roi)``: the frame's rows and columns whose pixel centres fall inside the
        cut's area (empty slices if none), and the (2, 3) matrix mapping that window's pixels
        to cut pixels (for ``cv2.warpAffine`` with ``WARP_INVERSE_MAP``).
    """
    m = np.asarray(matrix, np.float64)
    if m[0, 1] or m[1, 0]:
        raise ValueError("place_back needs an axis-aligned matrix (no rotation)")
    (ch, cw), (h, w) = crop_hw, frame_hw
    # frame pixels whose centre maps into [-0.5, size - 0.5], the cut's pixel area
    x0 = max(0, int(np.ceil((-0.5 - m[0, 2]) / m[0, 0] - 1e-9)))
    x1 = min(w, int(np.floor((cw - 0.5 - m[0, 2]) / m[0, 0] + 1e-9)) + 1)
    y0 = max(0, int(np.ceil((-0.5 - m[1, 2]) / m[1, 1] - 1e-9)))
    y1 = min(h, int(np.floor((ch - 0.5 - m[1, 2]) / m[1, 1] + 1e-9)) + 1)
    roi = m.copy()
    roi[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)
    return slice(y0, max(y0, y1)), slice(x0, max(x0, x1)), roi


def upsample(crop: np.ndarray, roi: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resampling of ``crop`` (uint8 or float32, up to 4 channels) onto an ``h x w`` window.

    ``roi`` maps window pixels to crop pixels (from :func:`back_window`); window pixels up to
    half a pixel beyond the last crop centre repeat it rather than fade to the border.
    """
    return cv2.warpAffine(
        crop, roi, (hw[1], hw[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )


def place_back(frame: np.ndarray, crop: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Upscale ``crop`` into the region of ``frame`` it was cut from.

    Args:
        frame: H x W x 3 uint8 source frame (not modified).
        crop: h x w x 3 uint8 translated cut (square or not).
        matrix: (2, 3) axis-aligned source -> crop matrix (scale and shift, as
            :attr:`Cut.matrix`).

    Returns:
        H x W x 3 uint8: every frame pixel whose centre falls inside the crop's area takes
        the (bilinearly upscaled) crop, every other pixel keeps the frame's value.
    """
    rows, cols, roi = back_window(matrix, crop.shape[:2], frame.shape[:2])
    out = frame.copy()
    hw = (rows.stop - rows.start, cols.stop - cols.start)
    if hw[0] and hw[1]:
        out[rows, cols] = upsample(crop, roi, hw)
    return out
