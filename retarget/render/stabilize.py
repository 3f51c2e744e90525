"""Flow-guided temporal consistency at render time (``retarget render --stabilize S``).

A generator translates every frame on its own, so some flicker remains. Following blind
video temporal consistency (Bonneel et al. 2015; Lai et al. 2018), the stabilizer keeps
the per-frame look of the translation and takes the *motion* from the source: for frame
``t`` it measures the optical flow between the previous and current source crops (the
network's inputs, so faces use the aligned crop), warps the previous *stabilized* output
along it and blends it with the current translation::

    out_t = cur_t + w * (warp(out_{t-1}) - cur_t),    w = S * W_MAX * r

``r`` in [0, 1] is how far the warp can be trusted at each pixel:

- the flow must pass the forward-backward check (:func:`retarget.video.flow.consistent`);
  it fails at occlusions, at content entering the crop and where the flow is wrong;
- the *source* must not have changed along the flow: ``d = |src_t - warp(src_{t-1})|``
  (RMS over channels, lightly blurred) gives ``exp(-(d / SOURCE_TOLERANCE)^2)``, a smooth
  falloff that is ~1 for compression noise and ~0 for new content, lighting changes and
  flow errors;
- the product is eroded by a pixel or two and softened, so the edges of moving objects,
  where the flow is least reliable, take the current translation rather than a smear.

Where ``r`` is 0 the current translation passes through at once. ``W_MAX`` < 1 keeps at
least ``1 - S * W_MAX`` of the current translation in every pixel of every frame: the
result is an exponential moving average along the motion (about ``1 / (1 - W_MAX)`` = 10
frames at S = 1), so per-frame noise and colour jitter shrink, while the long-run colour
follows the translation and no error can accumulate (no drift). The history is kept in
float32 so that rounding to uint8 cannot stick the output a few levels off.

The price is a slight softening of fine *moving* texture, as the history is resampled
(bilinear) at every frame; the source check limits it to where the flow is good. The
constants were picked with ``benchmarks/stabilize_sanity.py`` (a known truth on real
clips, 256 px): a tolerance of 8 rather than 12-16 roughly halves that softening, and
``medium`` flow smears less than ``fast`` for twice the (hidden) cost. On the 64 px
ground-truth benchmark with trained models a looser tolerance removes a few percent more
flicker, but costs 1-3 dB on clean 256 px outputs (docs/benchmarks.md, "quality").

State: the previous source crop (prepare side) and the previous stabilized output (blend
side), nothing that grows. It resets (the next frame passes through unchanged) when the
caller says so (scene cut, face track change, decode hole), when a frame has no crop (no
face found) and when the crop size changes.

The work is split for the render pipeline: :meth:`Stabilizer.prepare` (two DIS flows,
~12 ms at 256 px with the ``medium`` preset) runs in order in the decode thread and
overlaps the generator; :meth:`Stabilizer.blend` (one warp and a blend, ~1 ms) runs in
order after translation. The two halves touch separate state, so one thread may call
``prepare`` while another calls ``blend``, each in frame order. :func:`stabilize_frames`
runs the same code on in-memory frame lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import cv2
import numpy as np

from retarget.video.flow import FlowEstimator, motion, warp

#: Largest blend weight of the warped history (at S = 1 and a fully reliable pixel).
W_MAX = 0.9
#: Source change (0-255, RMS over channels) at which the weight falls to exp(-1) = 0.37.
SOURCE_TOLERANCE = 8.0
#: DIS preset of the stabilizer's flow (see :data:`retarget.video.flow.PRESETS`).
FLOW_PRESET = "medium"
#: Interpolation of the history's warp along the flow. The history is resampled at every
#: frame, so a bilinear warp compounds into a blur over the ~10 frames it spans: bicubic
#: kept 1.2-1.6x the face detail of bilinear on the face-swap pairs at the same flicker
#: (docs/benchmarks.md, "sharp and steady").
HISTORY_RESAMPLE = cv2.INTER_CUBIC


@dataclass
class Link:
    """How the previous frame maps onto the current one, and how far to trust it.

    Attributes:
        map_x, map_y: ``H x W`` float32 sample positions in the previous frame
            (``x + backward flow``), for :func:`cv2.remap`.
        weight: ``H x W`` float32 in ``[0, S * W_MAX]``, the blend weight of the warped
            previous output.
        trust: ``H x W`` float32 in [0, 1], the reliability of the flow alone (:func:`reliability`),
            for what follows the motion without blending pixels (a swap's landmarks,
            :class:`~retarget.faces.steady.SteadyLandmarks`); None where not kept.
    """

    map_x: np.ndarray
    map_y: np.ndarray
    weight: np.ndarray
    trust: Optional[np.ndarray] = None


def reliability(prev: np.ndarray, cur: np.ndarray, backward: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-pixel trust in ``warp(prev, backward)`` as a prediction of ``cur`` (see the module).

    Args:
        prev, cur: consecutive source crops, ``H x W x 3`` uint8 RGB.
        backward: ``flow(cur, prev)``, ``H x W x 2`` float32.
        valid: ``H x W`` bool forward-backward check of ``backward``.

    Returns:
        ``H x W`` float32 in [0, 1].
    """
    predicted = warp(prev, backward).astype(np.float32)
    diff = predicted - cur.astype(np.float32)
    d2 = (diff * diff).mean(axis=2)
    d2 = cv2.blur(d2, (3, 3))
    r = np.exp(-d2 / (SOURCE_TOLERANCE * SOURCE_TOLERANCE)).astype(np.float32)
    r *= valid
    side = min(r.shape[:2])
    k = 2 * max(1, side // 128) + 1  # 3 px at up to 255 px, 5 px at 256-383 px, ...
    r = cv2.erode(r, np.ones((k, k), np.uint8))
    return cv2.blur(r, (k, k))


class Stabilizer:
    """Streaming flow-guided blending of a translated sequence (see the module).

    Args:
        strength: S in [0, 1]; 0 leaves every frame unchanged, 1 is full strength.
        preset: DIS preset of the flow (``ultrafast``, ``fast``, ``medium``).
    """

    def __init__(self, strength: float, preset: str = FLOW_PRESET) -> None:
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"stabilize strength must be in [0, 1], got {strength}")
        self.strength = float(strength)
        self._flow = FlowEstimator(preset)
        self._prev_source: Optional[np.ndarray] = None  # prepare side
        self._prev_output: Optional[np.ndarray] = None  # blend side, float32
        self._grid: Optional[tuple[np.ndarray, np.ndarray]] = None

    def reset(self) -> None:
        """Forget both halves of the state (a new video)."""
        self._prev_source = None
        self._prev_output = None

    def prepare(self, source: Optional[np.ndarray], reset: bool = False) -> Optional[Link]:
        """Measure how the previous source crop moves onto ``source``.

        Args:
            source: the network's input crop, ``S x S x 3`` uint8 RGB; None when the frame
                has none (no face found), which resets.
            reset: start over at this frame (scene cut, new face track, decode hole).

        Returns:
            The :class:`Link` to hand to :meth:`blend` with this frame's translation, or
            None where the sequence starts over (the translation then passes unchanged).
        """
        prev, self._prev_source = self._prev_source, source
        if source is None or prev is None or reset or prev.shape != source.shape or self.strength == 0.0:
            return None
        m = motion(prev, source, self._flow)
        h, w = source.shape[:2]
        if self._grid is None or self._grid[0].shape != (h, w):
            self._grid = tuple(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)))
        trust = reliability(prev, source, m.backward, m.valid)
        weight = trust * (self.strength * W_MAX)
        return Link(self._grid[0] + m.backward[..., 0], self._grid[1] + m.backward[..., 1], weight, trust)

    def blend(self, output: np.ndarray, link: Optional[Link]) -> np.ndarray:
        """Blend this frame's translation with the previous stabilized output.

        Args:
            output: the translation of the frame :meth:`prepare` saw, ``S x S x 3`` uint8.
            link: what :meth:`prepare` returned for that frame.

        Returns:
            ``S x S x 3`` uint8; ``output`` itself where the sequence starts over.
        """
        cur = output.astype(np.float32)
        prev, self._prev_output = self._prev_output, cur
        if link is None or prev is None or prev.shape != cur.shape or link.weight.shape != cur.shape[:2]:
            return output
        warped = cv2.remap(prev, link.map_x, link.map_y, HISTORY_RESAMPLE, borderMode=cv2.BORDER_REPLICATE)
        res = cur + link.weight[..., None] * (warped - cur)
        self._prev_output = res
        return np.clip(res + 0.5, 0, 255).astype(np.uint8)

    def __call__(self, output: np.ndarray, source: Optional[np.ndarray], reset: bool = False) -> np.ndarray:
        """:meth:`prepare` then :meth:`blend` for one frame (sequential use)."""
        return self.blend(output, self.prepare(source, reset))


def stabilize_frames(
    outputs: Sequence[np.ndarray] | Iterable[np.ndarray],
    sources: Sequence[np.ndarray] | Iterable[np.ndarray],
    strength: float,
    *,
    cut_threshold: Optional[float] = 0.5,
    preset: str = FLOW_PRESET,
) -> list[np.ndarray]:
    """Stabilize an in-memory translated sequence along the motion of its sources.

    The code path of ``render --stabilize``, for benchmarks and experiments.

    Args:
        outputs: ``T`` translated frames, ``H x W x 3`` uint8 RGB.
        sources: the ``T`` frames that were translated (same size as ``outputs``).
        strength: S in [0, 1]; 0 returns the outputs unchanged.
        cut_threshold: scene cuts in ``sources`` reset the state, detected with
            :class:`retarget.dataset.scenes.SceneDetector` at this threshold; None: no
            cut detection.
        preset: DIS preset of the flow.

    Returns:
        ``T`` frames ``H x W x 3`` uint8.
    """
    from retarget.dataset.scenes import SceneDetector

    stab = Stabilizer(strength, preset)
    detector = SceneDetector(cut_threshold) if cut_threshold is not None else None
    result = []
    for out, src in zip(outputs, sources):
        if out.shape != src.shape:
            raise ValueError(f"output and source frames differ in size: {out.shape} and {src.shape}")
        cut = detector(src) if detector is not None else False
        result.append(stab(out, src, reset=cut))
    return result
