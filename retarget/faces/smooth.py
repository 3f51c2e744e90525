"""Temporal smoothing of similarity transforms with a one-euro filter.

Landmarks jitter by a fraction of a pixel from frame to frame; an aligned crop built
from them shakes visibly, and a network trained on shaking crops learns the shake.
The one-euro filter (Casiez et al., CHI 2012) is a low-pass filter whose cut-off rises
with the signal's speed: strong smoothing while the head is still, little lag while it
moves. It is causal (no look-ahead) and uses the true frame times, so variable frame
rate and dropped frames need no special case.

The transform is smoothed as four parameters that each mean something on their own:
the source point on the crop centre (x, y), log scale and rotation angle (unwrapped).
All four are converted to *crop pixels* before filtering (the centre at the scale of
the first frame, the log scale and angle times the template's eye radius), so that one
cut-off and one speed coefficient serve them all and ``smooth`` has the same effect at
any crop size.
"""

from __future__ import annotations

import math

import numpy as np

from retarget.faces.align import matrix_to_params, params_to_matrix

__all__ = ["OneEuroFilter", "TransformSmoother", "one_euro_params"]

#: Cut-off (Hz) at rest and speed coefficient (1 / crop px) for ``smooth = 1``.
BASE_MIN_CUTOFF = 0.3
BASE_BETA = 0.5
#: Cut-off of the speed estimate (Hz).
D_CUTOFF = 1.0
# Frame interval assumed when two frames carry the same time (broken timestamps).
_FALLBACK_DT = 1.0 / 30.0


def one_euro_params(smooth: float) -> tuple[float, float]:
    """Map the user's ``smooth`` strength to one-euro ``(min_cutoff Hz, beta)``.

    Args:
        smooth: >= 0; 0 disables smoothing, 1 is the default, 2 halves both cut-off terms.

    Returns:
        (min_cutoff, beta); ``(inf, 0)`` when disabled.
    """
    if smooth <= 0:
        return math.inf, 0.0
    return BASE_MIN_CUTOFF / smooth, BASE_BETA / smooth


def _alpha(cutoff: float | np.ndarray, dt: float) -> float | np.ndarray:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-euro filter over a vector; all components share the speed-driven cut-off.

    Args:
        min_cutoff: cut-off frequency at rest (Hz, > 0); lower smooths more.
        beta: how fast the cut-off rises with speed (Hz per unit/s, >= 0); higher lags less.
        d_cutoff: cut-off of the speed estimate (Hz).
    """

    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float = D_CUTOFF) -> None:
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self.reset()

    def reset(self) -> None:
        """Forget the past; the next sample passes through unchanged."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t = 0.0

    @property
    def value(self) -> np.ndarray | None:
        """The last filtered value, or None after a reset."""
        return self._x

    def __call__(self, x: np.ndarray, time: float) -> np.ndarray:
        """Filter one sample.

        Args:
            x: (D,) float sample.
            time: its time in seconds; should increase from call to call.

        Returns:
            (D,) float64 filtered value.
        """
        x = np.asarray(x, np.float64)
        if self._x is None or not math.isfinite(self.min_cutoff):
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), time
            return x.copy()
        dt = time - self._t
        if not dt > 0:
            dt = _FALLBACK_DT
        dx = (x - self._x) / dt
        a_d = _alpha(self.d_cutoff, dt)
        self._dx = self._dx + a_d * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * float(np.linalg.norm(self._dx))
        a = _alpha(cutoff, dt)
        self._x = self._x + a * (x - self._x)
        self._t = time
        return self._x.copy()


class TransformSmoother:
    """Smooth a stream of crop matrices over time.

    Args:
        size: crop side in pixels.
        smooth: strength, see :func:`one_euro_params`; 0 passes matrices through.
        radius: crop-pixel radius at which scale and rotation changes are weighed
            against translation; default a quarter of the crop side (about the
            template's eye radius).
    """

    def __init__(self, size: int, smooth: float, radius: float | None = None) -> None:
        self.size = size
        self.smooth = smooth
        self.radius = radius if radius is not None else 0.25 * size
        min_cutoff, beta = one_euro_params(smooth)
        self._filter = OneEuroFilter(min_cutoff, beta)
        self._ref_scale = 1.0
        self._angle: float | None = None

    def reset(self) -> None:
        """Start afresh (scene cut, lost face, new video)."""
        self._filter.reset()
        self._angle = None

    def __call__(self, matrix: np.ndarray, time: float) -> np.ndarray:
        """Smooth one crop matrix.

        Args:
            matrix: (2, 3) similarity, source pixels -> crop pixels (this frame's raw estimate).
            time: frame time in seconds.

        Returns:
            (2, 3) float64 smoothed similarity.
        """
        if self.smooth <= 0:
            return np.asarray(matrix, np.float64).copy()
        cx, cy, log_s, angle = matrix_to_params(matrix, self.size)
        first = self._angle is None
        if first:  # a new track: its first scale sets the units, the matrix passes as is
            self._filter.reset()
            self._ref_scale = math.exp(log_s)
        else:  # unwrap: stay within half a turn of the last angle
            angle += 2.0 * math.pi * round((self._angle - angle) / (2.0 * math.pi))
        k, r = self._ref_scale, self.radius
        u = self._filter(np.array([cx * k, cy * k, log_s * r, angle * r]), time)
        if first:
            self._angle = angle
            return np.asarray(matrix, np.float64).copy()
        out = np.array([u[0] / k, u[1] / k, u[2] / r, u[3] / r])
        self._angle = float(out[3])
        return params_to_matrix(out, self.size)
