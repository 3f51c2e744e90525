"""Piecewise-affine warps of a face picture: move its landmarks to other positions.

A picture whose points sit at ``src`` is redrawn with them at ``dst``: the plane is cut
into Delaunay triangles over ``dst`` (the landmarks plus fixed points on the picture's
border, :func:`border_points`, so the warp fades to none at the edges), and every pixel
of a triangle is taken from the same triangle over ``src`` through that pair's affine
map (:func:`cv2.getAffineTransform`). The pixel maps are built at once with numpy and
applied with one :func:`cv2.remap`.

Used by the face swap (:mod:`retarget.faces.retrieval`) to give a target person's frame
the source's expression.
"""

from __future__ import annotations

import cv2
import numpy as np

from retarget.faces.align import RESAMPLE

__all__ = ["border_points", "triangulate", "warp_picture"]


def border_points(size: int, per_side: int = 4) -> np.ndarray:
    """Points on the border of a ``size`` px square: corners and ``per_side - 1`` between them per side.

    Returns:
        ``(4 * per_side, 2)`` float64 ``(x, y)`` pixels in ``[0, size - 1]``.
    """
    t = np.linspace(0.0, size - 1.0, per_side + 1)
    end = size - 1.0
    points = [(x, 0.0) for x in t] + [(x, end) for x in t]
    points += [(0.0, y) for y in t[1:-1]] + [(end, y) for y in t[1:-1]]
    return np.asarray(points, np.float64)


def triangulate(points: np.ndarray, size: int) -> np.ndarray:
    """Delaunay triangles of ``points`` (``(N, 2)`` pixels of a ``size`` px picture) as point indices.

    Returns:
        ``(T, 3)`` int64 indices into ``points``; repeated points give no triangle.
    """
    pts = np.asarray(points, np.float64)
    lo, hi = min(-1.0, float(pts.min()) - 1.0), max(size + 1.0, float(pts.max()) + 2.0)
    subdiv = cv2.Subdiv2D((int(np.floor(lo)), int(np.floor(lo)), int(np.ceil(hi - lo)), int(np.ceil(hi - lo))))
    for x, y in pts:
        subdiv.insert((float(x), float(y)))
    corners = subdiv.getTriangleList().reshape(-1, 3, 2)
    # each corner back to the point it is (Subdiv2D returns coordinates, not indices)
    d = ((corners[:, :, None, :] - pts[None, None, :, :]) ** 2).sum(-1)
    idx = d.argmin(-1)
    keep = (idx[:, 0] != idx[:, 1]) & (idx[:, 1] != idx[:, 2]) & (idx[:, 0] != idx[:, 2])
    keep &= d.min(-1).max(-1) < 1e-6  # no triangle on Subdiv2D's outer virtual vertices
    return idx[keep].astype(np.int64)


def warp_picture(image: np.ndarray, src: np.ndarray, dst: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Redraw ``image`` so that its points at ``src`` land on ``dst`` (piecewise affine).

    Args:
        image: ``H x W x C`` picture.
        src, dst: ``(N, 2)`` pixel positions ``(x, y)``: where the points are, where they go.
        triangles: ``(T, 3)`` indices, a triangulation of ``dst`` (:func:`triangulate`).

    Returns:
        The warped picture, same shape and dtype; pixels outside every triangle keep their place.
    """
    h, w = image.shape[:2]
    src, dst = np.asarray(src, np.float32), np.asarray(dst, np.float32)
    label = np.full((h, w), -1, np.int32)
    maps = np.zeros((len(triangles) + 1, 2, 3), np.float64)
    maps[-1] = [[1, 0, 0], [0, 1, 0]]  # the last one: identity, for pixels no triangle covers
    for k, tri in enumerate(triangles):
        (ux, uy), (vx, vy) = dst[tri[1]] - dst[tri[0]], dst[tri[2]] - dst[tri[0]]
        if abs(ux * vy - uy * vx) < 1e-3:  # a flat triangle covers no pixel and has no inverse
            continue
        maps[k] = cv2.getAffineTransform(dst[tri], src[tri])  # output pixel -> where to read it
        cv2.fillConvexPoly(label, np.round(dst[tri]).astype(np.int32), int(k))
    m = maps[label]  # label -1 picks the identity
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    map_x = m[..., 0, 0] * xs + m[..., 0, 1] * ys + m[..., 0, 2]
    map_y = m[..., 1, 0] * xs + m[..., 1, 1] * ys + m[..., 1, 2]
    return cv2.remap(
        image, map_x.astype(np.float32), map_y.astype(np.float32), RESAMPLE, borderMode=cv2.BORDER_REFLECT_101
    )
