"""``retarget eval``: decode a translated video with its source and/or truth, match the
frames by time, and score them (:class:`retarget.eval.score.FrameScorer`).

Frames are streamed: a few frames of each video are held at any time. See
docs/eval.md for what each number means.
"""

from __future__ import annotations

import json
import math
import time as _time
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from retarget.config import EvalConfig
from retarget.options import check_config, check_effects
from retarget.errors import RetargetError
from retarget.eval.frames import TimeMatcher, common_size, fit
from retarget.eval.identity import TargetFaces
from retarget.eval.score import FrameScorer
from retarget.progress import make_progress
from retarget.video.reader import VideoInfo, VideoReader, probe


@dataclass
class EvalResult:
    """What :func:`evaluate` measured; ``to_dict()`` is the ``--json`` output.

    ``scores`` is :meth:`FrameScorer.summary`: ``warping_error`` (L1, 0-255), ``e_warp``
    (Lai et al.'s E_warp), ``truth``, ``faces`` (None when not asked for) and
    ``per_frame`` (with ``per_frame``).
    """

    output: str  # path of the judged video
    source: Optional[str]  # path of the source video, if given
    truth: Optional[str]  # path of the ground-truth video, if given
    size: dict[str, Any]  # "compared": [w, h], and each video's [w, h]
    frames: dict[str, Any]  # frames read per video, matched, unmatched per video
    scores: dict[str, Any]  # FrameScorer.summary()
    seconds: float  # wall time of the evaluation
    notes: list[str] = field(default_factory=list)  # resizing, frame-count mismatches
    target: Optional[str] = None  # the target person's dataset or video, if given (--target)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: paths, size, frames, the scores' keys, seconds, notes."""
        d = asdict(self)
        scores = d.pop("scores")
        scores.pop("frames", None)  # the same as frames["matched"]
        tail = {"seconds": d.pop("seconds"), "notes": d.pop("notes")}
        return {**d, **scores, **tail}

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON (NaN never appears: missing values are null)."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)


def _tolerance(ref: VideoInfo, output: VideoInfo) -> float:
    """Half a frame period of the reference (its rate, else the output's, else 25 fps)."""
    fps = ref.fps or output.fps or 25.0
    return 0.5 / fps


def _check(cfg: EvalConfig) -> None:
    check_config(cfg)  # the ranges the CLI enforces, for library callers
    # options given where they do nothing (--face-backend without --faces); a library caller
    # gets the per-frame values whatever ``json`` says (the command line checks --per-frame)
    check_effects(cfg, {"json": True})
    if cfg.source is None and cfg.truth is None:
        raise RetargetError(f"{cfg.output}: nothing to compare with; give --source and/or --truth")
    if cfg.faces and cfg.source is None:
        raise RetargetError(f"{cfg.output}: --faces compares with the source's faces; give --source")
    if cfg.target is not None and not cfg.faces:
        raise RetargetError(f"{cfg.output}: --target scores the identity of the output faces; add --faces")


def _size_notes(infos: dict[str, VideoInfo], size: tuple[int, int]) -> list[str]:
    notes = []
    for role, info in infos.items():
        if (info.width, info.height) != size:
            notes.append(
                f"{role} {info.width}x{info.height} compared at {size[0]}x{size[1]}"
                + (
                    " (even padding cropped)"
                    if abs(info.width - size[0]) <= 1 and abs(info.height - size[1]) <= 1
                    else " (centre-cropped to the output's aspect ratio and resized)"
                )
            )
    return notes


def _frame_notes(frames: dict[str, Any], roles: list[str]) -> list[str]:
    notes = []
    counts = {r: frames[r] for r in ["output", *roles]}
    if len(set(counts.values())) > 1:
        notes.append("frame counts differ: " + ", ".join(f"{r} {n}" for r, n in counts.items()))
    if frames["unmatched_output"]:
        notes.append(
            f"{frames['unmatched_output']} output frames had no frame within half a frame period and were skipped"
        )
    for r in roles:
        if frames[f"unmatched_{r}"]:
            notes.append(f"{frames[f'unmatched_{r}']} {r} frames matched no output frame")
    return notes


def _score_stream(
    out_info: VideoInfo, refs: dict[str, VideoInfo], size: tuple[int, int], scorer: FrameScorer
) -> dict[str, Any]:
    """Decode the output, match each frame by time in every reference, feed ``scorer``.

    Returns:
        Frame counts: ``output``, ``matched``, ``unmatched_output`` and, per reference
        role, its frames read and ``unmatched_<role>``.
    """
    matchers = {role: TimeMatcher(VideoReader(i.path, info=i), _tolerance(i, out_info)) for role, i in refs.items()}
    unmatched_out = read_out = 0
    gap = False
    bar = make_progress("frames")
    with bar:
        task = bar.add_task("eval", total=out_info.frame_count or None)
        for frame in VideoReader(out_info.path, info=out_info):
            read_out += 1
            found = {role: m.take(frame.time) for role, m in matchers.items()}
            if any(f is None for f in found.values()):
                unmatched_out += 1
                gap = True
            else:
                src, tru = found.get("source"), found.get("truth")
                scorer.add(
                    fit(frame.image, size),
                    fit(src.image, size) if src is not None else None,
                    fit(tru.image, size) if tru is not None else None,
                    time=frame.time,
                    contiguous=not gap,
                )
                gap = False
            bar.advance(task)
        for m in matchers.values():
            m.finish()
    frames: dict[str, Any] = {"output": read_out, "matched": scorer.frames, "unmatched_output": unmatched_out}
    for role, m in matchers.items():
        frames[role] = m.seen
        frames[f"unmatched_{role}"] = m.unmatched
    return frames


def _face_scorer(cfg: EvalConfig, target: Optional[TargetFaces]) -> FrameScorer:
    """The frame scorer, with the face backend and the target's descriptor when asked for."""
    backend = descriptor = None
    if cfg.faces:
        from retarget.faces.backends import get_backend

        backend = get_backend(cfg.face_backend)
    if cfg.target is not None or target is not None:
        from retarget.eval.faces import FaceComparer
        from retarget.eval.identity import get_descriptor, target_faces
        from retarget.progress import console

        descriptor = get_descriptor()
        if target is None:
            with console.status(f"describing the target's faces ({cfg.target})"):
                target = target_faces(str(cfg.target), FaceComparer(backend), descriptor)  # type: ignore[arg-type]
    return FrameScorer(
        faces=backend,
        flow_preset=cfg.flow,
        cut_threshold=cfg.cut_threshold,
        per_frame=cfg.per_frame,
        target=target,
        descriptor=descriptor,
    )


def evaluate(cfg: EvalConfig, *, target: Optional[TargetFaces] = None) -> EvalResult:
    """Score ``cfg.output`` against ``cfg.source`` (warping error, faces) and ``cfg.truth``.

    Args:
        cfg: the videos and options (see :class:`retarget.config.EvalConfig`). A
            progress bar is drawn on stderr when it is a terminal.
        target: ``cfg.target``'s faces already described
            (:func:`retarget.eval.identity.target_faces`), to score several outputs
            against one target without describing it again.

    Returns:
        :class:`EvalResult`.

    Raises:
        RetargetError: an option outside its range (named), neither source nor truth, ``faces``
            without source, ``target`` without ``faces``, a missing or unreadable video (named),
            a target that is missing or shows no face, or no output frame matching a reference by time.
    """
    _check(cfg)
    start = _time.perf_counter()
    out_info = probe(cfg.output)
    refs = {role: probe(path) for role, path in (("source", cfg.source), ("truth", cfg.truth)) if path is not None}
    size = common_size((out_info.width, out_info.height), [(i.width, i.height) for i in refs.values()])
    scorer = _face_scorer(cfg, target)
    frames = _score_stream(out_info, refs, size, scorer)
    read_out = frames["output"]
    if scorer.frames == 0:
        others = " or ".join(str(refs[r].path) for r in refs)
        raise RetargetError(
            f"{cfg.output}: no frame matched a frame of {others} by time "
            f"({read_out} output frames; tolerance half a frame period)"
        )
    sizes = {"compared": list(size), "output": [out_info.width, out_info.height]}
    sizes.update({role: [i.width, i.height] for role, i in refs.items()})
    notes = _size_notes({"output": out_info, **refs}, size) + _frame_notes(frames, list(refs))
    src = refs.get("source")
    if src is not None and (out_info.width / out_info.height) > 1.8 * (src.width / src.height):
        notes.append("the output is much wider than the source: side-by-side renders are not supported")
    return EvalResult(
        output=str(cfg.output),
        source=cfg.source,
        truth=cfg.truth,
        size=sizes,
        frames=frames,
        scores=scorer.summary(),
        seconds=_time.perf_counter() - start,
        notes=notes,
        target=cfg.target or (target.path if target is not None else None),
    )


def _fmt(value: Optional[float], digits: int = 2, unit: str = "") -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}f}{unit}"


def _warping_rows(table: Any, w: Optional[dict[str, Any]], e: Optional[dict[str, Any]]) -> None:
    """The table's rows of the two warping errors (``warping_error``, ``e_warp`` of the scores)."""
    if not (w and e):
        return
    table.add_row(
        "warping error L1, output",
        _fmt(w["output"], 3),
        "retarget's: mean |out_t - warp(out_t-1)|, 0-255, lower = steadier",
    )
    table.add_row("warping error L1, source", _fmt(w["source"], 3), "the same for the source itself")
    if w.get("truth") is not None:
        table.add_row("warping error L1, truth", _fmt(w["truth"], 3), "the same for the ground truth")
    table.add_row("ratio output / source", _fmt(w["ratio"], 3), "1 = as steady as the source; >1 = added flicker")
    table.add_row(
        "E_warp (Lai et al.), output",
        _fmt(e["output"], 5),
        "squared RGB error in [0, 1], their mask; comparable with published E_warp",
    )
    table.add_row("E_warp, source", _fmt(e["source"], 5), "the same for the source itself")
    if e.get("truth") is not None:
        table.add_row("E_warp, truth", _fmt(e["truth"], 5), "the same for the ground truth")
    table.add_row("E_warp ratio output / source", _fmt(e["ratio"], 3), "read as the L1 ratio")
    table.add_row("frame pairs", str(w["pairs"]), f"{w['cuts']} across scene cuts left out")


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _face_rows(f: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Table rows of the expression, sharpness and identity scores of ``faces``."""
    e, sh, i = f.get("expression") or {}, f.get("sharpness") or {}, f.get("identity")
    rows = [
        (
            "mouth correlation",
            _fmt(e.get("mouth_correlation"), 3),
            "output's mouth opening vs the source's, 1 = in step",
        ),
        ("eye correlation", _fmt(e.get("eye_correlation"), 3), "output's eye opening vs the source's, 1 = in step"),
        ("gaze correlation", _fmt(e.get("gaze_correlation"), 3), "output's iris offset along the eye vs the source's"),
        ("face sharpness ratio", _fmt(sh.get("ratio"), 3), "output / source detail, face box centre; <1 blurred"),
    ]
    if i:
        rows += [
            ("nearer B than A", _pct(i["nearer_b"]), "output faces nearer the target's mean face than the source's"),
            ("same person as B", _pct(i["same_person_b"]), f"output faces within {i['threshold']:g} of the target's"),
            (
                "distance to B",
                _fmt(i["distance_b"], 3),
                f"mean, dlib descriptor; under {i['threshold']:g} = same person",
            ),
            ("distance to A", _fmt(i["distance_a"], 3), f"the same to the source's; {_pct(i['same_person_a'])} within"),
            ("faces described", str(i["frames"]), f"target: {i['target_faces']} of {i['target_images']} images"),
        ]
    return rows


def print_result(result: EvalResult) -> None:
    """Print ``result`` as a rich table on the shared console (stderr)."""
    from rich.table import Table

    from retarget.progress import console

    s = result.scores
    table = Table(title=f"retarget eval: {result.output}", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("meaning")
    _warping_rows(table, s.get("warping_error"), s.get("e_warp"))
    t = s.get("truth")
    if t:
        table.add_row(
            "PSNR", _fmt(t["psnr"], 2, " dB"), f"vs truth, mean over frames (identical = {t['psnr_cap']:g} dB)"
        )
        table.add_row("SSIM", _fmt(t["ssim"], 4), "vs truth, luma, 1 = identical")
        table.add_row(
            "flicker vs truth",
            _fmt(t["flicker"], 3),
            f"mean |d_out - d_truth| per frame step, 0-255; {t['cuts']} pairs across scene cuts left out",
        )
        if t.get("flicker_source") is not None:
            table.add_row("flicker, source", _fmt(t["flicker_source"], 3), "the source scored as if it were the output")
        table.add_row("flicker, still output", _fmt(t.get("flicker_still"), 3), "an output that never changes")
    f = s.get("faces")
    if f:
        table.add_row(
            "landmark error", _fmt(f["landmark_error"], 4), "mean landmark distance / source inter-ocular distance"
        )
        table.add_row(
            "frames with both faces",
            str(f["frames"]),
            f"no face: {f['no_source_face']} in source, {f['no_output_face']} in output",
        )
        for row in _face_rows(f):
            table.add_row(*row)
    fr = result.frames
    roles = [r for r in ("output", "source", "truth") if r in fr]
    read = ", ".join(f"{r} {fr[r]}" for r in roles)
    left = ", ".join(f"{fr['unmatched_' + r]} {r}" for r in roles)
    table.add_row("frames matched", str(fr["matched"]), f"read: {read}; unmatched: {left}")
    table.add_row("compared at", "x".join(str(v) for v in result.size["compared"]), f"{result.seconds:.1f} s")
    console.print(table)
    for note in result.notes:
        console.print(f"note: {note}")
