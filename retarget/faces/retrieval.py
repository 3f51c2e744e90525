"""Face swap by retrieval: the target person's own frames, chosen and warped to follow the source.

No network: for each aligned source face, :class:`FaceSwap` picks the frame of the target's
face dataset (``retarget extract --align face``, :class:`FaceIndex`) whose expression and
pose are nearest, then warps it (:mod:`retarget.faces.morph`) so its landmarks move as the
source's do. What comes back is the target's real skin, eyes and teeth at the dataset's
resolution, so it looks like the target and is as sharp as the target's video; it can only
show expressions the target's footage contains, which the warp then adjusts.

Per source face (landmarks in crop pixels, the same crop geometry as the dataset's):

The index (:class:`~retarget.faces.index.FaceIndex`) is built from a dataset by
:func:`retarget.dataset.faceindex.face_index` (faces sit below datasets in the layers).

1. **Features** (:func:`~retarget.faces.features.expression_features`): inner and outer mouth opening, mouth width,
   both eyes' openings (each relative to the eye distance or the eye's width), yaw and
   pitch proxies (nose tip against the jaw and against eyes and chin). Features whose rest
   value differs from person to person (:data:`~retarget.faces.features.PERSONAL`: mouth width, yaw, pitch) are
   compared as offsets from each person's rest; openings are compared as they are (a closed
   mouth is closed on everyone). A person's **rest** (:func:`~retarget.faces.features.rest_frames`) is the mean of
   their faces with the mouth closed and the eyes open, not the mean of all: a short clip of
   "O" mouths has an "O" mean, against which an "O" would look like rest. The target's is
   taken from its whole dataset, the source's from its faces so far (:class:`~retarget.faces.features.RunningRest`);
   until the source has shown one, both sides use their plain means (like for like: a
   closed rest against an open mean would bias the offsets).
2. **Pick**: the nearest target frame in squared distance scaled by the target's spread per
   feature, each capped (:data:`~retarget.faces.features.MISMATCH_CAP`: a feature no target frame comes near does not
   decide alone) and weighted by :data:`~retarget.faces.features.WEIGHTS` (:func:`~retarget.faces.features.match_cost`); the previous pick, or the frame after it in the target's
   video, is kept unless another is nearer by more than ``hold``, so the texture does not
   jump every frame; a new pick fades in over ``fade`` frames. A target frame caught moving
   fast (its ``speed`` past :data:`~retarget.faces.index.STILL`) costs more, and so does its eye region: it is blurred.
3. **Warp**: the target's rest face shape plus the source's deviation from its own rest
   shape so far (smoothed over frames by ``smooth``, as is the mouth opening below) is where the picked frame's landmarks go.
   The target keeps its face shape; the source gives the motion. The mouth is then opened
   or closed to the source's own inner opening (:func:`~retarget.faces.features.set_mouth_opening`: lower lip and
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
from typing import Optional

import numpy as np

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
from retarget.faces.features import (
    FEATURES,
    PERSONAL,
    RunningRest,
    expression_features,
    match_cost,
    rest_frames,
    set_eye_openings,
    set_mouth_opening,
)
from retarget.faces.index import FaceIndex
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

#: Default ``hold``: how much nearer (squared, in target standard deviations, weighted) another
#: frame must be before the pick leaves the previous one or its successor.
HOLD = 3.0
#: Default ``smooth``: weight of the previous frame in the source's smoothed expression (render
#: uses 0 when ``--stabilize`` steadies the landmarks along the flow first).
SMOOTH = 0.5
#: Default ``eye_smooth``: the same for the eyes' landmarks (with ``eyes`` on; a blink lasts a
#: few frames, and the lag would halve it).
EYE_SMOOTH = 0.0
#: How far above the brows the swap's paste mask reaches (``forehead`` of
#: :func:`retarget.faces.paste.paste_back`, a share of the eye-to-chin height; the paste's default
#: is :data:`~retarget.faces.paste.FOREHEAD`): enough for the brows, not the target's hair.
BROW_REACH = 0.2
#: Default ``fade``: frames a new pick takes to replace the previous one.
FADE = 4
#: What a target's footage may not reach, for render's note: name -> features
#: (:data:`~retarget.faces.features.FEATURES`' order) of which any counts.
REACH = {"pose": (5, 6), "mouth": (0,)}
#: A face counts as beyond the target's footage this many target spreads past its extreme.
BEYOND = 2.0
#: Landmarks of the face outline (jaw 0-16, brows 17-26): the paste mask's hull.
OUTLINE = np.arange(27)


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
        relative_eyes: open each eye as far, relative to the target's rest, as the source's is
            relative to its own (a squint of a narrow-eyed source closes a wide-eyed target's
            eye as far in proportion); False adds the source's lid motion as it is.

    Attributes:
        asked: faces picked for so far (over the object's life, across tracks).
        beyond: of them, per :data:`REACH` name, those past the target's footage (:data:`BEYOND`
            of its spreads past the furthest of its faces, :meth:`FaceIndex.beyond`): a head
            turned further, a mouth opened wider than any face of the target.
    """

    def __init__(
        self, index: FaceIndex, hold: float = HOLD, smooth: float = SMOOTH, fade: int = FADE, eyes: bool = True,
        eye_hold: float = EYE_HOLD, eye_smooth: float = EYE_SMOOTH, relative_eyes: bool = True,
    ) -> None:  # fmt: skip
        self.index = index
        self.hold = float(hold)
        self.smooth = float(smooth)
        self.fade = max(1, int(fade))
        self.eyes = bool(eyes)
        self.eye_hold = float(eye_hold)
        self.eye_smooth = float(eye_smooth)
        self.relative_eyes = bool(relative_eyes)
        self.border = border_points(index.size)
        # one triangulation (of the target's mean shape) for every frame: re-triangulating
        # the moving points would flip edges from frame to frame, and the warp would jump
        self.triangles = triangulate(np.vstack([index.mean_points, self.border]), index.size)
        self.asked = 0  # faces picked for, over the object's life...
        self.beyond = dict.fromkeys(REACH, 0)  # ...and of them, those beyond the target's footage, per REACH
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
        cost = match_cost(idx.features, query, idx.spread) + idx.still_cost
        past = idx.beyond(query) > BEYOND
        self.asked += 1
        for name, features in REACH.items():
            self.beyond[name] += bool(past[list(features)].any())
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
        if self.relative_eyes:  # each eye as open, in proportion to the target's rest, as the source's to its own
            rest_points, rest_features = self._rest.rest()
            ratio = expression_features(rest_points + motion)[3:5] / np.maximum(rest_features[3:5], 1e-6)
            target = set_eye_openings(target, self._index_rest()[1][3:5] * ratio)
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
        cost = eye_cost(idx.features, idx.spread, want) + idx.still_cost
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
