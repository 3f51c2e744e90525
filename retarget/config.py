"""Every option of every command, as frozen dataclasses.

The CLI builds one of these from its flags and hands it to one library function;
each flag is a field here. Configs are saved as JSON in dataset folders, run folders
and checkpoints, so a checkpoint rebuilds its own networks from its ``ModelConfig``
(like whisper's ``ModelDimensions``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Type, TypeVar

T = TypeVar("T")

AlignMode = Literal["none", "face"]
ContentNorm = Literal["minus1_1", "0_1", "imagenet"]
FaceBackendName = Literal["dlib", "fan"]
FacePick = Literal["tracked", "largest"]
GanLoss = Literal["lsgan", "vanilla", "hinge"]
ModelKind = Literal["recycle", "cyclegan"]
Preset = Literal["default", "official", "tiny"]


@dataclass(frozen=True)
class FaceConfig:
    """How faces are detected, aligned and smoothed; shared by extract and render."""

    backend: FaceBackendName = "dlib"  # landmark backend: dlib (offline) or fan (face-alignment)
    margin: float = 0.4  # border around the landmark template, as a fraction of the face size
    smooth: float = 1.0  # temporal smoothing strength of the alignment transform; 0 disables
    pick: FacePick = "tracked"  # with several faces: the one nearest the last, or the largest
    detect_every: int = 5  # run the detector every N frames and track the face in between
    detect_size: int = 480  # longest side of the downscaled frame the detector sees (px)


@dataclass(frozen=True)
class ExtractConfig:
    """Options of ``retarget extract``: videos in, one sequence dataset out."""

    videos: tuple[str, ...]  # input video paths, decoded in order
    output: Optional[str] = None  # dataset folder; default data/<stem of the first video>
    size: int = 256  # side of the square output frames (px)
    format: Literal["png", "jpg"] = "png"  # image format of the frames
    quality: int = 95  # JPEG quality, used with format jpg
    fps: Optional[float] = None  # resample to this frame rate by timestamp; None keeps all
    every: int = 1  # keep every N-th frame (after fps resampling)
    start: Optional[float] = None  # first second to extract
    end: Optional[float] = None  # last second to extract (exclusive)
    max_frames: Optional[int] = None  # stop after this many frames per video
    align: AlignMode = "none"  # none: resize and centre-crop; face: align on the face
    crop: Optional[tuple[int, int, int, int]] = None  # x, y, w, h source crop for align none
    face: FaceConfig = field(default_factory=FaceConfig)  # face options for align face
    cut_threshold: float = 0.5  # HSV-histogram distance above which a scene cut is declared
    overwrite: bool = False  # replace an existing output folder
    append: bool = False  # add these videos to an existing dataset
    workers: int = 4  # threads that encode and write frames


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the networks; stored in every checkpoint to rebuild them.

    The defaults are the ``default`` preset (:data:`PRESETS`), so ``ModelConfig()`` is
    the architecture ``retarget train`` uses without options.
    """

    model: ModelKind = "recycle"  # recycle (Recycle-GAN) or cyclegan
    size: int = 128  # training resolution (px); predictors are built for it
    ngf: int = 64  # generator width (filters in the first layer)
    blocks: int = 6  # residual blocks in each generator (6 or 9)
    ndf: int = 64  # discriminator width
    d_layers: int = 3  # PatchGAN layers (3 gives the 70x70 receptive field)
    npf: int = 64  # predictor U-Net width
    p_depth: int = 5  # U-Net down-sampling levels (the official unet_128 has 7; see docs/training.md)
    p_frames: int = 2  # frames the predictor sees (2 = official)
    p_residual: bool = False  # predictor outputs last frame + U-Net residual, starting as a copy (not official)


@dataclass(frozen=True)
class LossConfig:
    """Weights and kinds of loss terms; a weight of 0 removes the term entirely."""

    gan_loss: GanLoss = "lsgan"  # adversarial loss form
    adv: float = 1.0  # adversarial weight (generator side)
    cycle: float = 10.0  # spatial cycle |x - G_YX(G_XY(x))|_1; 0 = pure Recycle-GAN
    recurrent: float = 10.0  # |x_t+2 - P_X(x_t, x_t+1)|_1
    recycle: float = 10.0  # |x_t+2 - G_YX(P_Y(G_XY(x_t), G_XY(x_t+1)))|_1
    identity: Optional[float] = None  # |y - G_XY(y)|_1; None: 0.5*cycle for both models (docs/training.md)
    similarity: float = 0.0  # |x - G_XY(x)|_1, keeps shape when only style should change
    gp: float = 0.0  # one-sided gradient penalty on real/fake interpolates
    tv: float = 0.0  # total variation of the translations
    # -- content-preserving terms (docs/training.md "Content terms") --
    feature_match: float = 0.0  # |D_Y1,2(x) - D_Y1,2(G_XY(x))|_1 on D_Y's first two blocks (DIAT)
    content: float = 1.0  # |f(x) - f(G_XY(x))|_1 weight; only with a content model (DTN f-constancy)
    content_model: Optional[str] = None  # TorchScript file of f, for both directions
    content_model_a: Optional[str] = None  # f for A->B (on a and G_AB(a)); overrides content_model
    content_model_b: Optional[str] = None  # f for B->A (on b and G_BA(b)); overrides content_model
    content_size: Optional[int] = None  # side f expects (px), images are resized to it; None = training size
    content_norm: ContentNorm = "minus1_1"  # input range f expects: minus1_1, 0_1 or imagenet (mean/std)
    warp: float = 20.0  # recycle only: |G(x_t+1) - warp(G(x_t))|_1 along the source's flow (ours; 0 = paper)


@dataclass(frozen=True)
class TrainConfig:
    """Options of ``retarget train``."""

    a_dir: str  # dataset of domain A (extract output or a folder of ordered images)
    b_dir: str  # dataset of domain B
    out: Optional[str] = None  # run folder; default models/<A>-to-<B>
    preset: Preset = "default"  # architecture preset applied before the explicit options
    model: ModelConfig = field(default_factory=ModelConfig)  # architecture
    loss: LossConfig = field(default_factory=LossConfig)  # loss terms
    steps: int = 10000  # optimisation steps (at most, with time_limit)
    time_limit: Optional[float] = None  # wall-clock budget (s): stop, save and decay the LR over it; None = steps only
    batch_size: int = 1  # triplets (or frames for cyclegan) per domain per step
    lr: float = 2e-4  # Adam learning rate
    beta1: float = 0.5  # Adam beta1
    beta2: float = 0.999  # Adam beta2
    decay_from: Optional[int] = None  # step where linear LR decay to 0 starts; None = steps // 2
    pool: int = 50  # image history pool size for D; 0 disables
    load_size: Optional[int] = None  # frames are resized to this before the random crop; None = size * 1.12
    flip: bool = True  # random horizontal flip (same for all frames of a triplet)
    seed: int = 0  # random seed for weights, sampling and augmentation
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"  # where to train
    amp: Literal["bf16", "fp16", "off"] = "bf16"  # mixed precision on CUDA (ignored on CPU)
    channels_last: bool = True  # channels_last memory format on CUDA
    cache: Literal["memory", "mmap"] = "memory"  # uint8 frame cache in RAM or a memory-mapped file
    resume: bool = False  # continue the run in `out` from its newest complete checkpoint (see resume_config)
    overwrite: bool = False  # start afresh even if `out` holds a run
    checkpoint_every: int = 1000  # steps between checkpoints
    keep: int = 1  # older checkpoints kept besides the newest (render --step picks one)
    preview_every: int = 500  # steps between preview grids
    preview_frames: int = 48  # consecutive A frames translated to a video at each preview; 0 disables
    log_every: int = 10  # steps between metrics.jsonl lines
    threads: Optional[int] = None  # CPU threads for torch; None leaves torch's default


@dataclass(frozen=True)
class RenderConfig:
    """Options of ``retarget render``."""

    input: str  # video to translate
    output: str  # video to write (mp4/mkv/mov)
    model: Optional[str] = None  # run folder or checkpoint; None = newest run under ./models
    step: Optional[int] = None  # render the run's checkpoint of this step; None = its newest
    direction: Literal["a2b", "b2a"] = "a2b"  # which generator to apply
    align: Optional[AlignMode] = None  # None = the mode the run's training data used
    face: Optional[FaceConfig] = None  # None = the face options the training data used
    output_size: Literal["source", "model"] = "source"  # write at source size or model size
    mask: Literal["hull", "ellipse"] = "hull"  # face-mode blend mask
    feather: float = 0.08  # mask feather width, as a fraction of the crop side
    color_match: Literal["lab", "none"] = "lab"  # match the pasted face's colour to its surroundings
    batch_size: int = 8  # frames per generator call
    crf: int = 18  # libx264 quality (lower is better)
    side_by_side: bool = False  # write input and output next to each other
    overwrite: bool = False  # replace an existing output file
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"  # where to run the generator
    amp: Literal["bf16", "fp16", "off"] = "off"  # mixed precision on CUDA
    stabilize: float = 1.0  # flow-guided temporal smoothing strength: 0 = off, 1 = full (docs/benchmarks.md sweep)


@dataclass(frozen=True)
class DemoConfig:
    """Options of ``retarget demo``."""

    out: str = "demo_out"  # folder for everything the demo writes
    seed: int = 0  # seed of the synthetic domains and the training
    steps: int = 600  # training steps of the small preset
    size: int = 64  # frame size of the synthetic domains (px)
    overwrite: bool = True  # replace an earlier demo in `out`


@dataclass(frozen=True)
class EvalConfig:
    """Options of ``retarget eval``: scores of a translated video (see docs/eval.md)."""

    output: str  # the translated video to judge
    source: Optional[str] = None  # the video it was translated from (warping error, faces)
    truth: Optional[str] = None  # its ground-truth translation (PSNR, SSIM, flicker)
    faces: bool = False  # landmark error between source and output faces (needs source)
    face_backend: FaceBackendName = "dlib"  # landmark backend for faces
    target: Optional[str] = None  # the target person (dataset folder or video): identity of the output faces
    flow: Literal["ultrafast", "fast", "medium"] = "medium"  # DIS optical-flow preset on the source
    cut_threshold: float = 0.5  # source scene-cut threshold; no warping error across a cut; 1 disables
    per_frame: bool = False  # keep per-frame values in the result (JSON per_frame)
    json: bool = False  # print the result as JSON on stdout instead of a table


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return dataclasses.asdict(cfg)


def to_json(cfg: Any) -> str:
    """Pretty JSON of a config dataclass."""
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)


#: Fields whose default changed after they were added: a saved config without the key
#: was written before the field existed, when the term was off, so it loads as off (a
#: resumed old run keeps its objective).
ABSENT_MEANT: dict[type, dict[str, Any]] = {LossConfig: {"warp": 0.0}}


def from_dict(cls: Type[T], data: dict[str, Any]) -> T:
    """Rebuild a config dataclass (nested ones included) from :func:`to_dict` output.

    Unknown keys are ignored so newer files still load in older code where fields were
    only added; missing keys take their defaults (or, for the fields of
    :data:`ABSENT_MEANT`, the value they had before the field existed).
    """
    kwargs: dict[str, Any] = dict(ABSENT_MEANT.get(cls, {}))
    hints = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    nested = {"face": FaceConfig, "model": ModelConfig, "loss": LossConfig}
    for name, value in data.items():
        if name not in hints:
            continue
        if name in nested and isinstance(value, dict):
            value = from_dict(nested[name], value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
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


# Valid ranges of numeric training options: field -> (low, high, low_open, high_open);
# None = unbounded. Adam's betas are decay rates of running means: 1 would never
# forget, and torch rejects it; a zero learning rate would train nothing.
_TRAIN_BOUNDS: dict[str, tuple[Optional[float], Optional[float], bool, bool]] = {
    "steps": (1, None, False, False),
    "batch_size": (1, None, False, False),
    "lr": (0, None, True, False),
    "beta1": (0, 1, False, True),
    "beta2": (0, 1, False, True),
    "decay_from": (0, None, False, False),
    "pool": (0, None, False, False),
    "checkpoint_every": (1, None, False, False),
    "keep": (0, None, False, False),
    "preview_every": (1, None, False, False),
    "log_every": (1, None, False, False),
    "threads": (1, None, False, False),
}
_MODEL_BOUNDS = {
    name: (1, None, False, False) for name in ("size", "ngf", "blocks", "ndf", "d_layers", "npf", "p_depth", "p_frames")
}
_LOSS_FIELDS = ("adv", "cycle", "recurrent", "recycle", "identity", "similarity", "gp", "tv")


def _range_text(low: Optional[float], high: Optional[float], low_open: bool, high_open: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'above' if low_open else 'at least'} {low:g}")
    if high is not None:
        parts.append(f"{'below' if high_open else 'at most'} {high:g}")
    return " and ".join(parts)


def _check_bounds(cfg: Any, bounds: dict[str, tuple[Optional[float], Optional[float], bool, bool]]) -> None:
    for name, (low, high, low_open, high_open) in bounds.items():
        value = getattr(cfg, name)
        if value is None:
            continue
        bad = not (value == value and abs(value) != float("inf"))  # NaN or infinite
        if low is not None:
            bad = bad or value < low or (low_open and value == low)
        if high is not None:
            bad = bad or value > high or (high_open and value == high)
        if bad:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} {value:g}: must be {_range_text(low, high, low_open, high_open)}")


def check_train_config(cfg: TrainConfig) -> None:
    """Raise ``ValueError`` naming the first option of ``cfg`` outside its valid range.

    The CLI turns it into a usage error and :func:`retarget.train.train` into a
    ``RetargetError``, so library callers get the same one line as the command line,
    e.g. ``--beta1 1: must be at least 0 and below 1``.
    """
    _check_bounds(cfg, _TRAIN_BOUNDS)
    _check_bounds(cfg.model, _MODEL_BOUNDS)
    _check_bounds(cfg.loss, {name: (0, None, False, False) for name in _LOSS_FIELDS})
    if cfg.load_size is not None and cfg.load_size < cfg.model.size:
        raise ValueError(
            f"--load-size {cfg.load_size}: must be at least --size {cfg.model.size} (frames are cropped to it)"
        )
