"""``retarget render``: translate a whole video with a trained run, keeping sound and timing.

Frames stream through overlapped stages (:func:`retarget.render.stages.run_stages`), each
its own module and testable on arrays:

1. **source** (:mod:`retarget.render.source`): decode (rotation applied) and prepare the
   network input: the aligned face crop (face mode, reset at scene cuts as extract does),
   or, with ``--align none``, the frame as the run's training data saw it: the whole frame
   (or its ``--crop`` region) at the training scale (``--frame full``), or the centre
   square (``--frame square``, runs from before full frames); with ``--stabilize``, also
   the optical flow between consecutive inputs (:mod:`retarget.render.stabilize`);
2. **translate** (:mod:`retarget.render.translate`): batches through the generator
   (``G_AB`` for a2b, ``G_BA`` for b2a), reflect-padded to the sides it needs and cropped
   back, in overlapping tiles with ``--tile``;
3. **sink** (:mod:`retarget.render.sink`): with ``--stabilize``, blend each translation, in
   order, with the previous one warped along that flow; **compose**
   (:mod:`retarget.render.compose`) the output picture (face pasted along its mask, cut
   upscaled into its region, ``--side-by-side``) and encode it with
   :class:`~retarget.video.writer.VideoWriter`, which carries each frame's timestamp and
   the source's audio.

The output is written under a temporary name beside OUT and renamed at the end
(:func:`retarget.render.stream.translate_video`, the streaming core). With
``--target-faces`` no run is loaded: the faces are swapped for a target person's
(:mod:`retarget.render.swap`).
"""

from __future__ import annotations

from typing import Any, Optional

from retarget.config import FaceConfig, RenderConfig
from retarget.options import check_config
from retarget.device import resolve_device
from retarget.errors import RetargetError
from retarget.faces.aligner import Aligner
from retarget.progress import console
from retarget.render.direction import pick_direction
from retarget.render.stream import (  # noqa: F401  (the streaming core, also importable from here)
    OUTPUT_SUFFIXES,
    RenderSummary,
    check_options,
    check_paths,
    translate_video,
)
from retarget.render.translate import Translator
from retarget.run import load_networks, open_run
from retarget.video.reader import probe

#: Training resizes frames to ``round(size * LOAD_FACTOR)`` before its random crops unless
#: ``--load-size`` says otherwise (:func:`retarget.train.data.default_load_size`); the scale
#: of whole-frame renders for runs that did not record theirs.
LOAD_FACTOR = 1.12


def render(cfg: RenderConfig) -> RenderSummary:
    """Translate ``cfg.input`` into ``cfg.output`` with a trained run (or, with
    ``cfg.target_faces``, swap its faces for a target's: :func:`retarget.render.swap.render_swap`).

    The run is ``cfg.model`` (run folder or weights file) or the newest under
    ``./models``, at its newest checkpoint or that of ``cfg.step``; ``cfg.direction`` picks
    ``G_AB`` (a2b) or ``G_BA`` (b2a), ``cfg.to_domain`` / ``cfg.from_domain`` a direction by
    domain name (a multi-domain run's target: :mod:`retarget.render.direction`). The
    alignment mode, frame mode, face options, crop region and scale default to those of
    the run's source-domain training data (A for a2b, B for b2a, the ``from_domain`` of a
    multi-domain run): a run trained on whole frames (``frame="full"``) translates the
    whole frame at the short side its frames had in training.

    Returns:
        :class:`RenderSummary`; a final line is printed to the console.

    Raises:
        RetargetError: an option outside its range (named), bad paths, unreadable input, no video stream, missing or
            incompatible model, a ``--face-ref`` image missing or without a face, ``--start`` not before
            ``--end`` or beyond the video, both ``--mask-erode`` and ``--mask-dilate``, an ``--enhancer``
            that is missing or learnt other faces (:func:`face_enhancer`).
    """
    check_config(cfg)  # the ranges the CLI enforces, for library callers
    if cfg.target_faces is not None:  # a swap: no run
        from retarget.render.swap import render_swap

        return render_swap(cfg)
    src, out = check_paths(cfg)
    info = probe(src)  # RetargetError for missing/unreadable/no video stream
    check_options(cfg, info)
    device = resolve_device(cfg.device)
    run = open_run(cfg.model, step=cfg.step)
    way = pick_direction(run, cfg)
    load_networks(run, (way.network,), device)
    net = run.networks[way.network]
    if way.target is not None:  # the multi-domain G, told its target
        from retarget.nn.conditional import FixedTarget  # not at import: retarget.nn loads the trainer's step

        net = FixedTarget(net, way.target)
    where = "" if cfg.model else " (newest run under ./models)"
    console.print(f"model: {run.path}{where}" + (f" ({way.text})" if way.target is not None else ""), markup=False)
    data = run.data_of(way.source)
    size = data.size or run.model_cfg.size
    align = cfg.align or data.align
    aligner: Optional[Aligner] = None
    if cfg.face_ref is not None and align != "face":
        raise RetargetError(f"--face-ref applies to face mode only (this render is --align {align})")
    if align == "face":
        face_cfg = cfg.face or data.face or FaceConfig()
        from retarget.faces.aligner import face_aligner

        aligner = face_aligner(face_cfg, size, cfg.face_ref)
    enhance = face_enhancer(cfg, align, size, face_cfg if align == "face" else None, device)
    frame = cfg.frame or data.frame
    scale = (data.scale or round(run.model_cfg.size * LOAD_FACTOR)) if frame == "full" else size
    translator = Translator(net, device, cfg.amp)
    # on CPU the generator is the bottleneck and needs every core: a single-threaded
    # encoder keeps up and disturbs it least; with a GPU the encoder may use all cores
    threads = 1 if device.type == "cpu" else 0
    summary = translate_video(
        cfg,
        translator,
        size,
        info=info,
        aligner=aligner,
        scene_threshold=data.scene_threshold(),
        crop=data.crop,
        frame=frame,
        scale=scale,
        encoder_threads=threads,
        enhance=enhance,
    )
    summary.model = str(run.path)
    summary.direction = way.text
    return summary


def face_enhancer(
    cfg: RenderConfig, align: str, size: int, face: Optional[FaceConfig], device: Any
) -> Optional[Translator]:
    """``--enhancer``: the enhancer as a crops -> larger crops function, or None without one.

    Raises:
        RetargetError: not face mode, ``--output-size model``, or an enhancer that learnt
            other faces than this run's (another crop size or margin).
    """
    if cfg.enhancer is None:
        return None
    if align != "face":
        raise RetargetError(f"--enhancer applies to face mode only (this render is --align {align})")
    if cfg.output_size == "model":
        raise RetargetError("--enhancer sharpens the pasted faces: it does not apply with --output-size model")
    from retarget.nn.enhancer import PreBlur
    from retarget.run.enhancer import describe, load_enhancer

    enh = load_enhancer(cfg.enhancer, device)
    if enh.input_size != size:
        raise RetargetError(
            f"{cfg.enhancer}: learnt {enh.input_size} px faces, this run's are {size} px "
            f"(extract the target at {size * enh.config.scale} px for --scale {enh.config.scale})"
        )
    margin = enh.data.face.margin if enh.data.face else None
    if face is not None and margin is not None and abs(margin - face.margin) > 1e-6:
        raise RetargetError(
            f"{cfg.enhancer}: learnt faces cut with --margin {margin:g}, this render's use {face.margin:g}"
        )
    console.print(describe(enh), markup=False)
    return Translator(PreBlur(enh.net, cfg.enhancer_blur), device, cfg.amp)
