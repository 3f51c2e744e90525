"""Frame timing for :class:`~retarget.video.reader.VideoReader`: put decode-order
timestamps back in display order, and resample to a frame rate by timestamp.

Both work on the stream of decoded pictures, before and after conversion to arrays;
neither decodes anything itself.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import av

from retarget.video.frame import Frame

__all__ = ["PtsReorder", "Resampler", "REORDER_WINDOW"]


@dataclass
class Resampler:
    """Maps a stream of (time, frame) onto output ticks ``origin + k / fps``.

    Each tick takes the frame nearest to it; a frame serves at most once, so asking
    for more ticks than the source has frames keeps every frame once.
    """

    fps: float
    origin: Optional[float]
    pending: Optional[Frame] = None
    pending_emitted: bool = False
    tick: int = 0
    dropped: int = 0

    def _tick_time(self) -> float:
        assert self.origin is not None
        return self.origin + self.tick / self.fps

    def push(self, frame: Frame) -> list[Frame]:
        out: list[Frame] = []
        if self.origin is None:
            self.origin = frame.time
        new_emitted = False
        eps = 1e-9
        while self._tick_time() <= frame.time + eps:
            t = self._tick_time()
            prev = self.pending
            if prev is not None and (t - prev.time) <= (frame.time - t) + eps:
                if not self.pending_emitted:
                    out.append(prev)
                    self.pending_emitted = True
            elif not new_emitted:
                out.append(frame)
                new_emitted = True
            self.tick += 1
        if self.pending is not None and not self.pending_emitted:
            self.dropped += 1
        self.pending, self.pending_emitted = frame, new_emitted
        return out

    def finish(self, frame_period: float) -> list[Frame]:
        # After the last frame, ticks still inside its display time belong to it.
        if self.pending is None or self.pending_emitted:
            return []
        if self._tick_time() < self.pending.time + frame_period - 1e-9:
            self.pending_emitted = True
            return [self.pending]
        self.dropped += 1
        return []


# H.264 allows up to 16 frames of reordering; a window one larger puts every timestamp
# of such a stream back in place (see PtsReorder).
REORDER_WINDOW = 17


class PtsReorder:
    """Give the i-th decoded picture the i-th smallest timestamp.

    Decoders return pictures in display order. Their pts normally rise too, but some
    files carry decode-order timestamps (an H.264 MP4 with B-frames whose packets have
    pts == dts, an AVI with packed MPEG-4 B-frames): the pictures are right, their
    times shuffled (0, 101, 67, 134, 34 ms...). Sorting the timestamps within a window
    of the decoder's reorder depth + 1 restores them. Streams without B-frames pass
    through unbuffered; a well-timed stream comes out unchanged.

    Pictures may be None (corrupt): they keep their slot, so the others' times stay right.
    A timestamp earlier than one already handed out is a jump back in the stream, not
    reordering: the window is emitted before it, so the two sides never mix. The window
    holds decoded pictures, not arrays: 17 frames of 4K 4:2:0 video are about 200 MB.
    """

    def __init__(self) -> None:
        self.reordered = 0  # pictures whose pts was replaced by another's
        self._last: Optional[int] = None  # the last pts handed out

    def __call__(
        self, pictures: Iterator[Optional[av.VideoFrame]], codec_context: Any
    ) -> Iterator[tuple[Optional[av.VideoFrame], Optional[int]]]:
        """Yield (picture, pts) with the pts sorted; None pts stay with their picture.

        ``codec_context`` is the decoder's (its ``has_b_frames`` is read as decoding goes).
        """
        window: deque[tuple[Optional[av.VideoFrame], Optional[int]]] = deque()
        heap: list[int] = []
        size = 1
        self._last: Optional[int] = None
        for picture in pictures:
            if size == 1 and codec_context.has_b_frames:
                # Known once the decoder has parsed the stream headers; PyAV only says
                # whether the depth is non-zero, so take the largest H.264 allows.
                size = REORDER_WINDOW
            pts = picture.pts if picture is not None else None
            if pts is not None and self._last is not None and pts < self._last:
                # Earlier than a time already handed out: not reordering but a jump back
                # (concatenated streams, a timestamp wrap). Finish what came before it.
                while window:
                    yield self._emit(window, heap)
            if pts is not None:
                heapq.heappush(heap, pts)
            window.append((picture, pts))
            while len(window) >= size:
                yield self._emit(window, heap)
        while window:
            yield self._emit(window, heap)

    def _emit(
        self, window: deque[tuple[Optional[av.VideoFrame], Optional[int]]], heap: list[int]
    ) -> tuple[Optional[av.VideoFrame], Optional[int]]:
        picture, own = window.popleft()
        if own is None:
            return picture, None
        pts = heapq.heappop(heap)
        if pts != own:
            self.reordered += 1
        self._last = pts
        return picture, pts
