"""Every option of every command, as frozen dataclasses.

The CLI builds one of these from its flags and hands it to one library function;
each flag is a field here, and each field carries its facts (valid range, whether a
resumed run may change it, what its absence meant) in its metadata
(:func:`retarget.options.opt`). Configs are saved as JSON in dataset folders, run folders
and checkpoints, so a checkpoint rebuilds its own networks from its ``ModelConfig``
(like whisper's ``ModelDimensions``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import MISSING, dataclass, field
from typing import Any, Literal, Optional, Type, TypeVar

from retarget.jsontypes import field_hints, shown, typed
from retarget import options as _opts  # (the module: its Only is not a config of this one)
from retarget.options import OptionError, absent_meant, check_config, opt

T = TypeVar("T")

AlignMode = Literal["none", "face"]
AmpMode = Literal["auto", "bf16", "fp16", "off"]
Upsample = Literal["transpose", "resize", "blur"]
ContentNorm = Literal["minus1_1", "0_1", "imagenet"]
FaceBackendName = Literal["dlib", "fan"]
FacePick = Literal["tracked", "largest"]
FrameMode = Literal["full", "square"]
GanLoss = Literal["lsgan", "vanilla", "hinge"]
ModelKind = Literal["recycle", "cyclegan"]
Condition = Literal["concat", "modulate"]
Preset = Literal["default", "official", "tiny"]

# When an option has an effect (retarget.options.Only, checked by check_effects): face
# options act on aligned faces only, whole-frame options without them, and a swap
# (render --target-faces) loads no trained run. "align" is resolved by render from the run.
FACES_ONLY = _opts.Only("align", ("face",))
FRAMES_ONLY = _opts.Only("align", ("none",))
RUN_ONLY = _opts.Only(
    "target_faces", (None,), why="--target-faces swaps faces without a trained run: it does not apply"
)
SWAP_ONLY = _opts.Only(
    "target_faces", test=lambda own, t: t is not None, why="applies to a face swap (--target-faces) only"
)
ONE_PERSON = _opts.Only("face_ref", (None,), why="does not apply with --face-ref, which swaps one person's face only")
RECYCLE_ONLY = _opts.Only("model.model", ("recycle",))
CONTENT_ONLY = _opts.Only(
    "loss",
    test=lambda own, loss: any((loss.content_model, loss.content_model_a, loss.content_model_b)),
    why="applies with a content model only (--content-model, --content-model-a or -b)",
)


@dataclass(frozen=True)
class FaceConfig:
    """How faces are detected, aligned and smoothed; shared by extract and render."""

    backend: FaceBackendName = opt("dlib", only=FACES_ONLY)  # landmark backend: dlib (offline) or fan (face-alignment)
    margin: float = opt(
        0.4, min=0, only=FACES_ONLY
    )  # border around the landmark template, as a fraction of the face size
    smooth: float = opt(
        1.0, min=0, only=FACES_ONLY
    )  # temporal smoothing strength of the alignment transform; 0 disables
    pick: FacePick = opt(
        "tracked", only=FACES_ONLY, flag="--face"
    )  # with several faces: the one nearest the last, or the largest
    detect_every: int = opt(5, min=1, only=FACES_ONLY)  # run the detector every N frames and track the face in between
    detect_size: int = opt(
        480, min=64, max=4096, only=FACES_ONLY
    )  # longest side of the downscaled frame the detector sees (px)


@dataclass(frozen=True)
class ExtractConfig:
    """Options of ``retarget extract``: videos in, one sequence dataset out."""

    videos: tuple[str, ...]  # input video paths, decoded in order
    output: Optional[str] = None  # dataset folder; default data/<stem of the first video>
    size: int = opt(256, min=16)  # side of the square frames, or the short side of full frames (px)
    format: Literal["png", "jpg"] = "png"  # image format of the frames
    quality: int = opt(95, min=1, max=100, only=_opts.Only("format", ("jpg",)))  # JPEG quality, used with format jpg
    # resample to this frame rate by timestamp; None keeps all (1000: beyond any camera's rate)
    fps: Optional[float] = opt(None, min=0.01, max=1000)
    every: int = opt(1, min=1)  # keep every N-th frame (after fps resampling)
    start: Optional[float] = opt(None, min=0)  # first second to extract
    end: Optional[float] = opt(None, min=0)  # last second to extract (exclusive)
    max_frames: Optional[int] = opt(None, min=1)  # stop after this many frames per video
    align: AlignMode = "none"  # none: resize (frame decides the shape); face: align on the face
    frame: FrameMode = opt(
        "full", only=FRAMES_ONLY
    )  # align none: full keeps the whole frame's aspect, square its centre square
    crop: Optional[tuple[int, int, int, int]] = opt(None, only=FRAMES_ONLY)  # x, y, w, h source crop for align none
    face: FaceConfig = field(default_factory=FaceConfig)  # face options for align face
    face_ref: Optional[str] = opt(
        None, only=FACES_ONLY
    )  # align face: image of the person to keep; other people's faces are left out
    cut_threshold: float = opt(0.5, min=0, max=1)  # HSV-histogram distance above which a scene cut is declared
    overwrite: bool = False  # replace an existing output folder
    append: bool = False  # add these videos to an existing dataset
    workers: int = opt(4, min=1, max=64)  # threads that encode and write frames


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the networks; stored in every checkpoint to rebuild them.

    The defaults are the ``default`` preset (:data:`PRESETS`), so ``ModelConfig()`` is
    the architecture ``retarget train`` uses without options.
    """

    model: ModelKind = "recycle"  # recycle (Recycle-GAN) or cyclegan
    size: int = opt(128, min=16)  # training resolution (px); predictors are built for it
    ngf: int = opt(64, min=1)  # generator width (filters in the first layer)
    blocks: int = opt(6, min=1)  # residual blocks in each generator (6 or 9)
    # generator up-sampling: transposed convolutions (the release's) or nearest resize + 3x3 convolution
    # (Odena et al. 2016: no checkerboard); saved configs without the key used transpose
    upsample: Upsample = "transpose"
    ndf: int = opt(64, min=1)  # discriminator width
    d_layers: int = opt(3, min=1)  # PatchGAN layers (3 gives the 70x70 receptive field)
    npf: int = opt(64, min=1)  # predictor U-Net width
    p_depth: int = opt(5, min=1)  # U-Net down-sampling levels (the official unet_128 has 7; see docs/training.md)
    p_frames: int = opt(2, min=1)  # frames the predictor sees (2 = official)
    p_residual: bool = False  # predictor outputs last frame + U-Net residual, starting as a copy (not official)
    # -- multi-domain model (docs/training.md "Multi-domain model") --
    domains: int = opt(
        0, min=0
    )  # 0: the pairwise model (G_AB, G_BA, ...); n >= 2: one conditional G, D, P over n domains
    condition: Condition = "modulate"  # how G reads its target: modulate (per-domain norm scale/shift) or concat


#: The largest loss weight: beyond 10,000 x the adversarial term one term drowns every other
#: (the paper's weights are 10; the sweeps in docs/benchmarks.md stay under 100)
MAX_WEIGHT = 1e4


@dataclass(frozen=True)
class LossConfig:
    """Weights and kinds of loss terms; a weight of 0 removes the term entirely."""

    gan_loss: GanLoss = "lsgan"  # adversarial loss form
    adv: float = opt(1.0, min=0, max=MAX_WEIGHT)  # adversarial weight (generator side)
    cycle: float = opt(10.0, min=0, max=MAX_WEIGHT)  # spatial cycle |x - G_YX(G_XY(x))|_1; 0 = pure Recycle-GAN
    recurrent: float = opt(10.0, min=0, max=MAX_WEIGHT, only=RECYCLE_ONLY)  # |x_t+2 - P_X(x_t, x_t+1)|_1
    recycle: float = opt(
        10.0, min=0, max=MAX_WEIGHT, only=RECYCLE_ONLY
    )  # |x_t+2 - G_YX(P_Y(G_XY(x_t), G_XY(x_t+1)))|_1
    # |y - G_XY(y)|_1; None: IDENTITY_PER_CYCLE x cycle, both models; a new run on whole frames
    # saves WHOLE_FRAME_IDENTITY_PER_CYCLE x cycle instead (docs/training.md "Whole frames")
    identity: Optional[float] = opt(None, min=0, max=MAX_WEIGHT)
    similarity: float = opt(0.0, min=0, max=MAX_WEIGHT)  # |x - G_XY(x)|_1, keeps shape when only style should change
    gp: float = opt(0.0, min=0, max=MAX_WEIGHT)  # one-sided gradient penalty on real/fake interpolates
    tv: float = opt(0.0, min=0, max=MAX_WEIGHT)  # total variation of the translations
    # -- content-preserving terms (docs/training.md "Content terms") --
    feature_match: float = opt(
        0.0, min=0, max=MAX_WEIGHT
    )  # |D_Y1,2(x) - D_Y1,2(G_XY(x))|_1 on D_Y's first two blocks (DIAT)
    content: float = opt(
        1.0, min=0, max=MAX_WEIGHT, only=CONTENT_ONLY
    )  # |f(x) - f(G_XY(x))|_1 weight; only with a content model (DTN f-constancy)
    content_model: Optional[str] = None  # TorchScript file of f, for both directions
    content_model_a: Optional[str] = None  # f for A->B (on a and G_AB(a)); overrides content_model
    content_model_b: Optional[str] = None  # f for B->A (on b and G_BA(b)); overrides content_model
    content_size: Optional[int] = opt(
        None, min=8, only=CONTENT_ONLY
    )  # side f expects (px), images resized to it; None = training size
    content_norm: ContentNorm = opt(
        "minus1_1", only=CONTENT_ONLY
    )  # input range f expects: minus1_1, 0_1 or imagenet (mean/std)
    # recycle only: |G(x_t+1) - warp(G(x_t))|_1 along the source's flow (ours; 0 = paper); saved configs
    # without the key were written before the term existed and load with it off
    warp: float = opt(20.0, min=0, max=MAX_WEIGHT, absent=0.0, only=RECYCLE_ONLY)
    cls: float = opt(
        1.0,
        min=0,
        max=MAX_WEIGHT,
        only=_opts.Only(
            "is_multi",
            (True,),
            why="the domain classifier's weight; only a multi-domain run (3 or more datasets, or --multi) has one",
        ),
    )  # multi-domain only: D names the domain of reals, G's fakes that of dst (StarGAN's lambda_cls)


#: ``--steps`` of a new run given a ``--time-limit`` and no ``--steps`` (the CLI): the time decides
UNCAPPED_STEPS = 10**9

#: identity weight per unit of cycle weight when ``LossConfig.identity`` is None
IDENTITY_PER_CYCLE = 0.5
#: the same for a new run whose datasets hold whole frames (``extract --frame full``): there
#: the cycle-consistent inverted tone map took 2 of 3 seeds on one look at 0.5, none at 1.5
#: (docs/benchmarks.md "whole frames")
WHOLE_FRAME_IDENTITY_PER_CYCLE = 1.5


def whole_frame_loss(loss: LossConfig) -> LossConfig:
    """``loss`` for a new run on whole frames: an unset identity weight becomes
    :data:`WHOLE_FRAME_IDENTITY_PER_CYCLE` x cycle (a set one is kept)."""
    if loss.identity is not None:
        return loss
    return dataclasses.replace(loss, identity=WHOLE_FRAME_IDENTITY_PER_CYCLE * loss.cycle)


@dataclass(frozen=True)
class TrainConfig:
    """Options of ``retarget train``."""

    a_dir: str  # dataset of domain A (extract output or a folder of ordered images)
    b_dir: str  # dataset of domain B
    out: Optional[str] = None  # run folder; default models/<A>-to-<B> (multi-domain: models/<n1>-<n2>-...)
    # -- multi-domain runs (docs/train.md "Many domains in one model") --
    more: tuple[str, ...] = ()  # datasets of a third, fourth... domain: any makes the run multi-domain
    multi: bool = False  # one conditional model even over two datasets (three or more always are)
    names: tuple[str, ...] = ()  # domain names, one per dataset in order; () = the dataset folders' names
    preset: Preset = "default"  # architecture preset applied before the explicit options
    model: ModelConfig = field(default_factory=ModelConfig)  # architecture
    # pick the preset and size for the device and time limit (retarget/train/timebudget.py), replacing
    # those of `model`; the CLI sets it when neither --preset nor --size nor a width is given
    auto: bool = False
    picked: str = ""  # what auto picked and why, one line (written by train into config.json)
    loss: LossConfig = field(default_factory=LossConfig)  # loss terms
    steps: int = opt(10000, min=1, resumable=True)  # optimisation steps (at most, with time_limit)
    # wall-clock budget (s): stop, save and decay the LR over it; None = steps only
    time_limit: Optional[float] = opt(None, min=1, resumable=True)
    batch_size: int = opt(1, min=1)  # triplets (or frames for cyclegan) per domain per step; multi-domain: per step
    # Adam's betas are decay rates of running means: 1 would never forget (torch refuses
    # it); a zero learning rate would train nothing
    lr: float = opt(2e-4, min=0, min_open=True, max=1)  # Adam learning rate; above 1 Adam steps past any weight scale
    beta1: float = opt(0.5, min=0, max=1, max_open=True)  # Adam beta1
    beta2: float = opt(0.999, min=0, max=1, max_open=True)  # Adam beta2
    decay_from: Optional[int] = opt(
        None,
        min=0,
        only=_opts.Only(
            "steps", test=lambda own, steps: own < steps, why="at or past --steps {decider}: the LR would never decay"
        ),
    )  # step where linear LR decay to 0 starts; None = steps // 2
    pool: int = opt(50, min=0)  # image history pool size for D; 0 disables
    load_size: Optional[int] = opt(None, min=16)  # resized to this before the random crop; None = size * 1.12
    flip: bool = True  # random horizontal flip (same for all frames of a triplet)
    seed: int = opt(0, min=0)  # random seed for weights, sampling and augmentation
    device: Literal["auto", "cpu", "cuda", "mps"] = opt("auto", resumable=True)  # where to train
    # mixed precision: auto = bf16 where native (CUDA, CPU), fp16 on older GPUs, else off
    amp: AmpMode = opt("auto", resumable=True)
    # seconds a collective waits for the slowest rank (torchrun runs) before the run fails;
    # NCCL needs seconds to start, a week is no timeout
    dist_timeout: float = opt(1800.0, min=10, max=7 * 24 * 3600, resumable=True)
    channels_last: bool = True  # channels_last memory format on CUDA
    cache: Literal["memory", "mmap"] = "memory"  # uint8 frame cache in RAM or a memory-mapped file
    resume: bool = False  # continue the run in `out` from its newest complete checkpoint (see resume_config)
    overwrite: bool = False  # start afresh even if `out` holds a run
    # another run (folder or weights file) whose newest networks this run starts from, with a fresh
    # optimiser, LR schedule and step count; the architecture must match; None = random weights
    init_from: Optional[str] = None
    init_swap: bool = False  # with init_from: start A->B from its B->A side (G_AB <- G_BA, D_A <- D_B, P_A <- P_B)
    checkpoint_every: int = opt(1000, min=1, resumable=True)  # steps between checkpoints
    keep: int = opt(1, min=0, resumable=True)  # older checkpoints kept besides the newest (render --step picks one)
    preview_every: int = opt(500, min=1, resumable=True)  # steps between preview grids
    preview_frames: int = opt(48, min=0)  # consecutive A (multi: first domain) frames per preview video; 0 disables
    log_every: int = opt(10, min=1, resumable=True)  # steps between metrics.jsonl lines
    threads: Optional[int] = opt(None, min=1, resumable=True)  # CPU threads for torch; None leaves torch's default

    @property
    def datasets(self) -> tuple[str, ...]:
        """Every dataset of the run, in domain order: ``a_dir``, ``b_dir``, then ``more``."""
        return (self.a_dir, self.b_dir, *self.more)

    @property
    def is_multi(self) -> bool:
        """One conditional model over every dataset: three or more, ``multi``, or ``model.domains`` set."""
        return self.multi or bool(self.more) or self.model.domains >= 2


@dataclass(frozen=True)
class RenderConfig:
    """Options of ``retarget render``."""

    input: str  # video to translate
    output: str  # video to write (mp4/mkv/mov)
    model: Optional[str] = opt(None, only=RUN_ONLY)  # run folder or checkpoint; None = newest run under ./models
    step: Optional[int] = opt(None, min=0, only=RUN_ONLY)  # render the run's checkpoint of this step; None = its newest
    direction: Literal["a2b", "b2a"] = opt(
        "a2b",
        only=(RUN_ONLY, _opts.Only("to_domain", (None,), why="--to names the target: give one of them")),
    )  # which generator to apply (to_domain, when given, wins)
    # the target domain by name (multi-domain runs; a pair's dataset names or A/B also work); None = direction
    to_domain: Optional[str] = opt(None, only=RUN_ONLY, flag="--to")
    # the input's domain by name: its training data decide alignment, frame and scale; None = the first
    # domain other than the target (docs/render.md)
    from_domain: Optional[str] = opt(None, only=RUN_ONLY, flag="--from")
    # None = the mode the run's training data used; a swap aligns faces
    align: Optional[AlignMode] = opt(
        None, only=_opts.Only("target_faces", test=lambda own, t: t is None or own == "face", why=RUN_ONLY.why)
    )
    face: Optional[FaceConfig] = None  # None = the face options the training data used
    face_ref: Optional[str] = opt(
        None, only=FACES_ONLY
    )  # face mode: image of the person to translate; other faces pass through
    # align none: full or square frames; None = the run's training data's
    frame: Optional[FrameMode] = opt(None, only=(RUN_ONLY, FRAMES_ONLY))
    scale: Optional[int] = opt(
        None, min=16, only=(RUN_ONLY, FRAMES_ONLY)
    )  # short side (px) the generator sees (square: the crop side); None = the run's
    tile: Optional[int] = opt(
        None, min=16, only=RUN_ONLY
    )  # translate whole frames in overlapping tiles of this side (px); None = at once
    upscale: Literal["bilinear", "detail"] = opt(
        "bilinear", only=FRAMES_ONLY
    )  # back to source size: bilinear, or the source's detail kept
    output_size: Literal["source", "model"] = "source"  # write at source size or model size
    mask: Literal["hull", "ellipse"] = opt("hull", only=FACES_ONLY)  # face-mode blend mask
    feather: float = opt(0.08, min=0, max=0.5, only=FACES_ONLY)  # mask feather width, as a fraction of the crop side
    # match the pasted face's colour to the face it replaces: Lab mean and spread, RGB histograms, or not
    color_match: Literal["lab", "hist", "none"] = opt("lab", only=FACES_ONLY)
    blend: Literal["alpha", "seamless"] = opt(
        "alpha", only=FACES_ONLY
    )  # face paste: along the feathered mask, or Poisson (seamlessClone)
    mask_erode: int = opt(
        0, min=0, only=FACES_ONLY
    )  # shrink the face mask by this many frame pixels (not with mask_dilate)
    mask_dilate: int = opt(
        0, min=0, only=FACES_ONLY
    )  # grow the face mask by this many frame pixels (not with mask_erode)
    batch_size: int = opt(8, min=1)  # frames per generator call
    crf: int = opt(18, min=0, max=51)  # libx264 quality (lower is better)
    side_by_side: bool = False  # write input and output next to each other
    overwrite: bool = False  # replace an existing output file
    device: Literal["auto", "cpu", "cuda", "mps"] = opt("auto", only=RUN_ONLY)  # where to run the generator
    amp: AmpMode = opt(
        "auto", only=RUN_ONLY
    )  # mixed precision: auto = bf16 where native (CUDA, CPU), fp16 on older GPUs, else off
    stabilize: float = opt(1.0, min=0, max=1)  # flow-guided temporal smoothing: 0 = off, 1 = full (docs/benchmarks.md)
    # filter the transposed convolutions' checkerboard out of the generator's output (retarget/render/degrid.py);
    # None: on for whole frames (frame full) of runs trained with --upsample transpose, else off
    degrid: Optional[bool] = opt(None, only=(RUN_ONLY, FRAMES_ONLY))
    # a face dataset of the target person (extract --align face): swap every face for theirs, no trained run
    target_faces: Optional[str] = None
    # a swap's mouth: the target's own (its nearest frame, warped), or the source's mouth interior
    # (teeth, tongue) pasted inside the target's lips, colour-matched
    mouth: Literal["target", "source"] = opt("target", only=SWAP_ONLY)
    # a swap's refiner folder (train-refiner): learnt from the target's own video, it cleans each swapped face
    refiner: Optional[str] = opt(None, only=SWAP_ONLY)
    # a swap: faces swapped in each frame at most, each followed on its own (largest first when more appear)
    max_faces: int = opt(4, min=1, max=64, only=(SWAP_ONLY, ONE_PERSON))
    # a swap: paint the input's glasses (rims, arms) out where the target's face does not cover them, or keep them
    glasses: Literal["clear", "keep"] = opt("clear", only=SWAP_ONLY)
    # a swap: each face sharpened to the input face's fine detail (an unsharp mask, gain 1-2, steady per face), or
    # the target's own kept
    detail: Literal["match", "keep"] = opt("match", only=SWAP_ONLY)
    # a swap: move the target's irises where the source looks (follow), or keep where the target looked
    gaze: Literal["follow", "keep"] = opt("follow", only=SWAP_ONLY)
    enhancer: Optional[str] = opt(
        None, only=(RUN_ONLY, FACES_ONLY)
    )  # face mode: an enhancer folder (train-enhancer) sharpening faces before the paste
    enhancer_blur: float = opt(
        1.0, min=0, only=_opts.Only("enhancer", test=lambda own, e: e is not None, why="applies with --enhancer only")
    )  # blur (sigma, model px) of each face before the enhancer: no checkerboard
    start: Optional[float] = opt(None, min=0)  # translate from this second on; earlier frames are copied unchanged
    end: Optional[float] = opt(None, min=0)  # translate up to this second (exclusive); later frames copied unchanged
    # what runs the generator: torch, or onnxruntime on the run's translator exported to ONNX (docs/render.md)
    engine: Literal["torch", "onnx"] = opt("torch", only=RUN_ONLY)
    # render several inputs (files, folders, globs) into this folder, resuming an earlier batch (docs/render.md)
    out_dir: Optional[str] = opt(None, flag="--out")
    jobs: int = opt(
        1, min=1, only=_opts.Only("out_dir", test=lambda own, d: d is not None, why="applies with -o DIR only")
    )  # clips rendered at once, each in its own process


@dataclass(frozen=True)
class ExportConfig:
    """Options of ``retarget export``: a run's translator as an ONNX file (docs/render.md)."""

    output: str  # the .onnx file to write
    model: Optional[str] = None  # run folder or checkpoint; None = newest run under ./models
    step: Optional[int] = opt(None, min=0)  # the run's checkpoint of this step; None = its newest
    direction: Literal["a2b", "b2a"] = opt(
        "a2b", only=_opts.Only("to_domain", (None,), why="--to names the target: give one of them")
    )  # which generator of a pair (to_domain, when given, wins)
    to_domain: Optional[str] = opt(None, flag="--to")  # the target domain by name (needed with 3 or more)
    from_domain: Optional[str] = opt(None, flag="--from")  # the domain whose data the metadata describe
    opset: int = opt(17, min=9)  # ONNX opset version
    overwrite: bool = False  # replace an existing file


@dataclass(frozen=True)
class RefinerConfig:
    """Options of ``retarget train-refiner``: a swap refiner learnt from the target person's own video."""

    data: str  # face dataset of the target person (extract --align face), the one render --target-faces uses
    out: Optional[str] = None  # refiner folder to write; default models/refiner_<dataset folder name>
    # frames either side of each training frame that may not be its input (they are the frame itself, barely moved)
    exclude: int = opt(10, min=1)
    factor: int = opt(4, min=1, max=8)  # the network works at 1/factor of the crop side (pixel unshuffle)
    # correct at 1/factor only (upsampled): the face's fine detail passes unchanged; off: corrections at every
    # scale, +0.3 dB more on held-out faces but a face half as sharp (docs/benchmarks.md)
    smooth: bool = True
    width: int = opt(32, min=4)  # channels of the network's body
    blocks: int = opt(6, min=1)  # residual blocks
    steps: int = opt(20000, min=1)  # optimisation steps at most
    time_limit: Optional[float] = opt(300.0, min=1)  # stop after this many seconds of training; None = steps only
    batch_size: int = opt(8, min=1)  # patches per step
    patch: int = opt(128, min=16)  # side of the training patches (px)
    lr: float = opt(5e-4, min=0, min_open=True, max=1)  # Adam learning rate, halved over the last quarter
    max_frames: int = opt(1500, min=2)  # frames of the dataset turned into pairs (evenly spaced)
    holdout: float = opt(0.1, min=0, max=0.5)  # share of the frames (the last ones) kept out of training to score it
    seed: int = opt(0, min=0)  # patches, flips and the initial weights
    threads: Optional[int] = opt(None, min=1)  # torch threads; None = torch's default
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"  # where to train
    amp: AmpMode = "auto"  # mixed precision, as for train
    overwrite: bool = False  # replace an existing refiner folder


@dataclass(frozen=True)
class EnhancerConfig:
    """Options of ``retarget train-enhancer``: a face enhancer learnt from one person's frames."""

    data: str  # face dataset of the target person (extract --align face), at scale x the model's size
    out: Optional[str] = None  # enhancer folder to write; default models/enhancer_<dataset folder name>
    scale: int = opt(4, min=2, max=8)  # output side per input side (2, 4 or 8)
    width: int = opt(32, min=4)  # channels of the network's body
    blocks: int = opt(6, min=1)  # residual blocks at the input resolution
    steps: int = opt(20000, min=1)  # optimisation steps at most
    time_limit: Optional[float] = opt(600.0, min=1)  # stop after this many seconds of training; None = steps only
    batch_size: int = opt(8, min=1)  # patches per step
    patch: int = opt(128, min=16)  # side of the training patches at the output resolution (px)
    lr: float = opt(5e-4, min=0, min_open=True, max=1)  # Adam learning rate, halved over the last quarter
    # largest Gaussian blur (sigma, input px) of the training inputs; past ~10 px a face is a flat blur
    blur: float = opt(2.0, min=0, max=16)
    # largest noise std (in [-1, 1] units) of the training inputs; above 1 the noise outweighs the picture
    noise: float = opt(0.02, min=0, max=1)
    max_frames: int = opt(2000, min=1)  # frames of the dataset kept in memory (evenly spaced)
    seed: int = opt(0, min=0)  # patches, degradations and the initial weights
    threads: Optional[int] = opt(None, min=1)  # torch threads; None = torch's default
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"  # where to train
    amp: AmpMode = "auto"  # mixed precision, as for train
    overwrite: bool = False  # replace an existing enhancer folder


@dataclass(frozen=True)
class DemoConfig:
    """Options of ``retarget demo``."""

    out: str = "demo_out"  # folder for everything the demo writes
    seed: int = opt(0, min=0)  # seed of the synthetic domains and the training
    steps: int = opt(600, min=1)  # training steps of the small preset
    size: int = opt(64, min=32, max=512)  # frame size of the synthetic domains (px); a demo, not a benchmark
    overwrite: bool = True  # replace an earlier demo in `out`


@dataclass(frozen=True)
class EvalConfig:
    """Options of ``retarget eval``: scores of a translated video (see docs/eval.md)."""

    output: str  # the translated video to judge
    source: Optional[str] = None  # the video it was translated from (warping error, faces)
    truth: Optional[str] = None  # its ground-truth translation (PSNR, SSIM, flicker)
    faces: bool = False  # face scores: landmarks, mouth and eye movement, sharpness (needs source)
    face_backend: FaceBackendName = opt("dlib", only=_opts.Only("faces", (True,)))  # landmark backend for faces
    target: Optional[str] = None  # the target person (dataset folder or video): identity of the output faces
    flow: Literal["ultrafast", "fast", "medium"] = "medium"  # DIS optical-flow preset on the source
    cut_threshold: float = opt(0.5, min=0, max=1)  # source cut threshold; no pair score across a cut; 1 disables
    per_frame: bool = opt(
        False, only=_opts.Only("json", (True,))
    )  # keep per-frame values in the result (JSON per_frame)
    json: bool = False  # print the result as JSON on stdout instead of a table


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return dataclasses.asdict(cfg)


def to_json(cfg: Any) -> str:
    """Pretty JSON of a config dataclass."""
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)


#: Key of a run's config.json, beside the TrainConfig fields, that records what ``amp``
#: resolved to on the run's device ("bf16", "fp16" or "off"); :func:`from_dict` ignores it.
AMP_USED = "amp_used"


def from_dict(cls: Type[T], data: dict[str, Any]) -> T:
    """Rebuild a config dataclass (nested ones included) from :func:`to_dict` output.

    Unknown keys are ignored so newer files still load in older code where fields were
    only added; missing keys take their defaults (or, for the fields of
    :data:`ABSENT_MEANT`, the value they had before the field existed). Each value is
    checked against its field's type (a hand-edited or damaged file): an ``int`` field
    takes an integer (an integral float is converted), a ``float`` field any number, a
    ``Literal`` one of its choices, a tuple a list of the right items, a nested config a
    JSON object.

    Raises:
        ValueError: a value of the wrong type or outside its choices, or a required key
            that is missing; the message starts with the key (``model.size: ...``), and
            callers put the file's name in front.
    """
    return _from_dict(cls, data, "")


def _from_dict(cls: Type[T], data: Any, where: str) -> T:
    if not isinstance(data, dict):
        raise ValueError(f"{where.rstrip('.') or 'the configuration'}: expected a JSON object, got {shown(data)}")
    kwargs: dict[str, Any] = dict(ABSENT_MEANT.get(cls, {}))
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = field_hints(cls)
    for name, value in data.items():
        if name in fields:
            kwargs[name] = typed(hints.get(name, Any), value, where + name, _from_dict)
    missing = [
        n for n, f in fields.items() if n not in kwargs and f.default is MISSING and f.default_factory is MISSING
    ]
    if missing:
        raise ValueError(f"{where}{missing[0]}: missing")
    return cls(**kwargs)


def replace(cfg: T, **changes: Any) -> T:
    """A copy of a frozen config with some fields changed."""
    return dataclasses.replace(cfg, **changes)  # type: ignore[type-var]


#: Architecture presets. ``official`` is the Recycle-GAN release (resnet_6blocks,
#: unet_128 predictor, 3-layer PatchGAN, all width 64); ``default`` trades the 40M-
#: parameter predictor for a shallower, narrower U-Net (see docs/training.md);
#: ``tiny`` is for tests and the demo.
PRESETS: dict[str, dict[str, int]] = {
    "official": dict(ngf=64, blocks=6, ndf=64, d_layers=3, npf=64, p_depth=7),
    "default": {},  # ModelConfig's own defaults: ngf 64, blocks 6, ndf 64, d_layers 3, npf 64, p_depth 5
    "tiny": dict(ngf=8, blocks=2, ndf=8, d_layers=2, npf=8, p_depth=3),
}


def model_preset(preset: Preset, model: ModelKind = "recycle", size: int = 128, **overrides: Any) -> ModelConfig:
    """The ``ModelConfig`` of a preset at ``size``, with explicit options on top.

    Options passed as ``None`` are ignored, so a CLI can forward unset flags. The
    official predictor depth follows the release: unet_128 below 256 px, unet_256 at
    256 px and above; below 128 px it is cut to log2(size) so the U-Net's innermost
    level is 1x1, as unet_128 is at 128 px.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    values: dict[str, Any] = dict(PRESETS[preset])
    if preset == "official":
        values["p_depth"] = 8 if size >= 256 else min(7, max(1, size.bit_length() - 1))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return ModelConfig(model=model, size=size, **values)


#: The config dataclasses, outermost first.
CONFIGS: tuple[type, ...] = (
    TrainConfig,
    ModelConfig,
    LossConfig,
    ExtractConfig,
    FaceConfig,
    RenderConfig,
    EvalConfig,
    DemoConfig,
    EnhancerConfig,
    RefinerConfig,
    ExportConfig,
)

#: Fields whose default changed after they were added (``opt(absent=...)``): a saved
#: config without the key was written before the field existed, when the term was off,
#: so it loads as off (a resumed old run keeps its objective). Read by :func:`from_dict`.
ABSENT_MEANT: dict[type, dict[str, Any]] = {cls: meant for cls in CONFIGS if (meant := absent_meant(cls))}


def check_train_config(cfg: TrainConfig) -> None:
    """:func:`check_config`, ``load_size`` (when given) at least the training size, ``init_swap`` only with ``init_from``.

    Raises :class:`OptionError`: the CLI turns it into a usage error, library callers of
    :func:`retarget.train.train` see it as a ``RetargetError`` with the same one line,
    e.g. ``--beta1 1: must be at least 0 and below 1``.
    """
    check_config(cfg)
    if cfg.init_swap and not cfg.init_from:
        raise OptionError("--swap: takes the B->A side of the run given with --init-from RUN; give that too")
    if cfg.load_size is not None and cfg.load_size < cfg.model.size:
        raise OptionError(
            f"--load-size {cfg.load_size}: must be at least --size {cfg.model.size} (frames are cropped to it)"
        )
