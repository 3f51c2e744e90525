"""One render plan per mode, checked once: :func:`plan_render` picks the mode and builds it.

The modes, and what each owns:

- **a trained run** (a pair's ``G_AB``/``G_BA``, or a multi-domain run's ``G`` told its
  target): the run, its direction and its source domain's data decide the alignment
  (face or whole frames), the frame mode, the crop and the scale; a face run adds the
  blend options and ``--enhancer``;
- **a face swap** (``--target-faces``): a target person's face dataset replaces every
  face, no run is loaded (:mod:`retarget.render.swap`).

Every check happens once, in this order, before any work: ranges and choices
(:func:`~retarget.options.check_config`), paths, the input's probe, options that depend
on each other (:func:`~retarget.render.stream.prepare`), then, once the mode has
resolved the alignment, every option given where it has no effect
(:func:`~retarget.options.check_effects`, from the options' metadata in
:mod:`retarget.config`). The :class:`~retarget.render.stream.Plan` that comes out feeds
the one streaming core, :func:`~retarget.render.stream.stream`, which checks nothing again.
"""

from __future__ import annotations

import functools
from typing import Any, Optional

from retarget.config import FaceConfig, RenderConfig
from retarget.errors import RetargetError
from retarget.geometry import square_cut
from retarget.options import check_effects
from retarget.progress import console, make_progress
from retarget.render.degrid import Degrid, wants_degrid
from retarget.render.stream import Plan, Prepared, generator_stage, prepare, whole_frame_cut

__all__ = ["LOAD_FACTOR", "check_effect", "make_translator", "plan_render", "plan_run", "plan_swap"]

#: Training resizes frames to ``round(size * LOAD_FACTOR)`` before its random crops unless
#: ``--load-size`` says otherwise (:func:`retarget.train.data.default_load_size`); the scale
#: of whole-frame renders for runs that did not record theirs.
LOAD_FACTOR = 1.12


def check_effect(cfg: RenderConfig, align: str) -> None:
    """Refuse (or warn once about) options given where this render's mode makes them do nothing.

    ``align`` is the render's resolved alignment (``"face"`` or ``"none"``); the rules are
    the options' :class:`~retarget.options.Only` metadata.
    """
    check_effects(cfg, {"align": align}, warn=lambda line: console.print(f"warning: {line}", markup=False))


def plan_render(cfg: RenderConfig) -> Plan:
    """The checked plan of ``cfg``: a face swap's with ``cfg.target_faces``, else a trained run's.

    Raises:
        RetargetError: any option, path, input or run that cannot render, in one line.
    """
    ready = prepare(cfg)
    return plan_swap(cfg, ready) if cfg.target_faces is not None else plan_run(cfg, ready)


def plan_run(cfg: RenderConfig, ready: Prepared) -> Plan:
    """The plan of a render with a trained run (``cfg.model``, or the newest under ./models).

    The run's source-domain data decide the alignment, frame mode, face options, crop and
    scale unless ``cfg`` sets them; a whole-frame run translates the whole frame at the
    short side its frames had in training.
    """
    from retarget.device import resolve_device
    from retarget.nn.budget import render_budget
    from retarget.render.direction import pick_direction
    from retarget.run import load_networks, open_run

    # a swap's options name their mistake before a missing run does
    check_effects(cfg, deciders=("target_faces",))  # (a warning among them is said once, by check_effect below)
    run = open_run(cfg.model, step=cfg.step)
    way = pick_direction(run, cfg)
    data = run.data_of(way.source)
    align = cfg.align or data.align
    check_effect(cfg, align)
    device = resolve_device(cfg.device)
    size, info = data.size or run.model_cfg.size, ready.info
    if align == "face":
        frame, side, cut = "", size, square_cut(info.width, info.height, size, data.crop)
    else:
        frame = cfg.frame or data.frame or "square"
        side = int(cfg.scale or ((data.scale or round(run.model_cfg.size * LOAD_FACTOR)) if frame == "full" else size))
        cut = whole_frame_cut(cfg, info, frame, side, data.crop)
    # the generator's memory at this picture size, before any of it is allocated
    render_budget(
        run.model_cfg,
        info.width,
        info.height,
        side,
        cfg.batch_size,
        cfg.tile,
        device,
        frame=frame or "face",
        crop=data.crop,
    )
    load_networks(run, (way.network,), device)
    net = run.networks[way.network]
    if way.target is not None:  # the multi-domain G, told its target
        from retarget.nn.conditional import FixedTarget  # not at import: retarget.nn loads the trainer's step

        net = FixedTarget(net, way.target)
    where = "" if cfg.model else " (newest run under ./models)"
    console.print(f"model: {run.path}{where}" + (f" ({way.text})" if way.target is not None else ""), markup=False)
    translator = make_translator(cfg, net, device)
    if wants_degrid(cfg.degrid, run.model_cfg.upsample, align, frame):  # the transposed convolutions' grid
        translator = Degrid(translator)
    aligner = enhance = None
    if align == "face":
        from retarget.faces.aligner import face_aligner

        face_cfg = cfg.face or data.face or FaceConfig()
        aligner = face_aligner(face_cfg, size, cfg.face_ref)
        enhance = face_enhancer(cfg, size, face_cfg, device)
    from retarget.device import precision_name

    return Plan(
        cfg, ready.src, ready.out, info, size, generator_stage(translator, cfg), cut,
        aligner=aligner, frame=frame, scene_threshold=data.scene_threshold(), enhance=enhance,
        # on CPU the generator is the bottleneck and needs every core: a single-threaded
        # encoder keeps up and disturbs it least; with a GPU the encoder may use all cores
        encoder_threads=1 if device.type == "cpu" else 0,
        precision=precision_name(translator.amp), model=str(run.path), direction=way.text,
    )  # fmt: skip


def make_translator(cfg: RenderConfig, net: Any, device: Any) -> Any:
    """The translate function of ``--engine``: the generator in torch (:class:`~retarget.render.translate.Translator`),
    or exported in memory to ONNX and run by onnxruntime (:class:`~retarget.render.export.OnnxTranslator`, float32).

    Raises:
        RetargetError: ``--engine onnx`` without onnx and onnxruntime installed, or with an ``--amp`` other than auto/off.
    """
    from retarget.render.translate import Translator

    if cfg.engine == "torch":
        return Translator(net, device, cfg.amp)
    if cfg.amp not in ("auto", "off"):
        raise RetargetError(f"--amp {cfg.amp}: --engine onnx runs the generator in float32; leave --amp out")
    import torch

    from retarget.render.export import OnnxTranslator, onnx_bytes, require_onnx

    require_onnx("--engine onnx")
    onnx = OnnxTranslator(onnx_bytes(net), device.type, threads=torch.get_num_threads() if device.type == "cpu" else 0)
    console.print(f"engine: onnxruntime ({onnx.provider})", markup=False)
    return onnx


def face_enhancer(cfg: RenderConfig, size: int, face: FaceConfig, device: Any) -> Optional[Any]:
    """``--enhancer``: the enhancer as a crops -> larger crops function, or None without one.

    Raises:
        RetargetError: ``--output-size model``, or an enhancer that learnt other faces than
            this run's (another crop size or margin), or one whose weights do not load.
    """
    if cfg.enhancer is None:
        return None
    if cfg.output_size == "model":
        raise RetargetError("--enhancer sharpens the pasted faces: it does not apply with --output-size model")
    from retarget.nn.enhancer import PreBlur
    from retarget.render.translate import Translator
    from retarget.run.enhancer import describe, load_enhancer

    enh = load_enhancer(cfg.enhancer, device)
    if enh.input_size != size:
        raise RetargetError(
            f"{cfg.enhancer}: learnt {enh.input_size} px faces, this run's are {size} px "
            f"(extract the target at {size * enh.config.scale} px for --scale {enh.config.scale})"
        )
    margin = enh.data.face.margin if enh.data.face else None
    if margin is not None and abs(margin - face.margin) > 1e-6:
        raise RetargetError(
            f"{cfg.enhancer}: learnt faces cut with --margin {margin:g}, this render's use {face.margin:g}"
        )
    console.print(describe(enh), markup=False)
    return Translator(PreBlur(enh.net, cfg.enhancer_blur), device, cfg.amp)


def _rests_ahead(cfg: RenderConfig, ready: Prepared, aligner: Any) -> dict:
    """The swap's look-ahead: each face track's rest over the first seconds the render will
    translate (:func:`retarget.render.swap.look_ahead`), with ``aligner`` (a fresh one like the
    render's, so the tracks are numbered as the render's will be)."""
    import itertools

    from retarget.render.source import Decoded, Source
    from retarget.render.swap import LOOK_AHEAD, look_ahead

    source = Source(aligner, face=True, start=cfg.start, end=cfg.end)  # as stream's, without a stabilizer
    decoded = Decoded(ready.src, ready.info)
    until = (cfg.start or 0.0) + LOOK_AHEAD
    until = until if cfg.end is None else min(until, cfg.end)  # nothing past --end is translated
    frames = itertools.takewhile(lambda frame: frame.time < until, decoded)
    total = round((until - (cfg.start or 0.0)) * ready.info.fps) if ready.info.fps else None
    with make_progress("frames") as progress:
        task = progress.add_task("look ahead", total=total)
        counted = (progress.advance(task) or frame for frame in frames)
        rests = look_ahead(source.items(counted, lambda: decoded.bad_frames))
    console.print(f"looked ahead {until - (cfg.start or 0.0):g} s: {len(rests)} face(s) seen at rest", markup=False)
    return rests


def plan_swap(cfg: RenderConfig, ready: Prepared) -> Plan:
    """The plan of a face swap for ``cfg.target_faces`` (:mod:`retarget.render.swap`): no run, faces only.

    Raises:
        RetargetError: an option of a trained run given, ``cfg.target_faces`` not a face
            dataset with landmarks, or cut with another margin than ``cfg.face``'s.
    """
    from retarget.faces.aligner import face_aligner
    from retarget.faces.crowd import CrowdAligner
    from retarget.faces.retrieval import BROW_REACH, SMOOTH, FaceSwap
    from retarget.faces.gaze import GazeFollow
    from retarget.faces.rims import GlassesGate
    from retarget.render.source import Lanes
    from retarget.faces.steady import GAIN, SteadyLandmarks
    from retarget.dataset.faceindex import crop_scale
    from retarget.render.swap import (
        FaceDetail, PasteScale, face_index, gaze_of, reach_hint, swap_items, target_wears_glasses,
    )  # fmt: skip

    check_effect(cfg, "face")
    assert cfg.target_faces is not None
    index = face_index(cfg.target_faces)
    face = cfg.face or index.face
    if abs(face.margin - index.face.margin) > 1e-6:
        raise RetargetError(
            f"{cfg.target_faces}: faces cut with margin {index.face.margin:g}, this render's use {face.margin:g}"
        )
    console.print(
        f"target faces: {index.root} ({len(index)} faces, {index.size} px, margin {face.margin:g})", markup=False
    )
    info = ready.info
    refine = None
    if cfg.refiner is not None:  # learnt from the target's own video: after the warp, before the paste
        from retarget.render.refine import swap_refiner

        refine = swap_refiner(cfg.refiner, index)
    # one swap, and one steadying of the geometry along the flow, per face lane
    steady = Lanes(functools.partial(SteadyLandmarks, GAIN * cfg.stabilize)) if cfg.stabilize > 0 else None
    # the geometry steadied along the flow needs no further smoothing in the swap, whose lag
    # cost steadiness on fast moves (self-reenactment 28.26 -> 28.30 dB, landmarks 2.19 -> 2.14 %,
    # cross pairs' warping-error ratios 1.21/1.05/1.39 -> 1.19/1.05/1.36)
    swaps = Lanes(functools.partial(FaceSwap, index, smooth=0.0 if steady is not None else SMOOTH))
    glasses = None  # the input's rims beyond the face: painted out unless the target's glasses need them
    if cfg.glasses == "clear" and not target_wears_glasses(index):
        glasses = Lanes(GlassesGate)
    gaze = None  # the source's gaze carried onto the target's eyes
    looks = gaze_of(index) if cfg.gaze == "follow" else None
    if looks is not None:
        gaze = Lanes(functools.partial(GazeFollow, looks))
    if cfg.face_ref is None and cfg.max_faces > 1:  # every face, each followed on its own
        make_aligner: Any = functools.partial(CrowdAligner, face, index.size, cfg.max_faces)
    else:  # --face-ref: that person's face only
        make_aligner = functools.partial(face_aligner, face, index.size, cfg.face_ref)
    rests = _rests_ahead(cfg, ready, make_aligner())  # each face's rest, read ahead
    swap = functools.partial(
        swap_items, swap=swaps, mouth=cfg.mouth, steady=steady, refine=refine, glasses=glasses, rests=rests, gaze=gaze
    )
    stage = PasteScale(swap)
    target_scale = crop_scale(cfg.target_faces)  # how much of the target's video its crops keep
    aligner = make_aligner()
    detail = FaceDetail() if cfg.detail == "match" else None
    root = str(index.root)
    return Plan(
        cfg, ready.src, ready.out, info, index.size, stage,
        square_cut(info.width, info.height, index.size, None),
        aligner=aligner,
        encoder_threads=1,
        forehead=BROW_REACH,  # the mask stops above the brows: the target's hair stays out
        model=str(index.root), direction="swap",
        notes=lambda: (
            stage.hint(root, index.size, target_scale)
            + (detail.hint(root) if detail else [])
            + reach_hint(swaps.made().values(), root, cfg.mouth)
        ),
        finish=detail,
    )  # fmt: skip
