"""Self-reenactment scores: a rendered video against its ground truth, frame by frame.

The standard evaluation of face reenactment (FOMM, TPSMM, LivePortrait): a person's
held-out frames are driven by their own earlier frames, and the output is compared
with the real held-out frames. Frame ``i`` of the output is compared with frame ``i``
of the truth (both decoded in order; the shorter video sets the count). On each frame,
dlib (or any :class:`~retarget.faces.backends.FaceBackend`) finds the truth's face and
68 landmarks, and the output's face nearest to it (:class:`FaceComparer`). Per video:

* **face PSNR** (dB, capped at :data:`~retarget.eval.metrics.PSNR_CAP`): over the pixels
  (and channels) of the *face region*, the filled convex hull of the truth's 68
  landmarks (jaw and brows: forehead above the brows and hair are left out); the mean
  over the frames with a truth face;
* **face SSIM** (in [-1, 1]): the SSIM map of the luma (the Gaussian window and constants
  of :func:`retarget.eval.metrics.ssim`) averaged over the face region; mean over frames;
* **landmark distance** (% of the truth's inter-ocular distance): the mean over the 68
  points of ``|output point - truth point|``, over the frames where the output's face
  was found; ``found`` counts those frames, out of ``truth_faces``;
* **sharpness ratio**: :func:`~retarget.eval.expression.face_sharpness` of the output over
  the truth's, both inside the truth's face box (:data:`SHARPNESS_INNER`), as ``retarget
  eval`` does it: the ratio of the means over the frames (not a mean of ratios);
* **warping-error ratio**: the output's warping error over the truth's own, both along
  the flow measured on the truth (:func:`retarget.eval.temporal.pair_warping_error`);
  the ratio of the means over the pairs where both are defined, as ``retarget eval``'s
  ratio against the source. 1: the output flickers as little as the real video.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

import cv2
import numpy as np

from retarget.eval.expression import SHARPNESS_INNER, face_sharpness
from retarget.eval.faces import FaceComparer, FaceComparison
from retarget.eval.frames import common_size, fit
from retarget.eval.metrics import PSNR_CAP, SSIM_WINDOW, ssim_map
from retarget.eval.temporal import pair_warping_error
from retarget.video.flow import FlowEstimator, motion


def face_region(points: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The filled convex hull of ``(68, 2)`` landmarks (x, y in pixels) as an ``H x W`` bool mask.

    ``shape``: the frame's shape (only its first two entries, ``H, W``, are used).
    The hull of all 68 points is that of the jaw (0-16) and the brows (17-26).
    """
    mask = np.zeros(shape[:2], np.uint8)
    hull = cv2.convexHull(np.round(np.asarray(points, np.float64)).astype(np.int32).reshape(-1, 1, 2))
    cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(bool)


def region_psnr(output: np.ndarray, truth: np.ndarray, region: np.ndarray, cap: float = PSNR_CAP) -> float:
    """PSNR (dB, in ``[0, cap]``) over the pixels of ``region`` (all channels); NaN for an empty region.

    Args:
        output, truth: ``H x W x 3`` (or ``H x W``) uint8 frames of one shape.
        region: ``H x W`` bool mask.
    """
    if output.shape != truth.shape or region.shape != truth.shape[:2]:
        raise ValueError(f"shapes differ: {output.shape}, {truth.shape}, region {region.shape}")
    if not region.any():
        return float("nan")
    diff = output[region].astype(np.float64) - truth[region].astype(np.float64)
    mse = float(np.mean(diff * diff))
    return float(cap) if mse <= 0.0 else float(min(cap, 10.0 * math.log10(255.0**2 / mse)))


def region_ssim(output: np.ndarray, truth: np.ndarray, region: np.ndarray) -> float:
    """:func:`~retarget.eval.metrics.ssim_map` averaged over ``region`` (``H x W`` bool); NaN for an empty region.

    Only the region's bounding box plus the window's radius is computed: the values
    inside the box are those of the whole frame's map.
    """
    if output.shape != truth.shape or region.shape != truth.shape[:2]:
        raise ValueError(f"shapes differ: {output.shape}, {truth.shape}, region {region.shape}")
    ys, xs = np.nonzero(region)
    if len(ys) == 0:
        return float("nan")
    r, (h, w) = SSIM_WINDOW // 2, region.shape
    y0, y1, x0, x1 = max(0, ys.min() - r), min(h, ys.max() + 1 + r), max(0, xs.min() - r), min(w, xs.max() + 1 + r)
    smap = ssim_map(output[y0:y1, x0:x1], truth[y0:y1, x0:x1])
    return float(smap[region[y0:y1, x0:x1]].mean(dtype=np.float64))


@dataclass(frozen=True)
class ReenactScores:
    """The scores of one output video against its truth (None where nothing was measured)."""

    frames: int  # frame pairs compared
    truth_faces: int  # of them, frames whose truth shows a face
    found: int  # of those, frames whose output has a face at the truth face's place
    psnr: Optional[float]  # face-region PSNR, dB, mean over the truth_faces frames
    ssim: Optional[float]  # face-region SSIM, mean over the truth_faces frames
    landmark: Optional[float]  # landmark distance, % of the truth's inter-ocular distance, over found frames
    sharp_output: Optional[float]  # mean Laplacian variance of the output in the truth's face box
    sharp_truth: Optional[float]  # the same of the truth, same frames
    sharpness: Optional[float]  # sharp_output / sharp_truth
    warp_output: Optional[float]  # mean L1 warping error (0-255) of the output along the truth's flow
    warp_truth: Optional[float]  # the truth's own, same pairs
    warp_ratio: Optional[float]  # warp_output / warp_truth
    pairs: int  # frame pairs in the warping errors

    def to_dict(self) -> dict[str, Any]:
        """The fields plus ``found_share`` (found / truth_faces, None without truth faces)."""
        share = self.found / self.truth_faces if self.truth_faces else None
        return {**asdict(self), "found_share": share}


def _mean(values: list[float]) -> Optional[float]:
    vals = [v for v in values if math.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def _ratio(num: list[float], den: list[float]) -> tuple[Optional[float], Optional[float], Optional[float], int]:
    """Means of ``num`` and ``den`` over the positions where both are finite, their ratio, the count."""
    both = [(a, b) for a, b in zip(num, den) if math.isfinite(a) and math.isfinite(b)]
    if not both:
        return None, None, None, 0
    a, b = (float(np.mean(v)) for v in zip(*both))
    return a, b, (a / b if b > 1e-9 else None), len(both)


class ReenactScorer:
    """Accumulates :class:`ReenactScores` one frame pair at a time (two frames of state).

    Args:
        comparer: finds the faces and landmarks (None: every :meth:`add` must pass ``face``).
        flow_preset: DIS preset of the truth's optical flow (``ultrafast``, ``fast``, ``medium``).
    """

    def __init__(self, comparer: Optional[FaceComparer] = None, flow_preset: str = "medium") -> None:
        self.comparer = comparer
        self.flow = FlowEstimator(flow_preset)
        self.values: dict[str, list[float]] = {
            k: [] for k in ("psnr", "ssim", "landmark", "sharp_output", "sharp_truth", "warp_output", "warp_truth")
        }
        self.frames = self.truth_faces = self.found = 0
        self._prev: Optional[tuple[np.ndarray, np.ndarray]] = None

    def add(self, output: np.ndarray, truth: np.ndarray, face: Optional[FaceComparison] = None) -> None:
        """Score one frame pair.

        Args:
            output, truth: ``H x W x 3`` uint8 RGB frames of one shape (the output shows
                the moment of the truth frame).
            face: the faces found (:meth:`FaceComparer.compare` ``(truth, output)``: its
                ``source_*`` fields describe the truth); None: found with ``comparer``.
        """
        if output.shape != truth.shape:
            raise ValueError(f"frames must have one shape, got {output.shape} and {truth.shape}")
        if face is None:
            if self.comparer is None:
                raise ValueError("no face given and no comparer to find it")
            face = self.comparer.compare(truth, output)
        self.frames += 1
        if face.source_found and face.source_points is not None and face.source_box is not None:
            self.truth_faces += 1
            region = face_region(face.source_points, truth.shape)
            self.values["psnr"].append(region_psnr(output, truth, region))
            self.values["ssim"].append(region_ssim(output, truth, region))
            self.values["sharp_output"].append(face_sharpness(output, face.source_box, SHARPNESS_INNER))
            self.values["sharp_truth"].append(face_sharpness(truth, face.source_box, SHARPNESS_INNER))
            if face.output_found and face.error is not None:
                self.found += 1
                self.values["landmark"].append(100.0 * face.error)
        if self._prev is not None:
            prev_out, prev_truth = self._prev
            m = motion(prev_truth, truth, self.flow)
            self.values["warp_output"].append(pair_warping_error(prev_out, output, m))
            self.values["warp_truth"].append(pair_warping_error(prev_truth, truth, m))
        self._prev = (output, truth)

    def summary(self) -> ReenactScores:
        """The scores of the frames added so far."""
        v = self.values
        sharp_out, sharp_truth, sharpness, _ = _ratio(v["sharp_output"], v["sharp_truth"])
        warp_out, warp_truth, warp_ratio, pairs = _ratio(v["warp_output"], v["warp_truth"])
        return ReenactScores(
            frames=self.frames,
            truth_faces=self.truth_faces,
            found=self.found,
            psnr=_mean(v["psnr"]),
            ssim=_mean(v["ssim"]),
            landmark=_mean(v["landmark"]),
            sharp_output=sharp_out,
            sharp_truth=sharp_truth,
            sharpness=sharpness,
            warp_output=warp_out,
            warp_truth=warp_truth,
            warp_ratio=warp_ratio,
            pairs=pairs,
        )


def _frames(path: str | Path) -> Iterable[np.ndarray]:
    from retarget.video.reader import VideoReader

    with VideoReader(path) as reader:
        for frame in reader:
            yield frame.image


def score_videos(
    output: str | Path,
    truth: str | Path,
    comparer: Optional[FaceComparer] = None,
    flow_preset: str = "medium",
) -> tuple[ReenactScores, dict[str, int]]:
    """Score the video ``output`` against the video ``truth``, frame ``i`` against frame ``i``.

    Both are brought to one size as ``retarget eval`` does (:func:`retarget.eval.frames.common_size`).

    Args:
        output, truth: video paths.
        comparer: the face finder; None: dlib's (``get_backend("dlib")``).
        flow_preset: see :class:`ReenactScorer`.

    Returns:
        The scores and the frame counts read: ``{"output": n, "truth": m}`` (the pairs
        compared are the first ``min(n, m)``).
    """
    from retarget.faces.backends import get_backend
    from retarget.video.reader import probe

    o, t = probe(output), probe(truth)
    size = common_size((o.width, o.height), [(t.width, t.height)])
    scorer = ReenactScorer(comparer or FaceComparer(get_backend("dlib")), flow_preset)
    counts = {"output": 0, "truth": 0}
    outs, truths = iter(_frames(output)), iter(_frames(truth))
    for out_img in outs:
        counts["output"] += 1
        truth_img = next(truths, None)
        if truth_img is None:
            break
        counts["truth"] += 1
        scorer.add(fit(out_img, size), fit(truth_img, size))
    counts["output"] += sum(1 for _ in outs)
    counts["truth"] += sum(1 for _ in truths)
    return scorer.summary(), counts
