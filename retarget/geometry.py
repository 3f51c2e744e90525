"""Crop geometry shared by extract, render and the stabiliser.

Matrices are ``2 x 3`` float64 affine maps ``source pixels -> crop pixels`` acting on
``[x, y, 1]`` (pixel centres at integer coordinates, the convention of
``cv2.warpAffine``), the same as :mod:`retarget.faces.align`'s face crops
(:func:`retarget.faces.align.crop_matrix`).

- :func:`none_matrix` / :func:`crop_none`: extract's ``--align none`` crop, the centre
  square of the frame (or of its ``--crop`` region), resized to the output size;
- :func:`center_crop` / :func:`center_crop_matrix`: the same crop for one image, as render
  needs it;
- :func:`place_back`: the inverse, upscaling a translated crop into its frame.
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

#: An extract ``--crop`` region: ``(x, y, w, h)`` in source pixels.
Region = tuple[int, int, int, int]


def none_matrix(
    width: int, height: int, size: int, crop: Optional[Region] = None
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Crop matrix and source square for ``align none``.

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
    rx, ry, rw, rh = crop if crop is not None else (0, 0, width, height)
    if rw <= 0 or rh <= 0 or rx < 0 or ry < 0 or rx + rw > width or ry + rh > height:
        raise ValueError(f"crop {rx},{ry},{rw},{rh} does not fit in the {width}x{height} frame")
    side = min(rw, rh)
    x0 = rx + (rw - side) // 2
    y0 = ry + (rh - side) // 2
    s = size / side
    # cv2.resize samples source (x_dst + 0.5) / s - 0.5, i.e. dst = (src + 0.5) s - 0.5.
    matrix = np.array([[s, 0.0, (0.5 - x0) * s - 0.5], [0.0, s, (0.5 - y0) * s - 0.5]], dtype=np.float64)
    return matrix, (x0, y0, side)


def crop_none(image: np.ndarray, square: tuple[int, int, int], size: int) -> np.ndarray:
    """Cut the source square out of ``image`` (H x W x 3 uint8) and resize it to size x size."""
    x0, y0, side = square
    region = image[y0 : y0 + side, x0 : x0 + side]
    if side > 2 * size:
        # INTER_AREA at a non-integer ratio costs ~5 ms on a 720p frame; bilinear to
        # twice the size and an exact 2x box average look the same at a quarter of it.
        region = cv2.resize(region, (2 * size, 2 * size), interpolation=cv2.INTER_LINEAR)
    interp = cv2.INTER_AREA if region.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(region, (size, size), interpolation=interp)


def center_crop_matrix(width: int, height: int, size: int, crop: Optional[Region] = None) -> np.ndarray:
    """The matrix of extract's ``--align none`` crop: centre square of the short side, scaled to ``size``.

    Args:
        width, height: source frame size (px, >= 1).
        size: crop side (px).
        crop: extract's ``--crop`` region ``(x, y, w, h)``; the square is centred in it.

    Returns:
        (2, 3) float64, source pixels -> crop pixels, as extract records it in the manifest.
    """
    return none_matrix(width, height, size, crop)[0]


def center_crop(image: np.ndarray, size: int, crop: Optional[Region] = None) -> np.ndarray:
    """Extract's ``--align none`` network input: the centre square of ``image`` at ``size``.

    Args:
        image: H x W x 3 uint8 RGB.
        size: crop side (px).
        crop: extract's ``--crop`` region ``(x, y, w, h)``; the square is centred in it.

    Returns:
        size x size x 3 uint8, the same pixels extract writes for this frame (same code).
    """
    h, w = image.shape[:2]
    return crop_none(image, none_matrix(w, h, size, crop)[1], size)


def place_back(frame: np.ndarray, crop: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Upscale ``crop`` into the region of ``frame`` it was cut from.

    Args:
        frame: H x W x 3 uint8 source frame (not modified).
        crop: S x S x 3 uint8 translated crop.
        matrix: (2, 3) axis-aligned source -> crop matrix (scale and shift, as from
            :func:`center_crop_matrix`).

    Returns:
        H x W x 3 uint8: every frame pixel whose centre falls inside the crop's area takes
        the (bilinearly upscaled) crop, every other pixel keeps the frame's value.
    """
    m = np.asarray(matrix, np.float64)
    if m[0, 1] or m[1, 0]:
        raise ValueError("place_back needs an axis-aligned matrix (no rotation)")
    out = frame.copy()
    h, w = frame.shape[:2]
    s = crop.shape[0]
    # frame pixels whose centre maps into [-0.5, s - 0.5], the crop's pixel area
    x0 = max(0, int(np.ceil((-0.5 - m[0, 2]) / m[0, 0] - 1e-9)))
    x1 = min(w, int(np.floor((s - 0.5 - m[0, 2]) / m[0, 0] + 1e-9)) + 1)
    y0 = max(0, int(np.ceil((-0.5 - m[1, 2]) / m[1, 1] - 1e-9)))
    y1 = min(h, int(np.floor((s - 0.5 - m[1, 2]) / m[1, 1] + 1e-9)) + 1)
    if x1 <= x0 or y1 <= y0:
        return out
    roi = m.copy()
    roi[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)
    # WARP_INVERSE_MAP: ROI pixel p samples the crop at roi @ p; edge pixels half a
    # pixel beyond the last crop centre repeat it rather than fade to the border
    out[y0:y1, x0:x1] = cv2.warpAffine(
        crop, roi, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )
    return out
