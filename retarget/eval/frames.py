"""Pairing the frames of two videos by time, and bringing them to one size.

Matching: each output frame takes the reference frame (source or truth) whose time is
nearest, when it lies within a tolerance (half a frame period); a reference frame
serves at most once, and matches never cross (times only go forward). Both sides are
consumed as streams: only the reference frames inside the tolerance window are held.

Sizes: frames are compared at the output's size, except that the 1-pixel padding the
H.264 writer adds to odd sizes is cropped off again, and that nothing is upscaled: a
reference smaller than that is met at its size. A reference of another aspect ratio
is centre-cropped to the output's (render ``--output-size model`` in full-frame mode
writes exactly that centre square), then resized (area filter when shrinking,
bilinear when enlarging).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Iterable, Iterator, Optional, Sequence

import cv2
import numpy as np


class TimeMatcher:
    """Hands out the frame of a time-ordered stream nearest each requested time.

    Args:
        frames: items with a ``time`` attribute (seconds), in increasing time.
        tolerance: the largest accepted time difference (s).

    Call :meth:`take` with increasing times, then :meth:`finish` to count what is left.
    """

    def __init__(self, frames: Iterable[Any], tolerance: float) -> None:
        self._it: Iterator[Any] = iter(frames)
        self._done = False
        self._window: deque[Any] = deque()
        self.tolerance = float(tolerance)
        self.seen = 0  # frames read from the stream so far
        self.matched = 0  # frames handed out by take()
        self.unmatched = 0  # frames passed over (no requested time near them)

    def _pull_until(self, limit: float) -> None:
        while not self._done and (not self._window or self._window[-1].time <= limit):
            try:
                item = next(self._it)
            except StopIteration:
                self._done = True
                return
            self.seen += 1
            self._window.append(item)

    def take(self, time: float) -> Optional[Any]:
        """The not yet used frame nearest ``time`` within the tolerance, or None."""
        eps = 1e-9
        self._pull_until(time + self.tolerance + eps)
        while self._window and self._window[0].time < time - self.tolerance - eps:
            self._window.popleft()
            self.unmatched += 1
        best_i, best_d = -1, float("inf")
        for i, item in enumerate(self._window):
            d = abs(item.time - time)
            if d <= self.tolerance + eps and d < best_d:
                best_i, best_d = i, d
        if best_i < 0:
            return None
        for _ in range(best_i):  # frames before the match can no longer be matched
            self._window.popleft()
            self.unmatched += 1
        self.matched += 1
        return self._window.popleft()

    def finish(self) -> None:
        """Read the rest of the stream, counting its frames as unmatched."""
        self.unmatched += len(self._window)
        self._window.clear()
        while not self._done:
            try:
                next(self._it)
            except StopIteration:
                self._done = True
                break
            self.seen += 1
            self.unmatched += 1


Size = tuple[int, int]  # (width, height) in pixels


def _aspect_crop(size: Size, aspect: float) -> Size:
    """The largest centred ``(w, h)`` of aspect ``aspect`` (w / h) inside ``size``."""
    w, h = size
    if w / h > aspect:
        return max(1, round(h * aspect)), h
    return w, max(1, round(w / aspect))


def _padded(size: Size, ref: Size) -> bool:
    """True when ``size`` is ``ref`` plus the writer's 0-1 px of even padding."""
    return 0 <= size[0] - ref[0] <= 1 and 0 <= size[1] - ref[1] <= 1


def common_size(output: Size, references: Sequence[Size]) -> Size:
    """The ``(width, height)`` the frames of ``output`` and ``references`` are compared at.

    The output's size without the writer's even padding, shrunk (aspect kept) so that it
    fits inside each reference's centre crop of the output's aspect ratio.
    """
    w, h = output
    for ref in references:
        if _padded((w, h), ref):
            w, h = min(w, ref[0]), min(h, ref[1])
    scale = 1.0
    for ref in references:
        cw, _ = _aspect_crop(ref, w / h)
        scale = min(scale, cw / w)
    if scale < 1.0:
        return max(2, round(w * scale)), max(2, round(h * scale))
    return w, h


def fit(image: np.ndarray, size: Size) -> np.ndarray:
    """``image`` (``H x W x C`` uint8) brought to ``size = (width, height)``.

    Unchanged at that size; cropped at the bottom/right when it is that size plus the
    writer's even padding; otherwise centre-cropped to the aspect ratio of ``size`` and
    resized (area filter when shrinking, bilinear when enlarging).
    """
    h, w = image.shape[:2]
    tw, th = size
    if (w, h) == (tw, th):
        return image
    if _padded((w, h), (tw, th)):
        return np.ascontiguousarray(image[:th, :tw])
    cw, ch = _aspect_crop((w, h), tw / th)
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    crop = image[y0 : y0 + ch, x0 : x0 + cw]
    if (cw, ch) == (tw, th):
        return np.ascontiguousarray(crop)
    interp = cv2.INTER_AREA if cw >= tw and ch >= th else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(crop), (tw, th), interpolation=interp)
