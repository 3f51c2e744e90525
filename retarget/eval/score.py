"""Scoring matched frames one at a time: warping errors, fidelity to a truth, faces.

:class:`FrameScorer` keeps a few frames of state (the previous output, source and
truth frame), so whole videos never sit in memory. :func:`score_frames` runs it over
in-memory frame lists, for benchmarks and notebooks; ``retarget eval``
(:func:`retarget.eval.evaluate.evaluate`) feeds it frames decoded and matched by time.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import cv2
import numpy as np

from retarget.dataset.scenes import SceneDetector
from retarget.eval.expression import ExpressionTrack
from retarget.eval.faces import FaceComparer, FaceComparison
from retarget.eval.frames import common_size, fit
from retarget.eval.identity import IdentityTrack, TargetFaces, get_descriptor, target_faces
from retarget.faces.identity import Descriptor
from retarget.eval.metrics import PSNR_CAP, flicker, psnr, ssim
from retarget.eval.temporal import non_occluded, pair_e_warp, pair_warping_error
from retarget.faces.backends import FaceBackend
from retarget.video.flow import FlowEstimator, motion


def _finite(values: list[Optional[float]]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def _mean(values: list[Optional[float]]) -> Optional[float]:
    vals = _finite(values)
    return float(np.mean(vals)) if vals else None


def _clean(value: Optional[float]) -> Optional[float]:
    return value if value is not None and math.isfinite(value) else None


class FrameScorer:
    """Accumulates per-frame and per-pair scores of a translated video.

    Args:
        faces: a landmark backend for the face score (None: no face score).
        flow_preset: DIS preset of the source's optical flow (``ultrafast``, ``fast``,
            ``medium``).
        cut_threshold: scene-cut threshold on the source (on the truth when no source
            is given; see :class:`retarget.dataset.scenes.SceneDetector`); pairs across
            a cut get no pair score (warping errors, flicker): no flow or change links
            two shots. 1 disables the check.
        per_frame: keep per-frame lists for :meth:`summary`.
        target: the target person's mean face descriptor (:func:`retarget.eval.identity.target_faces`):
            adds the identity of the output faces (needs ``faces``).
        descriptor: the face descriptor model for ``target`` (None: dlib's).

    With ``faces``, mouth and eye openings and face sharpness are measured too
    (:mod:`retarget.eval.expression`). Feed frames with :meth:`add`; read the result with :meth:`summary`.
    """

    def __init__(
        self,
        *,
        faces: Optional[FaceBackend] = None,
        flow_preset: str = "medium",
        cut_threshold: float = 0.5,
        per_frame: bool = False,
        target: Optional[TargetFaces] = None,
        descriptor: Optional[Descriptor] = None,
    ) -> None:
        if target is not None and faces is None:
            raise ValueError("the identity score needs a face backend")
        self.flow = FlowEstimator(flow_preset)
        self.scenes = SceneDetector(cut_threshold)
        self.faces = FaceComparer(faces) if faces is not None else None
        self.face_backend = getattr(faces, "name", None) if faces is not None else None
        self.expression = ExpressionTrack() if faces is not None else None
        self.identity = IdentityTrack(descriptor or get_descriptor(), target) if target is not None else None
        self.per_frame = per_frame
        self.frames = 0
        self.cuts = 0  # frame pairs across a scene cut (no pair score)
        self.gaps = 0  # breaks in the sequence (an unmatched frame in between)
        self.no_source_face = 0
        self.no_output_face = 0
        self.has_source = self.has_truth = False
        self._prev: Optional[tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]] = None
        keys = (
            "time",
            "warp_output",
            "warp_source",
            "warp_truth",
            "e_warp_output",
            "e_warp_source",
            "e_warp_truth",
            "psnr",
            "ssim",
            "flicker",
            "flicker_source",
            "flicker_still",
            "landmark_error",
        )
        self.values: dict[str, list[Optional[float]]] = {k: [] for k in keys}

    def add(
        self,
        output: np.ndarray,
        source: Optional[np.ndarray] = None,
        truth: Optional[np.ndarray] = None,
        *,
        time: Optional[float] = None,
        contiguous: bool = True,
    ) -> None:
        """Score one output frame against its source and truth frames.

        Args:
            output: ``H x W x 3`` uint8 RGB translated frame.
            source: the frame it was translated from, same shape (or None).
            truth: its ground-truth translation, same shape (or None).
            time: its time in seconds (kept in the per-frame lists).
            contiguous: False when frames were left out since the previous call; no
                pair score links the two.
        """
        self.frames += 1
        self.has_source |= source is not None
        self.has_truth |= truth is not None
        row: dict[str, Optional[float]] = dict.fromkeys(self.values)
        row["time"] = time
        shot = source if source is not None else truth
        cut = self.scenes(shot) if shot is not None else False
        if not contiguous and self._prev is not None:
            self.gaps += 1
        prev = self._prev if contiguous else None
        if prev is not None and cut:
            self.cuts += 1
            prev = None  # no pair score links two shots
        if prev is not None:
            self._pair_scores(row, prev, output, source, truth)
        if truth is not None:
            row["psnr"] = psnr(output, truth)
            row["ssim"] = ssim(output, truth)
        if self.faces is not None and source is not None:
            found = self.faces.compare(source, output)
            self.no_source_face += not found.source_found
            self.no_output_face += found.source_found and not found.output_found
            row["landmark_error"] = found.error
            self._face_tracks(source, output, found)
        elif self.faces is not None:
            self._face_tracks(output, output, None)
        self._prev = (output, source, truth)
        for k, v in row.items():
            self.values[k].append(v)

    def _pair_scores(
        self,
        row: dict[str, Optional[float]],
        prev: tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray]],
        output: np.ndarray,
        source: Optional[np.ndarray],
        truth: Optional[np.ndarray],
    ) -> None:
        """Fill ``row``'s pair scores of the pair (``prev``, this frame), within one shot."""
        prev_out, prev_src, prev_truth = prev
        if source is not None and prev_src is not None:
            m = motion(prev_src, source, self.flow)
            mask = non_occluded(m)  # Lai et al.'s M, shared by the three E_warp values
            row["warp_output"] = pair_warping_error(prev_out, output, m)
            row["warp_source"] = pair_warping_error(prev_src, source, m)
            row["e_warp_output"] = pair_e_warp(prev_out, output, m, mask)
            row["e_warp_source"] = pair_e_warp(prev_src, source, m, mask)
            if truth is not None and prev_truth is not None:
                row["warp_truth"] = pair_warping_error(prev_truth, truth, m)
                row["e_warp_truth"] = pair_e_warp(prev_truth, truth, m, mask)
        if truth is not None and prev_truth is not None:
            row["flicker"] = flicker(prev_out, output, prev_truth, truth)
            # references on the same scale: a still output (mean |truth change|), the source
            row["flicker_still"] = float(np.mean(cv2.absdiff(truth, prev_truth), dtype=np.float64))
            if source is not None and prev_src is not None:
                row["flicker_source"] = flicker(prev_src, source, prev_truth, truth)

    def _face_tracks(self, source: np.ndarray, output: np.ndarray, found: Optional[FaceComparison]) -> None:
        """Expression, sharpness and identity of one frame pair (one entry per frame, None: no faces)."""
        for track in (self.expression, self.identity):
            if track is not None:
                track.add(source, output, found)

    def _face_summary(self) -> dict[str, Any]:
        out = self.expression.summary() if self.expression is not None else {}
        out["identity"] = self.identity.summary() if self.identity is not None else None
        return out

    def _warping(self, prefix: str) -> Optional[dict[str, Any]]:
        """The summary of one warping error (``warp`` or ``e_warp`` per-frame values)."""
        if not self.has_source:
            return None
        v = self.values
        both = [
            (o, s)
            for o, s in zip(v[f"{prefix}_output"], v[f"{prefix}_source"])
            if o is not None and s is not None and math.isfinite(o) and math.isfinite(s)
        ]
        out_mean = float(np.mean([o for o, _ in both])) if both else None
        src_mean = float(np.mean([s for _, s in both])) if both else None
        attempted = sum(1 for o in v[f"{prefix}_output"] if o is not None)
        return {
            "output": out_mean,
            "source": src_mean,
            "truth": _mean(v[f"{prefix}_truth"]) if self.has_truth else None,
            "ratio": out_mean / src_mean if both and src_mean and src_mean > 1e-9 else None,
            "pairs": len(both),
            "cuts": self.cuts,
            "unreliable": attempted - len(both),  # pairs where no pixel passed the mask
        }

    def summary(self) -> dict[str, Any]:
        """The scores so far as a JSON-ready dict (None where a score does not apply).

        Keys: ``frames``, ``gaps``, ``warping_error`` (retarget's L1 figure, 0-255:
        ``output``, ``source``, ``truth``, ``ratio``, ``pairs``, ``cuts``,
        ``unreliable``), ``e_warp`` (Lai et al.'s E_warp, squared RGB in [0, 1], the
        same keys), ``truth`` (``psnr``, ``psnr_cap``, ``ssim``, ``flicker``,
        ``flicker_source``, ``flicker_still``, ``frames``, ``pairs``, ``cuts``), ``faces``
        (``landmark_error``, ``frames``, ``no_source_face``, ``no_output_face``,
        ``backend``, ``expression``, ``sharpness`` and ``identity``: see
        :meth:`ExpressionTrack.summary <retarget.eval.expression.ExpressionTrack.summary>`
        and :meth:`IdentityTrack.summary <retarget.eval.identity.IdentityTrack.summary>`), and with ``per_frame`` a ``per_frame`` dict of equal-length lists
        (pair scores sit at the later frame of the pair; null where not defined).
        """
        v = self.values
        truth = None
        if self.has_truth:
            truth = {
                "psnr": _mean(v["psnr"]),
                "psnr_cap": PSNR_CAP,
                "ssim": _mean(v["ssim"]),
                "flicker": _mean(v["flicker"]),
                "flicker_source": _mean(v["flicker_source"]),
                "flicker_still": _mean(v["flicker_still"]),
                "frames": len(_finite(v["psnr"])),
                "pairs": len(_finite(v["flicker"])),
                "cuts": self.cuts,  # pairs across a scene cut, left out of flicker
            }
        faces = None
        if self.faces is not None:
            faces = {
                "landmark_error": _mean(v["landmark_error"]),
                "frames": len(_finite(v["landmark_error"])),
                "no_source_face": self.no_source_face,
                "no_output_face": self.no_output_face,
                "backend": self.face_backend,
                **self._face_summary(),
            }
        out: dict[str, Any] = {
            "frames": self.frames,
            "gaps": self.gaps,
            "warping_error": self._warping("warp"),
            "e_warp": self._warping("e_warp"),
            "truth": truth,
            "faces": faces,
        }
        if self.per_frame:
            out["per_frame"] = {k: [_clean(x) for x in vals] for k, vals in v.items()}
            for track in (self.expression, self.identity):
                out["per_frame"].update(track.per_frame() if track is not None else {})
        return out


def score_frames(
    outputs: Sequence[np.ndarray],
    sources: Optional[Sequence[np.ndarray]] = None,
    truth: Optional[Sequence[np.ndarray]] = None,
    *,
    faces: Optional[FaceBackend] = None,
    flow_preset: str = "medium",
    cut_threshold: float = 0.5,
    per_frame: bool = False,
    target: Optional[TargetFaces | str] = None,
    descriptor: Optional[Descriptor] = None,
) -> dict[str, Any]:
    """Score in-memory frame lists, frame ``i`` of each list being one moment.

    Args:
        outputs: ``T`` translated frames, ``H x W x 3`` uint8 RGB.
        sources: the ``T`` frames they were translated from (for the warping error and
            faces); any size, brought to the compared size as ``retarget eval`` does.
        truth: ``T`` ground-truth frames (for PSNR, SSIM, flicker); any size.
        faces: a landmark backend for the face score (needs ``sources``).
        flow_preset, cut_threshold, per_frame, descriptor: see :class:`FrameScorer`.
        target: the target person for the identity score (needs ``faces``): its
            :class:`~retarget.eval.identity.TargetFaces`, or the path of a dataset folder
            or video to compute them from.

    Returns:
        :meth:`FrameScorer.summary` plus ``size``: the compared ``[width, height]``.

    Raises:
        ValueError: empty ``outputs``, lists of different lengths, ``faces`` without
            ``sources``, or ``target`` without ``faces``.
        RetargetError: ``target`` is a path with no face (or missing).
    """
    if len(outputs) == 0:
        raise ValueError("no output frames to score")
    for name, seq in (("sources", sources), ("truth", truth)):
        if seq is not None and len(seq) != len(outputs):
            raise ValueError(f"{name} has {len(seq)} frames, outputs {len(outputs)}")
    if faces is not None and sources is None:
        raise ValueError("the face score needs the source frames")
    h, w = outputs[0].shape[:2]
    refs = [(s[0].shape[1], s[0].shape[0]) for s in (sources, truth) if s is not None]
    size = common_size((w, h), refs)
    if isinstance(target, str) and faces is not None:
        descriptor = descriptor or get_descriptor()
        target = target_faces(target, FaceComparer(faces), descriptor)
    scorer = FrameScorer(
        faces=faces,
        flow_preset=flow_preset,
        cut_threshold=cut_threshold,
        per_frame=per_frame,
        target=target,  # type: ignore[arg-type]  # a str without faces: FrameScorer says so
        descriptor=descriptor,
    )
    for i, out in enumerate(outputs):
        scorer.add(
            fit(out, size),
            fit(sources[i], size) if sources is not None else None,
            fit(truth[i], size) if truth is not None else None,
        )
    return {**scorer.summary(), "size": list(size)}
