"""``retarget render --target-faces B_FACES``: a face swap with no trained model.

Every face of the input is replaced by the target person's own face, taken from a face
dataset of them (``retarget extract --align face``): the frame of nearest expression and
pose, warped to move as the input's face moves (:class:`~retarget.faces.retrieval.FaceSwap`).
The input is aligned with the dataset's face options at its size, so the crops match, and
the rest is render's usual face path (the plan: :func:`retarget.render.plan.plan_swap`): paste along the mask (an outline inside both faces,
:func:`~retarget.faces.retrieval.mask_points`, reaching just above the brows), colour match, blend, ``--stabilize``,
``--start/--end``, sound kept. Every face of a frame is swapped, up to ``--max-faces``
(:class:`~retarget.faces.crowd.CrowdAligner`), each with its own swap continuity; ``--face-ref``
keeps one person's. ``--mouth source`` puts the input's own mouth interior
(teeth, tongue) inside the swapped lips (:mod:`retarget.faces.mouth`); ``--gaze follow`` moves
the irises where the input looks (:mod:`retarget.faces.gaze`); ``--detail match`` sharpens each
face, after the stabilizer, to the input face's fine detail (:class:`FaceDetail`, :mod:`retarget.faces.detail`).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

import numpy as np

from retarget.dataset.faceindex import face_index
from retarget.faces.align import apply, invert
from retarget.faces.detail import MAX_GAIN, DetailMatch
from retarget.faces.gaze import GazeFollow, target_gaze
from retarget.faces.mouth import paste_mouth
from retarget.faces.retrieval import FaceIndex, FaceSwap, RunningRest, expression_features, mask_points
from retarget.faces.rims import GlassesGate, clear_rims, wears_glasses
from retarget.faces.steady import SteadyLandmarks
from retarget.render.source import Lanes

__all__ = [
    "LOOK_AHEAD",
    "FaceDetail",
    "PasteScale",
    "gaze_of",
    "face_index",
    "look_ahead",
    "reach_hint",
    "swap_items",
    "target_wears_glasses",
]

#: :class:`PasteScale` suggests a larger target dataset when the input's faces and the target's
#: video both hold a face at more than this many times the crop's pixels (a face cut at 256 px
#: from d9's video and pasted onto d3's kept 1.16 of the input's sharpness, cut at 512 px 2.41).
UPSCALE_HINT = 1.25
#: The largest ``--size`` :class:`PasteScale` suggests (px).
LARGEST_HINT = 1024
#: :meth:`FaceDetail.hint` speaks when at least this share of the faces needed more than the largest gain.
SOFT_SHARE = 0.5
#: :func:`reach_hint` speaks of what at least this share of the faces asked past the target's footage.
REACH_SHARE = 0.2
#: Seconds of the input :func:`look_ahead` reads before the render, for each face's rest.
LOOK_AHEAD = 10.0


def swap_items(
    batch: list[Any],
    swap: FaceSwap | Lanes[FaceSwap],
    mouth: str = "target",
    steady: SteadyLandmarks | Lanes[SteadyLandmarks] | None = None,
    refine: Optional[Callable[[list[np.ndarray]], list[np.ndarray]]] = None,
    glasses: GlassesGate | Lanes[GlassesGate] | None = None,
    rests: Optional[dict[Any, RunningRest]] = None,
    gaze: GazeFollow | Lanes[GazeFollow] | None = None,
) -> list[Any]:
    """The translate stage of a swap: set ``result`` and ``mask_landmarks`` of each item with a face.

    Args:
        batch: pipeline items, one per face (a frame's further faces, ``item.more``, are
            items of this list too: :func:`retarget.render.stream.every_face`);
            ``net_input`` is the source's aligned crop (``S x S x 3`` uint8 RGB),
            ``landmarks`` and ``matrix`` its landmarks (frame px) and frame -> crop matrix,
            ``link`` (with ``--stabilize``) the flow from the previous crop, ``lane`` the face's lane.
        swap: the swap following this video's face, or :class:`~retarget.render.source.Lanes`
            of swaps, one per face lane (several faces).
        mouth: ``"target"``: the target's own mouth, as picked and warped; ``"source"``: the
            source's mouth interior pasted inside the swapped face's inner lips
            (:func:`~retarget.faces.mouth.paste_mouth`).
        steady: moves the source's landmarks along the flow before the swap follows them (or
            lanes of them, as ``swap``); None: as detected.
        refine: the refiner (``render --refiner``): swapped crops -> cleaner crops, before the mouth paste.
        glasses: ``--glasses clear``: per face, whether it wears glasses (or lanes of them, as
            ``swap``); where it does, its rims and arms are painted out of the frame the faces
            are pasted onto (``item.backdrop``, :func:`~retarget.faces.rims.clear_rims`). None: kept.
        rests: per face track, the source's rest measured ahead (:func:`look_ahead`); a
            track's swap starts from it (:meth:`~retarget.faces.retrieval.FaceSwap.know`).
        gaze: ``--gaze follow``: moves the swapped face's irises where the source looks
            (:class:`~retarget.faces.gaze.GazeFollow`; or lanes of them, as ``swap``); None: the target's stay.

    A frame without a face starts every lane's continuity afresh; a face of a new track its own lane's.
    Returns ``batch``.
    """
    swaps = Lanes.of(swap)
    steadies = Lanes.of(steady) if steady is not None else None
    gates = Lanes.of(glasses) if glasses is not None else None
    gazes = Lanes.of(gaze) if gaze is not None else None
    others = [lanes for lanes in (steadies, gates, gazes) if lanes is not None]  # per-face state besides the swap
    done = []
    backdrops: dict[int, np.ndarray] = {}  # id of a frame -> that frame with glasses painted out
    for item in batch:
        if item.net_input is None or item.landmarks is None:  # no face: every lane starts afresh
            for lanes in (swaps, *others):
                for state in lanes.made().values():
                    state.reset()
            continue
        lane = getattr(item, "lane", 0)
        face_swap = swaps[lane]
        if face_swap.track != item.track:  # a new track: its continuity starts afresh
            for state in [face_swap] + [lanes[lane] for lanes in others]:
                state.reset()
            face_swap.track = item.track
            if rests is not None and item.track in rests:
                face_swap.know(rests[item.track])
        if gates is not None:
            _paint_glasses(item, gates[lane], backdrops)
        points = _source_points(item, steadies[lane] if steadies is not None else None)
        done.append((item, face_swap(points), points))
    refined = refine([out.image for _, out, _ in done]) if refine is not None and done else None
    for k, (item, out, points) in enumerate(done):
        item.result = out.image if refined is None else refined[k]
        if gazes is not None:
            item.result = gazes[getattr(item, "lane", 0)](item.result, out.points, np.asarray(item.net_input), points)
        if mouth == "source":
            item.result = paste_mouth(item.result, out.points, np.asarray(item.net_input), points)
        matrix = np.asarray(item.matrix, np.float64)
        item.mask_landmarks = apply(invert(matrix), mask_points(points, out.points)).astype(np.float32)
    for item in batch if backdrops else []:  # every face of a frame is pasted onto its painted copy
        if id(item.image) in backdrops:
            item.backdrop = backdrops[id(item.image)]
    return batch


def reach_hint(swaps: Iterable[FaceSwap], root: str, mouth: str = "target") -> list[str]:
    """Lines naming what many of the input's faces asked past the target's footage (``root``):
    head turns and tilts, mouth openings (:attr:`~retarget.faces.retrieval.FaceSwap.beyond`),
    each with what helps; none under :data:`REACH_SHARE` of the faces, and none for the mouth
    with ``mouth == "source"`` (the input's own mouth is shown there)."""
    swaps = list(swaps)
    asked = sum(s.asked for s in swaps)
    if asked == 0:
        return []
    share = {name: sum(s.beyond[name] for s in swaps) / asked for name in swaps[0].beyond}
    lines = []
    if share.get("pose", 0.0) >= REACH_SHARE:
        lines.append(
            f"note: in {share['pose']:.0%} of the faces the head turned or tipped further than in any face of "
            f"{root}: the warp stretches the nearest one there; a video of the target moving their head more helps"
        )
    if mouth != "source" and share.get("mouth", 0.0) >= REACH_SHARE:
        lines.append(
            f"note: in {share['mouth']:.0%} of the faces the mouth opened wider than in any face of {root}: "
            "--mouth source shows the input's own mouth inside the target's lips, or give a video of the target talking"
        )
    return lines


class PasteScale:
    """A swap's translate stage that also watches how far each face is enlarged when pasted back.

    Args:
        stage: the swap's stage (:func:`swap_items` with its state bound).

    Attributes:
        scales: per face seen, crop pixels per input pixel (under 1: the crop is enlarged to paste it).
    """

    def __init__(self, stage: Callable[[list[Any]], list[Any]]) -> None:
        self.stage = stage
        self.scales: list[float] = []

    def __call__(self, batch: list[Any]) -> list[Any]:
        for item in batch:
            if item.net_input is not None and item.matrix is not None:
                self.scales.append(float(np.hypot(*np.asarray(item.matrix, np.float64)[:, 0])))
        return self.stage(batch)

    def hint(self, root: str, size: int, target_scale: float) -> list[str]:
        """A line suggesting ``extract --size`` for the target ``root`` (cut at ``size`` px, ``target_scale``
        crop px per video px) when a larger cut would keep detail the paste now loses; else none."""
        if not self.scales:
            return []
        enlarged, cut_down = 1.0 / float(np.median(self.scales)), 1.0 / max(target_scale, 1e-6)
        if min(enlarged, cut_down) < UPSCALE_HINT:
            return []
        suggest = min(LARGEST_HINT, int(np.ceil(size * min(enlarged, cut_down) / 32.0)) * 32)
        if suggest <= size:
            return []
        return [
            f"hint: the faces were pasted at {enlarged:.1f}x the target's {size} px crops, and {root} was cut "
            f"{cut_down:.1f}x smaller than its video holds them: extract it again with --size {suggest} "
            "for a sharper face"
        ]


class FaceDetail:
    """``--detail match``: the sink's last step for a swapped face, after the stabilizer (whose
    blend softens too): its fine detail matched to the input face's
    (:class:`~retarget.faces.detail.DetailMatch`, one per lane, afresh at each new track).
    """

    def __init__(self) -> None:
        self.matches: Lanes[DetailMatch] = Lanes(DetailMatch)
        self.tracks: dict[int, Any] = {}

    def __call__(self, face: Any) -> None:
        """Replace ``face.result`` (``S x S x 3`` uint8) by its matched copy; ``face.net_input`` is the input's crop."""
        lane = getattr(face, "lane", 0)
        match = self.matches[lane]
        if lane not in self.tracks or self.tracks[lane] != face.track:
            match.reset()
            self.tracks[lane] = face.track
        points = apply(np.asarray(face.matrix, np.float64), np.asarray(face.landmarks, np.float64))
        face.result = match(face.result, np.asarray(face.net_input), points)

    def hint(self, root: str) -> list[str]:
        """A line when most faces stayed softer than the input's at the largest gain (the target's video
        is softer than the input's); else none."""
        matches = self.matches.made().values()
        measured, short = sum(m.measured for m in matches), sum(m.short for m in matches)
        if measured == 0 or short < SOFT_SHARE * measured:
            return []
        return [
            f"note: {short / measured:.0%} of the swapped faces stayed softer than the input's even at the most "
            f"sharpening allowed ({MAX_GAIN:g}x): a sharper video of the target person than {root} came from, "
            "or a larger cut of it, gives a sharper face"
        ]


def gaze_of(index: FaceIndex, count: int = 60) -> Optional[np.ndarray]:
    """The target's usual iris offset (:func:`~retarget.faces.gaze.target_gaze`) over up to
    ``count`` of their faces, evenly spread; None when no iris could be measured."""
    picks = _spread(index, count)
    return target_gaze([index.image(k) for k in picks], [index.points[k] for k in picks])


def target_wears_glasses(index: FaceIndex, count: int = 24) -> bool:
    """Whether the target person of ``index`` wears glasses (:func:`~retarget.faces.rims.wears_glasses`
    on up to ``count`` of their faces, evenly spread); then the input's are kept (``--glasses``)."""
    return wears_glasses([(index.image(k), index.points[k]) for k in _spread(index, count)])


def _spread(index: FaceIndex, count: int) -> list[int]:
    """Up to ``count`` of the target's frames, evenly spread over ``index``."""
    return [int(k) for k in np.unique(np.linspace(0, len(index) - 1, min(count, len(index))).round().astype(int))]


def _source_points(item: Any, steady: Optional[SteadyLandmarks]) -> np.ndarray:
    """The face's ``(68, 2)`` landmarks in crop px, carried along the flow by ``steady`` if given."""
    points = apply(np.asarray(item.matrix, np.float64), np.asarray(item.landmarks, np.float64))
    if steady is None:
        return points
    link = getattr(item, "link", None)
    maps = (link.map_x, link.map_y, link.trust) if link is not None else (None, None, None)
    return steady(points, *maps)


def _paint_glasses(item: Any, gate: GlassesGate, backdrops: dict[int, np.ndarray]) -> None:
    """Where the face wears glasses, paint them out of its frame's backdrop (``backdrops``, by frame id)."""
    bridge = gate(item.image, item.landmarks)
    if bridge is not None:
        base = backdrops.get(id(item.image), item.image)
        backdrops[id(item.image)] = clear_rims(base, np.asarray(item.landmarks, np.float64), bridge)


def look_ahead(items: Iterable[Any]) -> dict[Any, RunningRest]:
    """Each face track's rest (:class:`~retarget.faces.retrieval.RunningRest`) over ``items``,
    read before the render so a face's first frames are warped against its rest rather than
    against a mean of the few frames seen so far (a clip's start could otherwise lose ~4 dB
    until the face first rests; render reads the first :data:`LOOK_AHEAD` seconds).

    Args:
        items: the source stage's items (:meth:`~retarget.render.source.Source.items`) from an
            aligner like the render's over the same first frames, so the tracks are the render's.

    Returns:
        track -> its rest, for the tracks that showed faces at rest (``RunningRest.rested``). A track that never did
        keeps its running mean: the mean of a whole clip is no rest, and one person's clip
        (mouth never closed, head turning) was drawn 2.3x further off the truth's landmarks
        warped against it than against the running mean.
    """
    rests: dict[Any, RunningRest] = {}
    for item in items:
        for face in item.faces() if item.net_input is not None and item.landmarks is not None else []:
            points = apply(np.asarray(face.matrix, np.float64), np.asarray(face.landmarks, np.float64))
            rests.setdefault(face.track, RunningRest()).add(points, expression_features(points))
    return {track: rest for track, rest in rests.items() if rest.rested}
