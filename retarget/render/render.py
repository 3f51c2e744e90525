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

A render is planned once per mode (:mod:`retarget.render.plan`: a trained run's or a
face swap's, every option checked there, once) and the plan runs through the one
streaming core (:func:`retarget.render.stream.stream`), which writes the output under a
temporary name beside OUT and renames it at the end. With ``--target-faces`` no run is
loaded: the faces are swapped for a target person's (:mod:`retarget.render.swap`).
"""

from __future__ import annotations

from retarget.config import RenderConfig
from retarget.render.plan import LOAD_FACTOR, face_enhancer, plan_render  # noqa: F401  (importable from here)
from retarget.render.stream import (  # noqa: F401  (the streaming core, also importable from here)
    OUTPUT_SUFFIXES,
    RenderSummary,
    check_options,
    check_paths,
    stream,
    translate_video,
)


def render(cfg: RenderConfig) -> RenderSummary:
    """Translate ``cfg.input`` into ``cfg.output`` with a trained run (or, with
    ``cfg.target_faces``, swap its faces for a target's: :func:`retarget.render.plan.plan_swap`).

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
        RetargetError: an option outside its range or given where it has no effect (named),
            bad paths, unreadable input, a still image, no video stream, missing or
            incompatible model, a ``--face-ref`` image missing or without a face, ``--start``
            not before ``--end`` or beyond the video, both ``--mask-erode`` and
            ``--mask-dilate``, an ``--enhancer`` that is missing or learnt other faces.
    """
    return stream(plan_render(cfg))
