"""Face swap by retrieval: the target person's own frames, chosen and warped to follow the source.

No network: for each aligned source face, :class:`FaceSwap` picks the frame of the target's
face dataset (``retarget extract --align face``, :class:`FaceIndex`) whose expression and
pose are nearest, then warps it (:mod:`retarget.faces.morph`) so its landmarks move as the
source's do. What comes back is the target's real skin, eyes and teeth at the dataset's
resolution, so it looks like the target and is as sharp as the target's video; it can only
show expressions the target's footage contains, which the warp then adjusts.

Per source face (landmarks in crop pixels, the same crop geometry as the dataset's):

The index is built from a dataset by :func:`retarget.render.swap.face_index` (faces sit
below datasets in the layers).

1. **Features** (:func:`expression_features`): inner and outer mouth opening, mouth width,
   both eyes' openings (each relative to the eye distance or the eye's width), yaw and
   pitch proxies (nose tip against the jaw and against eyes and chin). Features whose rest
   value differs from person to person (:data:`PERSONAL`: mouth width, yaw, pitch) are
   compared as offsets from each person's rest; openings are compared as they are (a closed
   mouth is closed on everyone). A person's **rest** (:func:`rest_frames`) is the mean of
   their faces with the mouth closed and the eyes open, not the mean of all: a short clip of
   "O" mouths has an "O" mean, against which an "O" would look like rest. The target's is
   taken from its whole dataset, the source's from its faces so far (:class:`RunningRest`);
   until the source has shown one, both sides use their plain means (like for like: a
   closed rest against an open mean would bias the offsets).
2. **Pick**: the nearest target frame in squared distance scaled by the target's spread per
   feature, each capped (:data:`MISMATCH_CAP`: a feature no target frame comes near does not
   decide alone) and weighted by :data:`WEIGHTS` (:func:`match_cost`); the previous pick, or the frame after it in the target's
   video, is kept unless another is nearer by more than ``hold``, so the texture does not
   jump every frame; a new pick fades in over ``fade`` frames.
3. **Warp**: the target's rest face shape plus the source's deviation from its own rest
   shape so far (smoothed over frames by ``smooth``, as is the mouth opening below) is where the picked frame's landmarks go.
   The target keeps its face shape; the source gives the motion. The mouth is then opened
   or closed to the source's own inner opening (:func:`set_mouth_opening`: lower lip and
   chin moved), since a source that talks with its mouth open most of the time has an open
   mean, and its deviation from it alone would keep the target's mouth shut. During a fade every
   target frame shown is warped to that same shape and they are mixed.
4. **Eyes** (``eyes``, :mod:`retarget.faces.eyes`): a second pick, by eye openings and pose
   alone, nearest the shape drawn, with its own hold and fade, warped to the same shape
   and blended into the eye region; where the shape closes an eye further than every target
   frame can, that eye is warped less closed and its upper lid lowered over it (the lid
   skin stretched down) instead of an open eye squashed into a dark slit.

:func:`mask_points` gives the paste a face outline inside both faces, so the target's
background never comes along where the source's face is wider, and the paste's mask reaches
:data:`BROW_REACH` above the brows instead of over the forehead, where the target's hair
would come along.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from retarget.imageio import read_image
from retarget.config import FaceConfig
from retarget.errors import RetargetError
from retarget.faces.eyes import (
    CLOSE_MARGIN,
    EYE_HOLD,
    close_eyes,
    closure,
    eye_cost,
    eye_region,
    keep_or_pick,
    lids_apart,
    open_lids,
)
from retarget.faces.morph import border_points, triangulate, warp_picture

__all__ = [
    "FEATURES",
    "FaceIndex",
    "FaceSwap",
    "Fader",
    "RunningRest",
    "Swapped",
    "expression_features",
    "mask_points",
    "match_cost",
    "rest_frames",
    "set_mouth_opening",
]

#: What :func:`expression_features` measures, in order.
FEATURES = ("mouth_inner", "mouth_outer", "mouth_width", "eye_left", "eye_right", "yaw", "pitch")
#: Weight of each feature in the match (the mouth first: it carries speech).
WEIGHTS = np.array([2.0, 1.0, 1.0, 0.5, 0.5, 1.0, 1.0])
#: Features compared as offsets from each person's rest (:func:`rest_frames`; their rest value is personal).
PERSONAL = np.array([False, False, True, False, False, True, True])
#: Inner mouth opening (per eye distance) under which a face counts as at rest (:func:`rest_frames`).
#: The rest instead of the mean (benchmarks/faces_self.py, 5 people): face PSNR 26.72 -> 27.41 dB,
#: landmark distance 2.98 -> 2.52 % of the eye distance. On a quick proxy (the swapped crop
#: against the truth's crop) 0.05 and 0.1 did alike; 0.15 let half-open mouths in (one
#: person's short, always-open clip then lost 3 dB).
REST_OPENING = 0.1
#: A face at rest has both eyes open at least this share of the person's mean eye opening (a
#: blink or a squint is not rest); without it one person with half-closed eyes lost 0.4 dB on the proxy.
REST_EYES = 0.8
#: Faces at rest a source must show before its rest replaces its mean (:class:`RunningRest`):
#: one frame can be a landmark glitch (one person's clip, mouth open throughout, had a single
#: "closed" frame, turned aside; warped against it, the whole clip's landmarks fell 2.3x further off).
MIN_REST = 5
#: A feature no target frame comes near costs no more than this (squared target standard
#: deviations: 2.5), so it does not decide the pick alone: the mouth still does. With the
#: look-ahead's rest pose, one pair's first frames turned further from it than any target
#: frame and the pose chose closed mouths (mouth correlation 0.72; capped: 0.89). Caps of
#: 4, 6.25 and 9 gave self-reenactment 28.37, 28.56 and 28.81 dB, the cross pairs' lowest
#: mouth correlation 0.81, 0.86 and 0.72.
MISMATCH_CAP = 6.25
#: Default ``hold``: how much nearer (squared, in target standard deviations, weighted) another
#: frame must be before the pick leaves the previous one or its successor.
HOLD = 3.0
#: Default ``smooth``: weight of the previous frame in the source's smoothed expression.
SMOOTH = 0.5
#: Default ``eye_smooth``: the same for the eyes' landmarks (with ``eyes`` on; a blink lasts a
#: few frames, and the lag would halve it).
EYE_SMOOTH = 0.0
#: How far above the brows the swap's paste mask reaches (``forehead`` of
#: :func:`retarget.faces.paste.paste_back`, a share of the eye-to-chin height; the paste's default
#: is :data:`~retarget.faces.paste.FOREHEAD`): enough for the brows, not the target's hair.
BROW_REACH = 0.2
#: Target faces :meth:`FaceIndex.image` keeps in memory (cross-fades of the face and the eyes show a few at once).
CACHED = 12
#: Default ``fade``: frames a new pick takes to replace the previous one.
FADE = 4
#: Lower-lip landmarks (outer 55-59, inner 65-67), moved to open or close the mouth.
LOWER_LIP = np.array([55, 56, 57, 58, 59, 65, 66, 67])
#: Chin landmarks, and the share of a mouth opening each follows (the jaw drops with it).
CHIN = np.array([5, 6, 7, 8, 9, 10, 11])
CHIN_SHARE = np.array([0.3, 0.6, 0.8, 0.9, 0.8, 0.6, 0.3])
#: Landmarks of the face outline (jaw 0-16, brows 17-26): the paste mask's hull.
OUTLINE = np.arange(27)


def _dist(points: np.ndarray, i: int, j: int) -> float:
    return float(np.linalg.norm(points[i] - points[j]))


def expression_features(points: np.ndarray) -> np.ndarray:
    """Expression and pose of a face from its 68 landmarks (any pixel frame without shear).

    Args:
        points: ``(68, 2)`` dlib/iBUG landmarks.

    Returns:
        ``(7,)`` float64 in the order of :data:`FEATURES`: mouth openings and width per eye
        distance, eye openings per eye width (about 0.3 open, under 0.15 shut), yaw (nose
        tip's offset from the jaw's middle per jaw width, 0 frontal) and pitch (nose tip's
        height between eyes and chin).
    """
    p = np.asarray(points, np.float64)
    left, right = p[36:42].mean(0), p[42:48].mean(0)
    eyes = max(float(np.linalg.norm(left - right)), 1e-6)
    inner = (_dist(p, 61, 67) + _dist(p, 62, 66) + _dist(p, 63, 65)) / 3.0
    eye_l = (_dist(p, 37, 41) + _dist(p, 38, 40)) / (2.0 * max(_dist(p, 36, 39), 1e-6))
    eye_r = (_dist(p, 43, 47) + _dist(p, 44, 46)) / (2.0 * max(_dist(p, 42, 45), 1e-6))
    jaw_mid, jaw = (p[0] + p[16]) / 2.0, max(_dist(p, 0, 16), 1e-6)
    eye_mid = (left + right) / 2.0
    pitch = (p[30, 1] - eye_mid[1]) / max(p[8, 1] - eye_mid[1], 1e-6)
    return np.array(
        [
            inner / eyes,
            _dist(p, 51, 57) / eyes,
            _dist(p, 48, 54) / eyes,
            eye_l,
            eye_r,
            (p[30, 0] - jaw_mid[0]) / jaw,
            pitch,
        ]
    )


def rest_frames(features: np.ndarray) -> np.ndarray:
    """Which faces show a person at rest: mouth closed (inner opening under :data:`REST_OPENING`)
    and eyes open (at least :data:`REST_EYES` of the mean eye opening); all faces where none does.

    Their mean is the person's rest shape and rest features: the plain mean of a short clip is
    biased by what it shows (a clip of "O" mouths has an "O" mean, and an "O" then looks like rest).

    Args:
        features: ``(N, 7)`` :func:`expression_features` of one person's faces.

    Returns:
        ``(N,)`` bool.
    """
    f = np.asarray(features, np.float64)
    eyes = f[:, 3:5].mean(1)
    rest = (f[:, 0] < REST_OPENING) & (eyes >= REST_EYES * eyes.mean())
    return rest if rest.any() else np.ones(len(f), bool)


def match_cost(features: np.ndarray, query: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """How far each target face is from ``query``: per feature the squared distance in the
    target's standard deviations (``spread``), capped at :data:`MISMATCH_CAP`, weighted by
    :data:`WEIGHTS` and summed.

    Args:
        features: ``(N, 7)`` the target's :func:`expression_features`.
        query: ``(7,)`` the source face's, personal offsets applied.
        spread: ``(7,)`` the target's standard deviation per feature.

    Returns:
        ``(N,)`` float64.
    """
    return (np.minimum(((features - query) / spread) ** 2, MISMATCH_CAP) * WEIGHTS).sum(1)


def set_mouth_opening(points: np.ndarray, opening: float) -> np.ndarray:
    """``points`` with the lower lip and chin moved down (or up) so the inner mouth opening is
    ``opening`` (per eye distance, as :func:`expression_features` measures it); upright faces.

    Returns:
        ``(68, 2)`` float64; the lips never cross (the opening stays >= 0).
    """
    p = np.asarray(points, np.float64).copy()
    features = expression_features(p)
    eyes = float(np.linalg.norm(p[36:42].mean(0) - p[42:48].mean(0)))
    shift = (max(opening, 0.0) - features[0]) * eyes
    p[LOWER_LIP, 1] += shift
    p[CHIN, 1] += shift * CHIN_SHARE
    return p


def mask_points(source: np.ndarray, swapped: np.ndarray) -> np.ndarray:
    """Landmarks for the paste's mask (:func:`retarget.faces.paste.face_outline`) whose outline
    lies inside both faces: per outline point (:data:`OUTLINE`), the one nearer the nose tip
    (point 30), so the target's background never comes along where the source's face is
    wider.

    Args:
        source, swapped: ``(68, 2)`` landmarks of the source face and of the warped target
            face, in the same pixels.

    Returns:
        ``(68, 2)`` float64: ``swapped`` with those outline points taken from ``source``.
    """
    src, out = np.asarray(source, np.float64), np.asarray(swapped, np.float64).copy()
    centre = src[30]
    nearer = np.linalg.norm(src[OUTLINE] - centre, axis=1) < np.linalg.norm(out[OUTLINE] - centre, axis=1)
    out[OUTLINE[nearer]] = src[OUTLINE[nearer]]
    return out


@dataclass
class FaceIndex:
    """A target person's aligned faces, with landmarks in crop pixels and their features.

    Attributes:
        root: the dataset folder.
        files: one image per face, in the dataset's order.
        points: ``(N, 68, 2)`` float64 landmarks in crop pixels.
        segments: ``(N,)`` the dataset's segment of each face (consecutive frames share one).
        size: crop side (px).
        face: the face options the dataset was extracted with (margin, backend...).

    Derived: ``features`` ``(N, 7)``, their ``mean_features`` and ``spread``, ``mean_points``,
    and the rest (:func:`rest_frames`): ``rest_points`` ``(68, 2)`` and ``rest_features``.
    """

    root: Path
    files: list[Path]
    points: np.ndarray
    segments: np.ndarray
    size: int
    face: FaceConfig

    def __post_init__(self) -> None:
        self.features = np.stack([expression_features(p) for p in self.points])
        self.mean_features = self.features.mean(0)
        self.spread = self.features.std(0) + 1e-3
        self.mean_points = self.points.mean(0)
        rest = rest_frames(self.features)
        self.rest_points, self.rest_features = self.points[rest].mean(0), self.features[rest].mean(0)
        self._cached: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.files)

    def image(self, k: int) -> np.ndarray:
        """Face ``k`` as ``size x size x 3`` uint8 RGB (read from disk; the last few read are kept)."""
        if k in self._cached:
            return self._cached[k]
        bgr = read_image(self.files[k])
        if bgr is None or bgr.shape[:2] != (self.size, self.size):
            raise RetargetError(f"{self.files[k]}: unreadable or not a {self.size} px face of {self.root}")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if len(self._cached) >= CACHED:
            self._cached.pop(next(iter(self._cached)))  # the oldest
        self._cached[k] = rgb
        return rgb


class RunningRest:
    """The source's rest shape and features as its faces come (:func:`rest_frames`, one face at a
    time): the mean of the faces so far with the mouth closed and the eyes open (at least
    :data:`REST_EYES` of the mean eye opening so far, judged as each face comes); the mean of all
    of them until :data:`MIN_REST` are."""

    def __init__(self) -> None:
        self.seen, self.at_rest = 0, 0
        self._eyes = 0.0  # the sum of the eye openings seen
        self._all = (np.zeros((68, 2)), np.zeros(len(FEATURES)))  # sums of points and features
        self._rest = (np.zeros((68, 2)), np.zeros(len(FEATURES)))

    def add(self, points: np.ndarray, features: np.ndarray) -> None:
        """Count one face: its ``(68, 2)`` landmarks and :func:`expression_features`."""
        eyes = float(features[3:5].mean())
        self.seen += 1
        self._eyes += eyes
        self._all = (self._all[0] + points, self._all[1] + features)
        if features[0] < REST_OPENING and eyes >= REST_EYES * self._eyes / self.seen:
            self.at_rest += 1
            self._rest = (self._rest[0] + points, self._rest[1] + features)

    @property
    def rested(self) -> bool:
        """Whether enough faces were at rest (:data:`MIN_REST`) for their mean to be the rest."""
        return self.at_rest >= MIN_REST

    def rest(self) -> tuple[np.ndarray, np.ndarray]:
        """The rest landmarks ``(68, 2)`` and features ``(7,)`` (zeros before any face)."""
        n, (points, features) = (self.at_rest, self._rest) if self.rested else (max(self.seen, 1), self._all)
        return points / n, features / n


@dataclass
class Swapped:
    """One swapped face: ``image`` (``S x S x 3`` uint8), its landmarks ``points`` (crop px), the
    index of the target frame it was made from (``pick``) and of the one its eyes were made
    from (``eye_pick``; None with ``eyes`` off)."""

    image: np.ndarray
    points: np.ndarray
    pick: int
    eye_pick: Optional[int] = None


class Fader:
    """Which target frames are shown, and how much, as picks change: a new pick fades in over
    ``fade`` frames (1 = a cut) while those it replaced fade out linearly."""

    def __init__(self, fade: int = FADE) -> None:
        self.fade = max(1, int(fade))
        self.reset()

    def reset(self) -> None:
        """Nothing shown yet (a new track)."""
        self.shown: Optional[int] = None  # the last pick drawn
        self.fading: list[tuple[int, float]] = []  # picks it replaced, and their weights now

    def __call__(self, k: int) -> list[tuple[int, float]]:
        """The frames to show with pick ``k`` and their weights (summing to 1), the pick first."""
        step = 1.0 / self.fade
        older = [(j, w - step) for j, w in self.fading if w - step > 1e-6 and j != k]
        if self.shown is not None and self.shown != k:
            left = 1.0 - sum(w for _, w in self.fading)  # what the last pick had
            older = [(j, w) for j, w in older if j != self.shown] + [(self.shown, left - step)]
            older = [(j, w) for j, w in older if w > 1e-6]
        self.fading, self.shown = older, k
        return [(k, 1.0 - sum(w for _, w in older)), *older]


class FaceSwap:
    """Source faces -> the target's faces (see the module); one instance follows one video.

    Args:
        index: the target's faces.
        hold: keep the previous pick (or its successor) unless another frame is nearer by this much.
        smooth: weight of the previous frame in the source's smoothed expression, in [0, 1).
        fade: frames over which a new pick replaces the previous one (a cross-fade, both
            warped to the same shape); 1 = a cut.
        eyes: a second pick for the eye region (:mod:`retarget.faces.eyes`): the target frame
            of nearest eye openings and pose, blended into the eyes and lids, and the lid
            lowered where no target frame closes its eyes as far as the source does.
        eye_hold: the eye pick's ``hold``.
        eye_smooth: ``smooth`` of the eyes' landmarks, with ``eyes`` on (blinks are short).
    """

    def __init__(
        self, index: FaceIndex, hold: float = HOLD, smooth: float = SMOOTH, fade: int = FADE, eyes: bool = True,
        eye_hold: float = EYE_HOLD, eye_smooth: float = EYE_SMOOTH,
    ) -> None:  # fmt: skip
        self.index = index
        self.hold = float(hold)
        self.smooth = float(smooth)
        self.fade = max(1, int(fade))
        self.eyes = bool(eyes)
        self.eye_hold = float(eye_hold)
        self.eye_smooth = float(eye_smooth)
        self.border = border_points(index.size)
        # one triangulation (of the target's mean shape) for every frame: re-triangulating
        # the moving points would flip edges from frame to frame, and the warp would jump
        self.triangles = triangulate(np.vstack([index.mean_points, self.border]), index.size)
        self.track: object = None  # the caller's name for the track being followed (render: the aligner's)
        self._rest = RunningRest()  # the source's rest so far
        self._fader, self._eye_fader = Fader(self.fade), Fader(self.fade)
        self.reset()

    def know(self, rest: RunningRest) -> None:
        """Start from a rest the caller measured ahead on this face's track (render's look-ahead):
        its frames before the first at rest then warp and pick against it, not against a mean
        of the few frames seen so far."""
        self._rest = copy.deepcopy(rest)

    def reset(self) -> None:
        """Forget the previous picks and expression (a new track); the source's rest stays."""
        self.previous: Optional[int] = None
        self.eye_previous: Optional[int] = None
        self._motion: Optional[np.ndarray] = None
        self._opening = 0.0  # the source's smoothed inner mouth opening
        self._fader.reset()
        self._eye_fader.reset()

    def _index_rest(self) -> tuple[np.ndarray, np.ndarray]:
        """The target's rest landmarks and features, like for like with the source's: its rest
        where the source has shown one, its mean where the source's is still a mean."""
        idx = self.index
        return (idx.rest_points, idx.rest_features) if self._rest.rested else (idx.mean_points, idx.mean_features)

    def pick(self, features: np.ndarray) -> int:
        """The target frame for a source face of these features (updates the continuity)."""
        idx = self.index
        query = features.copy()
        query[PERSONAL] += (self._index_rest()[1] - self._rest.rest()[1])[PERSONAL]
        cost = match_cost(idx.features, query, idx.spread)
        best = int(np.argmin(cost))
        p = self.previous
        if p is not None:
            near = [p] + ([p + 1] if p + 1 < len(idx) and idx.segments[p + 1] == idx.segments[p] else [])
            keep = min(near, key=lambda k: cost[k])
            if cost[keep] <= cost[best] + self.hold:
                best = keep
        self.previous = best
        return best

    def __call__(self, points: np.ndarray) -> Swapped:
        """Swap one source face given its ``(68, 2)`` landmarks in crop pixels (the index's crop geometry)."""
        pts = np.asarray(points, np.float64)
        features = expression_features(pts)
        self._rest.add(pts, features)
        k = self.pick(features)
        motion, opening = pts - self._rest.rest()[0], float(features[0])
        if self._motion is not None:
            smooth = np.full((68, 1), self.smooth)
            if self.eyes:
                smooth[36:48] = self.eye_smooth  # a blink lasts a few frames: less lag
            motion = smooth * self._motion + (1.0 - smooth) * motion
            opening = self.smooth * self._opening + (1.0 - self.smooth) * opening
        self._motion, self._opening = motion, opening
        # the mouth as open as the source's own, not as open as its deviation from its mean says
        target = set_mouth_opening(self._index_rest()[0] + motion, opening)
        if self.eyes:
            target = lids_apart(target)
        dst = np.vstack([target, self.border])
        warped: dict[int, np.ndarray] = {}  # target frame -> warped to dst (float32), this frame
        fades = self._fader(k)  # a new pick fades in over a few frames
        total = self._mix(fades, dst, warped)
        eye_pick = None
        if self.eyes:
            total, eye_pick = self._blend_eyes(total, target, dst, k, fades, warped)
        return Swapped(np.clip(total + 0.5, 0, 255).astype(np.uint8), target, k, eye_pick)

    def _mix(self, fades: list[tuple[int, float]], dst: np.ndarray, warped: dict[int, np.ndarray]) -> np.ndarray:
        """The target frames of ``fades`` warped to ``dst`` (kept in ``warped``) and mixed: ``S x S x 3`` float32."""
        total = np.zeros((self.index.size, self.index.size, 3), np.float32)
        for j, weight in fades:
            if j not in warped:
                src = np.vstack([self.index.points[j], self.border])
                warped[j] = warp_picture(self.index.image(j), src, dst, self.triangles).astype(np.float32)
            total += weight * warped[j]
        return total

    def _blend_eyes(
        self, total: np.ndarray, target: np.ndarray, dst: np.ndarray, k: int, fades: list[tuple[int, float]],
        warped: dict[int, np.ndarray],
    ) -> tuple[np.ndarray, int]:  # fmt: skip
        """``total`` (the main picks mixed, float32) with the eye pick's eyes (:mod:`retarget.faces.eyes`):
        its eye region blended in where it differs from the main picks; an eye the target's
        frames cannot close as far as ``target``'s is warped less closed, and its lid lowered
        over it. Returns it and the eye pick."""
        idx = self.index
        want = expression_features(target)
        cost = eye_cost(idx.features, idx.spread, want)
        e = keep_or_pick(cost, self.eye_previous, k, idx.segments, self.eye_hold)
        self.eye_previous = e
        eye_fades = self._eye_fader(e)
        have = idx.features[e, 3:5]
        amounts = closure(have, want[3:5])
        closing = bool(amounts.max() > 0.0)
        drawn = open_lids(target, np.maximum(want[3:5], have * (1.0 - CLOSE_MARGIN))) if closing else target
        if eye_fades != fades or closing:
            mask = eye_region(target, idx.size)[..., None]
            eyes = self._mix(eye_fades, np.vstack([drawn, self.border]), {} if closing else warped)
            total = total * (1.0 - mask) + eyes * mask
        if closing:
            image = np.clip(total + 0.5, 0, 255).astype(np.uint8)
            total = close_eyes(image, drawn, target, amounts).astype(np.float32)
        return total, e
