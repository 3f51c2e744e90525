"""``Frame``: one decoded picture with its place in the stream, as the reader yields it and timing passes it on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One decoded picture."""

    index: int  # index in the source stream (0-based; estimated from time after a seek)
    pts: Optional[int]  # presentation timestamp in info.time_base units
    time: float  # seconds from the stream start
    image: np.ndarray  # H x W x 3 uint8 RGB, rotation applied
