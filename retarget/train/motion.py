"""The source motion of the warp term, computed once per frame pair with the frame cache.

The warp term (:mod:`retarget.nn.warp_loss`) compares the translation of frame t+1 with
the translation of frame t moved along the *source's* optical flow. That flow depends on
the data only, so it is estimated here, when a domain is loaded, once for every pair of
consecutive frames of a segment (OpenCV DIS, :mod:`retarget.video.flow`), at the cache's
resolution; the sampler then crops and flips it with the frames
(:class:`retarget.train.sampler.TripletSampler`) and the training step only reads it.

Storage per frame ``i`` of a shard: ``flow[i]`` is the backward flow from frame ``i``
onto frame ``i - 1`` (``H x W x 2`` float16, pixels: ``warp(frame[i-1], flow[i])`` lines
frame ``i - 1`` up with frame ``i``) and ``valid[i]`` (``H x W`` uint8, 0/1) where it
passes the forward-backward check. The first frame of every segment has no predecessor:
its flow is 0 and nothing is valid.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Sequence

import numpy as np

from retarget.video.flow import FlowEstimator, motion

#: DIS preset of the training flow (the one ``retarget eval`` uses by default).
FLOW_PRESET = "medium"


def pairs_of(segments: Iterable[Sequence[int]]) -> list[tuple[int, int]]:
    """``(previous, current)`` index pairs of consecutive frames inside each segment."""
    return [(int(s[k - 1]), int(s[k])) for s in segments for k in range(1, len(s))]


def compute_motion(
    frames: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    flow: np.ndarray,
    valid: np.ndarray,
    *,
    workers: int = 2,
) -> None:
    """Fill ``flow[cur]`` and ``valid[cur]`` for every ``(prev, cur)`` of ``pairs``.

    Args:
        frames: ``N x H x W x 3`` uint8 RGB (array or memmap).
        pairs: consecutive frame indices (:func:`pairs_of`).
        flow: ``N x H x W x 2`` float16, written in place (rows of ``pairs``' ``cur``).
        valid: ``N x H x W`` uint8, written in place (0/1).
        workers: threads; OpenCV releases the GIL, so pairs run in parallel.
    """
    local = threading.local()

    def one(pair: tuple[int, int]) -> None:
        est = getattr(local, "est", None)
        if est is None:
            est = local.est = FlowEstimator(FLOW_PRESET)
        prev, cur = pair
        m = motion(np.asarray(frames[prev]), np.asarray(frames[cur]), est)
        flow[cur] = m.backward.astype(np.float16)
        valid[cur] = m.valid.view(np.uint8)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(one, pairs))


def window_motion(
    flow: np.ndarray, valid: np.ndarray, y: int, x: int, size: int, flip: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The motion of one square window of a frame, as the sampler cuts the frames.

    Args:
        flow: ``H x W x 2`` float16 backward flow of the whole frame.
        valid: ``H x W`` uint8 reliability of ``flow``.
        y, x: the window's top-left corner; ``size``: its side.
        flip: the window is mirrored left-right (as its frames are).

    Returns:
        ``size x size x 2`` float16 flow in the window's own (possibly mirrored)
        coordinates, and ``size x size`` uint8 validity: a pixel is valid only where the
        whole-frame check passed *and* its flow lands inside the window (the translation
        of the previous frame covers the window only).
    """
    f = np.array(flow[y : y + size, x : x + size], dtype=np.float32)
    v = np.array(valid[y : y + size, x : x + size], dtype=np.uint8)
    if flip:
        f = f[:, ::-1].copy()
        f[..., 0] = -f[..., 0]
        v = v[:, ::-1]
    grid = np.arange(size, dtype=np.float32)
    tx = grid[None, :] + f[..., 0]
    ty = grid[:, None] + f[..., 1]
    inside = (tx >= 0) & (tx <= size - 1) & (ty >= 0) & (ty <= size - 1)
    return f.astype(np.float16), np.ascontiguousarray(v & inside.astype(np.uint8))
