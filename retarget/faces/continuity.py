"""When a stream of frames breaks, so the face aligner starts over: :class:`Continuity`.

Extract and render share the rule: the aligner's temporal smoothing must not blend a
face across a scene cut or a decode hole, so the aligner is reset there.
"""

from __future__ import annotations

import math
from typing import Optional

from retarget.faces.aligner import Aligner


class Continuity:
    """Decide, frame by frame, whether the stream is continuous, and reset the aligner where not.

    Args:
        aligner: reset at each break (None: only report breaks); a plain
            ``(image, time) -> face`` callable without ``reset`` is accepted.
        max_gap: a jump in time longer than this (seconds) is a break too; None ignores
            time (render: every decoded frame is rendered).
    """

    def __init__(self, aligner: Optional[Aligner] = None, max_gap: Optional[float] = None) -> None:
        self.aligner = aligner
        self.max_gap = max_gap
        self.prev_time = -math.inf
        self.prev_bad = 0

    def __call__(self, cut: bool, bad_frames: int, time: float) -> bool:
        """Whether this frame starts a new continuous stretch (the first frame always does).

        Args:
            cut: a scene cut was detected at this frame.
            bad_frames: the reader's running count of packets/frames that failed to decode.
            time: the frame's time (s).
        """
        first = self.prev_time == -math.inf
        hole = bad_frames > self.prev_bad
        if self.max_gap is not None and time - self.prev_time > self.max_gap:
            hole = True
        self.prev_bad, self.prev_time = bad_frames, time
        broken = first or cut or hole
        reset = getattr(self.aligner, "reset", None)
        if broken and not first and reset is not None:
            reset()
        return broken
