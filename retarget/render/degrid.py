"""The checkerboard of transposed convolutions, removed from a whole-frame render (``--degrid``).

A generator with the release's stride-2 transposed convolutions (``train --upsample
transpose``) draws a faint grid: its two up-sampling layers overlap their kernels
unevenly, leaving patterns that repeat every 2 and every 4 output pixels. A whole-frame
render scales the output up to the source (often 3-6x), where the grid shows. The filter
here, ``[1, 2, 2, 2, 1] / 8`` along each axis (a 2-pixel box times a 4-pixel box), has
zero response at exactly those two periods and passes the low frequencies the upscaling
keeps. On the CPU budget table's eleven transposed-convolution runs it lowered the
warping error by 20-46% in every one; PSNR against the truth moved by +0.07 to +0.68 dB
after 5 minutes of training and by -0.94 to +0.29 dB after 20 (docs/benchmarks.md,
"quality per budget"). Face renders (pasted near their own size) and runs trained with
``resize`` or ``blur`` up-sampling (no grid) are left alone.
"""

from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np

#: The filter's taps (sum 1): zeros at periods 2 and 4.
TAPS = np.array([1, 2, 2, 2, 1], dtype=np.float32) / 8.0


def degrid(image: np.ndarray) -> np.ndarray:
    """``image`` (``H x W x 3`` uint8, the generator's output at model scale) without its period-2 and period-4 grid;
    same shape and dtype, borders reflected."""
    out = cv2.sepFilter2D(image.astype(np.float32), -1, TAPS, TAPS, borderType=cv2.BORDER_REFLECT_101)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


class Degrid:
    """A translate function (batch of ``H x W x 3`` uint8 -> the same) whose outputs are :func:`degrid`-ed.

    Attributes:
        inner: the translator wrapped; its ``amp`` (the precision used) is this one's.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @property
    def amp(self) -> Any:
        return getattr(self.inner, "amp", None)

    def __call__(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [degrid(r) for r in self.inner(images)]


def wants_degrid(given: Any, upsample: str, align: str, frame: Any) -> bool:
    """Whether a render filters the grid: ``given`` (``--degrid``/``--no-degrid``, None = by default) or, by
    default, for whole frames (align none, frame full) of a generator with transposed convolutions."""
    if given is not None:
        return bool(given)
    return upsample == "transpose" and align == "none" and frame == "full"
