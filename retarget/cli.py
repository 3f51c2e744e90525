"""The ``retarget`` command line: parse flags, build a config, call one library function.

Nothing here does work of its own. Each flag is a field of a config in
:mod:`retarget.config`; library errors (:class:`~retarget.errors.RetargetError`)
become one line on stderr and a non-zero exit. Heavy imports (torch, av, cv2) happen
inside the commands so ``retarget --help`` and ``--version`` answer at once.

Longer than 400 lines on purpose: each command declares its options as
annotated parameters (Typer builds ``--help`` from them), one per config field.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from typing import Annotated, Any, Callable, Literal, Optional, TypeVar

import typer

from retarget import __version__
from retarget.config import (
    DemoConfig,
    EnhancerConfig,
    RefinerConfig,
    EvalConfig,
    ExportConfig,
    ExtractConfig,
    FaceConfig,
    LossConfig,
    ModelConfig,
    RenderConfig,
    TrainConfig,
    check_train_config,
    UNCAPPED_STEPS,
    model_preset,
)
from retarget.errors import RetargetError
from retarget.options import option_range

R = TypeVar("R")
C = TypeVar("C")

app = typer.Typer(
    name="retarget",
    help="Unsupervised video retargeting with Recycle-GAN: extract, train, render.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

FACE = "Face alignment"
MODEL = "Architecture"
LOSS = "Loss terms"
RUN = "Run"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"retarget {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Unsupervised video retargeting with Recycle-GAN: extract, train, render."""


def _run(fn: Callable[[], R]) -> R:
    """Call a library function; turn user-facing errors and Ctrl-C into clean exits.

    A library error is its one line (exit 1); memory or the file system failing under
    the command is one line too (:func:`retarget.failures.error_line`, exit 1); anything
    else is a bug, reported in one line with the way to see its traceback (exit 3).
    """
    try:
        return fn()
    except RetargetError as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt as exc:  # before the loop, or a second Ctrl-C/SIGTERM during the final save
        typer.secho("interrupted", err=True, fg="yellow")
        raise typer.Exit(128 + getattr(exc, "signal_number", signal.SIGINT)) from None
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except Exception as exc:
        if os.environ.get("RETARGET_DEBUG"):
            raise
        raise typer.Exit(_unexpected(exc)) from None


def _unexpected(exc: BaseException) -> int:
    """Print the one line of an error that is not a RetargetError; returns the exit status."""
    from retarget.failures import error_line

    line, status = error_line(exc)
    typer.secho(f"error: {line}", err=True, fg="red")
    return status


def _config(cls: type[C], flags: dict[str, Any], **given: Any) -> C:
    """``cls`` built from the flags named like its fields (each flag is one field), and ``given``.

    Fields without a flag keep their dataclass default.
    """
    names = _names(cls)
    return cls(**{k: v for k, v in flags.items() if k in names and k not in given}, **given)


def _limited(*classes: type) -> Callable[..., Any]:
    """A ``typer.Option`` maker whose ``min``/``max`` are the range in the options' field metadata.

    ``make("quality", help=...)`` is ``typer.Option(min=1, max=100, help=...)`` for the
    first of ``classes`` with a field ``quality``. Typer cannot exclude an end, so an
    option with an open one (``--lr`` above 0, the betas below 1) gets no limits here;
    ``check_train_config`` refuses it with the library's line.
    """

    def make(name: str, *decls: str, **kwargs: Any) -> Any:
        cls = next(c for c in classes if name in _names(c))
        rng = option_range(cls, name)
        if rng is None:  # a mistake in this file, found at import
            raise TypeError(f"{cls.__name__}.{name} has no range; use typer.Option")
        if rng.closed:
            kwargs.update(min=rng.low, max=rng.high)
        return typer.Option(*decls, **kwargs)

    return make


def _names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]


_extract_opt = _limited(ExtractConfig, FaceConfig)
_train_opt = _limited(ModelConfig, LossConfig, TrainConfig)
_render_opt = _limited(RenderConfig)
_eval_opt = _limited(EvalConfig)
_demo_opt = _limited(DemoConfig)
_enh_opt = _limited(EnhancerConfig)
_ref_opt = _limited(RefinerConfig)
_export_opt = _limited(ExportConfig)


def _crop(text: Optional[str]) -> Optional[tuple[int, int, int, int]]:
    if text is None:
        return None
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter("expected four integers x,y,w,h", param_hint="--crop") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise typer.BadParameter("x,y must be >= 0 and w,h > 0", param_hint="--crop")
    return (x, y, w, h)


# Longer than 60 lines on purpose: one Typer parameter per option: the flags are the signature.
@app.command()
def extract(
    videos: Annotated[list[str], typer.Argument(help="Video files of one domain, decoded in order.")],
    output: Annotated[
        Optional[str], typer.Option("-o", "--output", help="Dataset folder \\[default: data/<first video's name>].")
    ] = ExtractConfig.output,
    size: Annotated[
        int, _extract_opt("size", help="Short side of the frames (px); the side of square ones.")
    ] = ExtractConfig.size,
    format: Annotated[Literal["png", "jpg"], typer.Option(help="Image format of the frames.")] = ExtractConfig.format,
    quality: Annotated[int, _extract_opt("quality", help="JPEG quality (with --format jpg).")] = ExtractConfig.quality,
    fps: Annotated[
        Optional[float], _extract_opt("fps", help="Resample to this frame rate by timestamp.")
    ] = ExtractConfig.fps,
    every: Annotated[int, _extract_opt("every", help="Keep every N-th frame.")] = ExtractConfig.every,
    start: Annotated[Optional[float], _extract_opt("start", help="Start at this second.")] = ExtractConfig.start,
    end: Annotated[Optional[float], _extract_opt("end", help="Stop at this second.")] = ExtractConfig.end,
    max_frames: Annotated[
        Optional[int], _extract_opt("max_frames", help="At most this many frames per video.")
    ] = ExtractConfig.max_frames,
    align: Annotated[
        Literal["none", "face"], typer.Option(help="none: resize the frame (see --frame); face: align on the face.")
    ] = ExtractConfig.align,
    frame: Annotated[
        Literal["full", "square"],
        typer.Option(help="With --align none: full keeps the whole frame and its aspect; square its centre square."),
    ] = ExtractConfig.frame,
    crop: Annotated[Optional[str], typer.Option(help="Source region x,y,w,h to use with --align none.")] = None,
    backend: Annotated[
        Literal["dlib", "fan"], typer.Option(help="Face landmark backend.", rich_help_panel=FACE)
    ] = FaceConfig.backend,
    margin: Annotated[
        float, _extract_opt("margin", help="Border around the face, as a fraction of its size.", rich_help_panel=FACE)
    ] = FaceConfig.margin,
    smooth: Annotated[
        float, _extract_opt("smooth", help="Temporal smoothing strength; 0 disables.", rich_help_panel=FACE)
    ] = FaceConfig.smooth,
    face: Annotated[
        Literal["tracked", "largest"],
        typer.Option(help="With several faces: the tracked one or the largest.", rich_help_panel=FACE),
    ] = FaceConfig.pick,
    detect_every: Annotated[
        int,
        _extract_opt("detect_every", help="Run the detector every N frames, track in between.", rich_help_panel=FACE),
    ] = FaceConfig.detect_every,
    detect_size: Annotated[
        int, _extract_opt("detect_size", help="Longest side of the frame the detector sees (px).", rich_help_panel=FACE)
    ] = FaceConfig.detect_size,
    face_ref: Annotated[
        Optional[str],
        typer.Option(
            metavar="IMAGE",
            help="Keep only the face of the person in this image (face descriptor distance); frames without "
            "that person are left out.",
            rich_help_panel=FACE,
        ),
    ] = ExtractConfig.face_ref,
    cut_threshold: Annotated[
        float, _extract_opt("cut_threshold", help="Histogram distance that counts as a scene cut.")
    ] = ExtractConfig.cut_threshold,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = ExtractConfig.overwrite,
    append: Annotated[bool, typer.Option(help="Add to an existing dataset.")] = ExtractConfig.append,
    workers: Annotated[int, _extract_opt("workers", help="Threads writing images.")] = ExtractConfig.workers,
) -> None:
    """Decode videos (and for faces: detect, align, smooth) into a frame dataset."""
    cfg = _config(
        ExtractConfig, locals(), videos=tuple(videos), crop=_crop(crop), face=_config(FaceConfig, locals(), pick=face)
    )
    from retarget.dataset.extract import extract as run_extract

    _run(lambda: run_extract(cfg))


# Longer than 60 lines on purpose: one Typer parameter per option: the flags are the signature.
@app.command()
def train(
    ctx: typer.Context,
    datasets: Annotated[
        Optional[list[str]],
        typer.Argument(
            metavar="DATASETS",
            help="One dataset per domain (extract output or a folder of images): A_DIR B_DIR for a pair; "
            "three or more (or two with --multi) train one multi-domain model; with --resume, only the run's own.",
        ),
    ] = None,
    out: Annotated[
        Optional[str],
        typer.Option("-o", "--out", help="Run folder \\[default: models/<A>-to-<B>, or models/<n1>-<n2>-...]."),
    ] = TrainConfig.out,
    multi: Annotated[
        bool, typer.Option("--multi", help="One multi-domain model even over two datasets.")
    ] = TrainConfig.multi,
    names: Annotated[
        Optional[str],
        typer.Option(
            metavar="A,B,C",
            help="Multi-domain: the domains' names, one per dataset \\[default: the dataset folders' names].",
        ),
    ] = None,
    model: Annotated[
        Literal["recycle", "cyclegan"], typer.Option(help="Recycle-GAN or plain CycleGAN.")
    ] = ModelConfig.model,
    preset: Annotated[
        Optional[Literal["default", "official", "tiny"]],
        typer.Option(
            help="Architecture preset; the options below override it \\[default: with no --size either, picked for "
            "the device and --time-limit (docs/train.md), else default].",
            rich_help_panel=MODEL,
        ),
    ] = None,
    size: Annotated[
        Optional[int],
        _train_opt(
            "size",
            help="Training resolution (px) \\[default: with no --preset either, picked for the device and "
            "--time-limit, else 128].",
            rich_help_panel=MODEL,
        ),
    ] = None,
    ngf: Annotated[Optional[int], _train_opt("ngf", help="Generator width.", rich_help_panel=MODEL)] = None,
    blocks: Annotated[
        Optional[int], _train_opt("blocks", help="Residual blocks per generator.", rich_help_panel=MODEL)
    ] = None,
    upsample: Annotated[
        Literal["transpose", "resize", "blur"],
        typer.Option(
            help="Generator up-sampling: transposed convolutions (the release) or resize + convolution (no checkerboard).",
            rich_help_panel=MODEL,
        ),
    ] = ModelConfig.upsample,
    ndf: Annotated[Optional[int], _train_opt("ndf", help="Discriminator width.", rich_help_panel=MODEL)] = None,
    npf: Annotated[Optional[int], _train_opt("npf", help="Predictor U-Net width.", rich_help_panel=MODEL)] = None,
    p_depth: Annotated[
        Optional[int], _train_opt("p_depth", help="Predictor U-Net depth.", rich_help_panel=MODEL)
    ] = None,
    p_residual: Annotated[
        Optional[bool],
        typer.Option(
            help="Predictor = last frame + U-Net residual, starting as a copy \\[default: from the preset].",
            rich_help_panel=MODEL,
        ),
    ] = None,
    condition: Annotated[
        Literal["modulate", "concat"],
        typer.Option(
            help="Multi-domain: how G reads its target, per-domain norm scale/shift or label maps.",
            rich_help_panel=MODEL,
        ),
    ] = ModelConfig.condition,
    gan_loss: Annotated[
        Literal["lsgan", "vanilla", "hinge"], typer.Option(help="Adversarial loss form.", rich_help_panel=LOSS)
    ] = LossConfig.gan_loss,
    cycle: Annotated[
        float, _train_opt("cycle", help="Spatial cycle weight; 0 = pure Recycle-GAN.", rich_help_panel=LOSS)
    ] = LossConfig.cycle,
    recurrent: Annotated[
        float, _train_opt("recurrent", help="Recurrent (predictor) weight.", rich_help_panel=LOSS)
    ] = LossConfig.recurrent,
    recycle: Annotated[float, _train_opt("recycle", help="Recycle weight.", rich_help_panel=LOSS)] = LossConfig.recycle,
    identity: Annotated[
        Optional[float],
        _train_opt(
            "identity",
            help="Identity weight \\[default: 0.5 x cycle; 1.5 x cycle for whole frames that are not square].",
            rich_help_panel=LOSS,
        ),
    ] = LossConfig.identity,
    similarity: Annotated[
        float, _train_opt("similarity", help="L1 between input and translation.", rich_help_panel=LOSS)
    ] = LossConfig.similarity,
    gp: Annotated[
        float, _train_opt("gp", help="One-sided gradient penalty weight.", rich_help_panel=LOSS)
    ] = LossConfig.gp,
    tv: Annotated[float, _train_opt("tv", help="Total variation weight.", rich_help_panel=LOSS)] = LossConfig.tv,
    feature_match: Annotated[
        float,
        _train_opt(
            "feature_match",
            help="L1 between D's early features (2 blocks) of x and G(x), DIAT; 0 = off.",
            rich_help_panel=LOSS,
        ),
    ] = LossConfig.feature_match,
    content: Annotated[
        float, _train_opt("content", help="|f(x) - f(G(x))| weight, with a --content-model f.", rich_help_panel=LOSS)
    ] = LossConfig.content,
    content_model: Annotated[
        Optional[str], typer.Option(help="TorchScript content network f for both directions.", rich_help_panel=LOSS)
    ] = LossConfig.content_model,
    content_model_a: Annotated[
        Optional[str],
        typer.Option(help="f for A->B only (on a and G_AB(a)); overrides --content-model.", rich_help_panel=LOSS),
    ] = LossConfig.content_model_a,
    content_model_b: Annotated[
        Optional[str],
        typer.Option(help="f for B->A only (on b and G_BA(b)); overrides --content-model.", rich_help_panel=LOSS),
    ] = LossConfig.content_model_b,
    content_size: Annotated[
        Optional[int],
        _train_opt(
            "content_size", help="Input side f expects (px) \\[default: the training size].", rich_help_panel=LOSS
        ),
    ] = LossConfig.content_size,
    content_norm: Annotated[
        Literal["minus1_1", "0_1", "imagenet"], typer.Option(help="Input range f expects.", rich_help_panel=LOSS)
    ] = LossConfig.content_norm,
    warp: Annotated[
        float,
        _train_opt(
            "warp",
            help="Recycle only: warp consistency along the source's flow (not in the paper; 0 = the paper's objective).",
            rich_help_panel=LOSS,
        ),
    ] = LossConfig.warp,
    cls: Annotated[
        float,
        _train_opt(
            "cls", help="Multi-domain: D's domain classification terms (StarGAN's lambda_cls).", rich_help_panel=LOSS
        ),
    ] = LossConfig.cls,
    steps: Annotated[
        int,
        _train_opt("steps", help="Optimisation steps (with --time-limit and no --steps: no cap).", rich_help_panel=RUN),
    ] = TrainConfig.steps,
    time_limit: Annotated[
        Optional[float],
        _train_opt(
            "time_limit",
            help="Wall-clock budget (s): stop and save when spent; the LR decays over it.",
            rich_help_panel=RUN,
        ),
    ] = TrainConfig.time_limit,
    batch_size: Annotated[
        int,
        _train_opt("batch_size", help="Triplets per domain per step (multi-domain: per step).", rich_help_panel=RUN),
    ] = TrainConfig.batch_size,
    lr: Annotated[float, _train_opt("lr", help="Adam learning rate, above 0.", rich_help_panel=RUN)] = TrainConfig.lr,
    beta1: Annotated[
        float, _train_opt("beta1", help="Adam beta1, in [0, 1).", rich_help_panel=RUN)
    ] = TrainConfig.beta1,
    beta2: Annotated[
        float, _train_opt("beta2", help="Adam beta2, in [0, 1).", rich_help_panel=RUN)
    ] = TrainConfig.beta2,
    decay_from: Annotated[
        Optional[int],
        _train_opt("decay_from", help="Step where linear LR decay starts \\[default: steps/2].", rich_help_panel=RUN),
    ] = TrainConfig.decay_from,
    pool: Annotated[
        int, _train_opt("pool", help="Image history pool size; 0 disables.", rich_help_panel=RUN)
    ] = TrainConfig.pool,
    load_size: Annotated[
        Optional[int],
        _train_opt(
            "load_size",
            help="Resize frames to this before the random crop \\[default: size x 1.12].",
            rich_help_panel=RUN,
        ),
    ] = TrainConfig.load_size,
    flip: Annotated[bool, typer.Option(help="Random horizontal flips.", rich_help_panel=RUN)] = TrainConfig.flip,
    seed: Annotated[int, _train_opt("seed", help="Random seed.", rich_help_panel=RUN)] = TrainConfig.seed,
    device: Annotated[
        Literal["auto", "cpu", "cuda", "mps"], typer.Option(help="Device.", rich_help_panel=RUN)
    ] = TrainConfig.device,
    amp: Annotated[
        Literal["auto", "bf16", "fp16", "off"],
        typer.Option(
            help="Mixed precision: auto = bf16 on CUDA (fp16 before Ampere) and on CPUs with native bf16, else off.",
            rich_help_panel=RUN,
        ),
    ] = TrainConfig.amp,
    dist_timeout: Annotated[
        float,
        _train_opt(
            "dist_timeout",
            help="Seconds a collective waits for the slowest rank (torchrun runs) before the run fails.",
            rich_help_panel=RUN,
        ),
    ] = TrainConfig.dist_timeout,
    channels_last: Annotated[
        bool, typer.Option(help="channels_last memory format on CUDA.", rich_help_panel=RUN)
    ] = TrainConfig.channels_last,
    cache: Annotated[
        Literal["memory", "mmap"], typer.Option(help="Frame cache in RAM or a memory-mapped file.", rich_help_panel=RUN)
    ] = TrainConfig.cache,
    resume: Annotated[
        Optional[str],
        typer.Option(
            metavar="RUN",
            help="Continue the run in this folder with its own datasets and options (only run-length and "
            "run-control options may be given).",
            rich_help_panel=RUN,
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Start afresh over an existing run.", rich_help_panel=RUN)
    ] = TrainConfig.overwrite,
    init_from: Annotated[
        Optional[str],
        typer.Option(
            metavar="RUN",
            help="Start from this run's newest networks (same architecture), with a fresh optimiser, LR schedule "
            "and step count.",
            rich_help_panel=RUN,
        ),
    ] = TrainConfig.init_from,
    init_swap: Annotated[
        bool,
        typer.Option(
            "--swap",
            help="With --init-from: start A->B from that run's B->A side (G_AB from its G_BA, D_A from D_B, "
            "P_A from P_B, and the other way).",
            rich_help_panel=RUN,
        ),
    ] = TrainConfig.init_swap,
    checkpoint_every: Annotated[
        int, _train_opt("checkpoint_every", help="Steps between checkpoints.", rich_help_panel=RUN)
    ] = TrainConfig.checkpoint_every,
    keep: Annotated[
        int, _train_opt("keep", help="Older checkpoints kept besides the newest (render --step).", rich_help_panel=RUN)
    ] = TrainConfig.keep,
    preview_every: Annotated[
        int, _train_opt("preview_every", help="Steps between preview grids.", rich_help_panel=RUN)
    ] = TrainConfig.preview_every,
    preview_frames: Annotated[
        int,
        _train_opt(
            "preview_frames",
            help="Frames of A (multi-domain: the first domain) translated to a video at each preview; 0 disables.",
            rich_help_panel=RUN,
        ),
    ] = TrainConfig.preview_frames,
    log_every: Annotated[
        int, _train_opt("log_every", help="Steps between metrics lines.", rich_help_panel=RUN)
    ] = TrainConfig.log_every,
    threads: Annotated[
        Optional[int], _train_opt("threads", help="CPU threads for torch.", rich_help_panel=RUN)
    ] = TrainConfig.threads,
) -> None:
    """Train Recycle-GAN (or CycleGAN) on two datasets, one model over more, or continue a run (--resume RUN)."""
    flags = {**locals(), **_dataset_fields(datasets), "names": _split_names(names)}
    if resume is not None:
        cfg = _run(lambda: _resume_config(ctx, resume, flags))
    else:
        if not datasets:
            raise typer.BadParameter(
                "give the datasets A_DIR and B_DIR (more for a multi-domain run), or --resume RUN to continue a run"
            )
        if len(datasets) < 2:
            _usage_error(f"{datasets[0]}: one dataset is one domain; give at least two (A_DIR B_DIR ...)")
        widths = (ngf, blocks, ndf, npf, p_depth)
        auto = preset is None and size is None and all(w is None for w in widths)  # the run's budget picks them
        try:
            arch = model_preset(
                preset or TrainConfig.preset,
                model=model,
                size=size or ModelConfig.size,
                ngf=ngf,
                blocks=blocks,
                upsample=upsample,
                ndf=ndf,
                npf=npf,
                p_depth=p_depth,
                p_residual=p_residual,
                condition=condition,
            )
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        flags["preset"] = preset or TrainConfig.preset
        if time_limit is not None and not _given(ctx, "steps"):  # a budget and no --steps: the time decides
            flags["steps"] = UNCAPPED_STEPS
        cfg = _config(TrainConfig, flags, model=arch, loss=_config(LossConfig, flags), resume=False, auto=auto)
    try:
        check_train_config(cfg)  # open bounds (0 <= beta < 1, lr > 0) typer cannot express
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    from retarget.train.launch import train as run_train

    result = _run(lambda: run_train(cfg))
    if result.interrupted:  # saved; scripts and schedulers see how it stopped: 130 Ctrl-C, 143 SIGTERM
        raise typer.Exit(128 + (result.signal or signal.SIGINT))


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` was typed on the command line (not its default)."""
    return getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"


def _dataset_fields(datasets: Optional[list[str]]) -> dict[str, Any]:
    """``a_dir``, ``b_dir`` and ``more`` of TrainConfig from the DATASETS arguments."""
    given = list(datasets or [])
    return {
        "a_dir": given[0] if given else None,
        "b_dir": given[1] if len(given) > 1 else None,
        "more": tuple(given[2:]),
    }


def _split_names(text: Optional[str]) -> tuple[str, ...]:
    """``--names a,b,c`` -> ``("a", "b", "c")`` (spaces around the commas dropped); None -> ()."""
    return tuple(n.strip() for n in text.split(",")) if text is not None else ()


def _usage_error(message: str) -> None:
    """One ``error:`` line and exit status 2 (a command line that cannot work)."""
    typer.secho(f"error: {message}", err=True, fg="red")
    raise typer.Exit(2)


def _resume_config(ctx: typer.Context, run_dir: str, flags: dict[str, Any]) -> TrainConfig:
    """The run's own configuration, with the options typed on the command line (refused unless resumable)."""
    from retarget.train.resume import resume_config

    typed = {name: value for name, value in flags.items() if name not in ("ctx", "resume") and _given(ctx, name)}
    if "datasets" in typed:  # the datasets given again must be the run's own
        typed.update({k: v for k, v in _dataset_fields(typed.pop("datasets")).items() if v is not None})
    return resume_config(run_dir, **typed)


@app.command()
def render(
    ctx: typer.Context,
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="VIDEO",
            help="IN OUT: the video to translate and the video to write (.mp4, .mkv or .mov). "
            "With -o DIR: videos, folders of videos or glob patterns, all rendered into DIR.",
        ),
    ],
    out_dir: Annotated[
        Optional[str],
        typer.Option(
            "-o",
            "--out",
            metavar="DIR",
            help="Render every input into this folder, names kept; a second run skips the clips already done.",
        ),
    ] = RenderConfig.out_dir,
    jobs: Annotated[
        int, _render_opt("jobs", help="With -o DIR: clips rendered at once, each in its own process.")
    ] = RenderConfig.jobs,
    engine: Annotated[
        Literal["torch", "onnx"],
        typer.Option(help="Run the generator in torch, or exported to ONNX in onnxruntime (needs retarget[onnx])."),
    ] = RenderConfig.engine,
    model: Annotated[
        Optional[str],
        typer.Option("-m", "--model", help="Run folder or checkpoint \\[default: newest run in ./models]."),
    ] = RenderConfig.model,
    step: Annotated[
        Optional[int], _render_opt("step", help="Use the run's checkpoint of this step \\[default: its newest].")
    ] = RenderConfig.step,
    direction: Annotated[
        Literal["a2b", "b2a"], typer.Option(help="Which way a pair translates (--to names the target instead).")
    ] = RenderConfig.direction,
    to_domain: Annotated[
        Optional[str],
        typer.Option(
            "--to",
            metavar="NAME",
            help="Target domain by name: a multi-domain run's (needed with 3 or more), or a pair's A/B or dataset name.",
        ),
    ] = RenderConfig.to_domain,
    from_domain: Annotated[
        Optional[str],
        typer.Option(
            "--from",
            metavar="NAME",
            help="The input's domain: its training data decide alignment, frame and scale "
            "\\[default: the first domain other than --to].",
        ),
    ] = RenderConfig.from_domain,
    align: Annotated[
        Optional[Literal["none", "face"]],
        typer.Option(help="Alignment mode \\[default: the one the run was trained with]."),
    ] = RenderConfig.align,
    frame: Annotated[
        Optional[Literal["full", "square"]],
        typer.Option(help="With --align none: the whole frame or its centre square \\[default: as the run trained]."),
    ] = RenderConfig.frame,
    scale: Annotated[
        Optional[int],
        _render_opt(
            "scale", help="Short side (px) the generator sees the frame at \\[default: the run's training scale]."
        ),
    ] = RenderConfig.scale,
    tile: Annotated[
        Optional[int],
        _render_opt("tile", help="Translate large frames in overlapping tiles of this side (px), to save memory."),
    ] = RenderConfig.tile,
    upscale: Annotated[
        Literal["bilinear", "detail"],
        typer.Option(help="Back to the source size: bilinear, or with the source's fine detail put back."),
    ] = RenderConfig.upscale,
    output_size: Annotated[
        Literal["source", "model"], typer.Option(help="Write at the source size or the model's size.")
    ] = RenderConfig.output_size,
    face_ref: Annotated[
        Optional[str],
        typer.Option(
            metavar="IMAGE",
            help="Translate only the face of the person in this image; other people's faces stay as they are.",
            rich_help_panel=FACE,
        ),
    ] = RenderConfig.face_ref,
    target_faces: Annotated[
        Optional[str],
        typer.Option(
            metavar="B_FACES",
            help="Swap every face for the person of this face dataset (extract --align face): "
            "their frame of nearest expression, warped to follow the input. No trained run.",
            rich_help_panel=FACE,
        ),
    ] = RenderConfig.target_faces,
    mouth: Annotated[
        Literal["target", "source"],
        typer.Option(
            help="A swap's mouth: the target's own, or the input's mouth interior (teeth, tongue) "
            "inside the target's lips, colour-matched.",
            rich_help_panel=FACE,
        ),
    ] = RenderConfig.mouth,
    refiner: Annotated[
        Optional[str],
        typer.Option(
            metavar="FOLDER",
            help="Clean each swapped face with this refiner (train-refiner on the target's face dataset).",
            rich_help_panel=FACE,
        ),
    ] = RenderConfig.refiner,
    max_faces: Annotated[
        int,
        _render_opt(
            "max_faces",
            help="A swap: faces swapped in each frame at most, each followed on its own (--face-ref: one person's).",
            rich_help_panel=FACE,
        ),
    ] = RenderConfig.max_faces,
    glasses: Annotated[
        Literal["clear", "keep"],
        typer.Option(
            help="A swap: paint the input's glasses (rims, arms) out where the target's face does not cover them.",
            rich_help_panel=FACE,
        ),
    ] = RenderConfig.glasses,
    detail: Annotated[
        Literal["match", "keep"],
        typer.Option(
            help="A swap: sharpen each face to the fine detail of the face it replaces (never softer), or keep the target's.",
            rich_help_panel=FACE,
        ),
    ] = RenderConfig.detail,
    gaze: Annotated[
        Literal["follow", "keep"],
        typer.Option(
            help="A swap: move the target's irises where the input's face looks, or keep where the target looked.",
            rich_help_panel=FACE,
        ),
    ] = RenderConfig.gaze,
    mask: Annotated[
        Literal["hull", "ellipse"], typer.Option(help="Face blend mask.", rich_help_panel=FACE)
    ] = RenderConfig.mask,
    feather: Annotated[
        float, _render_opt("feather", help="Mask feather, as a fraction of the crop side.", rich_help_panel=FACE)
    ] = RenderConfig.feather,
    color_match: Annotated[
        Literal["lab", "hist", "none"],
        typer.Option(
            help="Match the face's colours to the face it replaces: Lab mean and spread, RGB histograms, or not.",
            rich_help_panel=FACE,
        ),
    ] = RenderConfig.color_match,
    blend: Annotated[
        Literal["alpha", "seamless"],
        typer.Option(
            help="Paste along the feathered mask (alpha) or as a Poisson clone (OpenCV seamlessClone).",
            rich_help_panel=FACE,
        ),
    ] = RenderConfig.blend,
    mask_erode: Annotated[
        int, _render_opt("mask_erode", help="Shrink the face mask by this many pixels.", rich_help_panel=FACE)
    ] = RenderConfig.mask_erode,
    mask_dilate: Annotated[
        int, _render_opt("mask_dilate", help="Grow the face mask by this many pixels.", rich_help_panel=FACE)
    ] = RenderConfig.mask_dilate,
    batch_size: Annotated[int, _render_opt("batch_size", help="Frames per generator call.")] = RenderConfig.batch_size,
    crf: Annotated[int, _render_opt("crf", help="H.264 quality (lower is better).")] = RenderConfig.crf,
    side_by_side: Annotated[
        bool, typer.Option(help="Write input and output side by side.")
    ] = RenderConfig.side_by_side,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = RenderConfig.overwrite,
    device: Annotated[Literal["auto", "cpu", "cuda", "mps"], typer.Option(help="Device.")] = RenderConfig.device,
    amp: Annotated[
        Literal["auto", "bf16", "fp16", "off"],
        typer.Option(help="Mixed precision: auto = bf16 on CUDA (fp16 before Ampere) and on CPUs with native bf16."),
    ] = RenderConfig.amp,
    stabilize: Annotated[
        float,
        _render_opt(
            "stabilize",
            help="Temporal smoothing along the source's motion: 0 = off, 1 = full (see docs/render.md).",
        ),
    ] = RenderConfig.stabilize,
    degrid: Annotated[
        Optional[bool],
        typer.Option(
            help="Filter the checkerboard of transposed convolutions out of the generator's output "
            "\\[default: on for whole frames of runs trained with --upsample transpose].",
        ),
    ] = RenderConfig.degrid,
    start: Annotated[
        Optional[float],
        _render_opt("start", help="Translate from this second on; earlier frames are copied unchanged."),
    ] = RenderConfig.start,
    enhancer: Annotated[
        Optional[str],
        typer.Option(
            metavar="FOLDER",
            help="Sharpen each translated face with this enhancer (train-enhancer) before the paste.",
            rich_help_panel=FACE,
        ),
    ] = RenderConfig.enhancer,
    enhancer_blur: Annotated[
        float,
        _render_opt(
            "enhancer_blur",
            help="Blur (sigma, model px) of each face before the enhancer, against checkerboard patterns.",
            rich_help_panel=FACE,
        ),
    ] = RenderConfig.enhancer_blur,
    end: Annotated[
        Optional[float],
        _render_opt("end", help="Translate up to this second; later frames are copied unchanged."),
    ] = RenderConfig.end,
) -> None:
    """Translate a video with a trained run (or swap its faces: --target-faces), paste faces back, keep the audio.

    With -o DIR, render many videos into DIR: an interrupted batch goes on where it stopped.
    """
    if _given(ctx, "direction") and to_domain is not None:
        _usage_error(f"--direction {direction} --to {to_domain}: both pick the target; give one of them")
    if out_dir is None:
        if len(paths) != 2:
            _usage_error(f"render {' '.join(paths)}: give IN OUT, or several inputs with -o DIR")
        cfg = _config(RenderConfig, locals(), input=paths[0], output=paths[1])
        from retarget.render.render import render as run_render

        _run(lambda: run_render(cfg))
        return
    cfg = _config(RenderConfig, locals(), input="", output="")
    from retarget.render.batch import render_many

    def batch() -> None:
        failed = render_many(cfg, paths).failed
        if failed:
            raise RetargetError(f"{len(failed)} of the clips failed to render (see the table)")

    _run(batch)


@app.command()
def export(
    ctx: typer.Context,
    model: Annotated[
        Optional[str], typer.Argument(metavar="RUN", help="Run folder or checkpoint \\[default: newest in ./models].")
    ] = ExportConfig.model,
    output: Annotated[str, typer.Option("-o", "--output", help="The .onnx file to write.")] = "",
    step: Annotated[
        Optional[int], _export_opt("step", help="Use the run's checkpoint of this step \\[default: its newest].")
    ] = ExportConfig.step,
    direction: Annotated[
        Literal["a2b", "b2a"], typer.Option(help="Which way a pair translates (--to names the target instead).")
    ] = ExportConfig.direction,
    to_domain: Annotated[
        Optional[str],
        typer.Option("--to", metavar="NAME", help="Target domain by name (needed for a run of 3 or more domains)."),
    ] = ExportConfig.to_domain,
    from_domain: Annotated[
        Optional[str],
        typer.Option("--from", metavar="NAME", help="The input's domain, whose data the file's metadata describe."),
    ] = ExportConfig.from_domain,
    opset: Annotated[int, _export_opt("opset", help="ONNX opset version.")] = ExportConfig.opset,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file.")] = ExportConfig.overwrite,
) -> None:
    """Write a run's translator as an ONNX file (dynamic height and width), for onnxruntime and other runtimes."""
    if _given(ctx, "direction") and to_domain is not None:
        _usage_error(f"--direction {direction} --to {to_domain}: both pick the target; give one of them")
    if not output:
        _usage_error("export: give the file to write with -o FILE.onnx")
    cfg = _config(ExportConfig, locals())
    from retarget.render.export import export_run

    _run(lambda: export_run(cfg))


# Longer than 60 lines on purpose: one Typer parameter per option.
@app.command("train-enhancer")
def train_enhancer(
    data: Annotated[
        str, typer.Argument(help="Face dataset of the target person, extracted at --scale x the face model's size.")
    ],
    out: Annotated[
        Optional[str],
        typer.Option("-o", "--out", help="Enhancer folder \\[default: models/enhancer_<dataset name>]."),
    ] = EnhancerConfig.out,
    scale: Annotated[int, _enh_opt("scale", help="Output side per input side: 2, 4 or 8.")] = EnhancerConfig.scale,
    width: Annotated[int, _enh_opt("width", help="Channels of the network.")] = EnhancerConfig.width,
    blocks: Annotated[int, _enh_opt("blocks", help="Residual blocks.")] = EnhancerConfig.blocks,
    steps: Annotated[int, _enh_opt("steps", help="Optimisation steps at most.")] = EnhancerConfig.steps,
    time_limit: Annotated[
        Optional[float], _enh_opt("time_limit", help="Stop after this many seconds of training.")
    ] = EnhancerConfig.time_limit,
    batch_size: Annotated[int, _enh_opt("batch_size", help="Patches per step.")] = EnhancerConfig.batch_size,
    patch: Annotated[int, _enh_opt("patch", help="Patch side at the output size (px).")] = EnhancerConfig.patch,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = EnhancerConfig.lr,
    blur: Annotated[
        float, _enh_opt("blur", help="Largest blur (sigma, input px) of the training inputs.")
    ] = EnhancerConfig.blur,
    noise: Annotated[float, _enh_opt("noise", help="Largest noise std of the training inputs.")] = EnhancerConfig.noise,
    max_frames: Annotated[
        int, _enh_opt("max_frames", help="Frames kept in memory (evenly spaced).")
    ] = EnhancerConfig.max_frames,
    seed: Annotated[int, _enh_opt("seed", help="Random seed.")] = EnhancerConfig.seed,
    threads: Annotated[Optional[int], _enh_opt("threads", help="Torch threads.")] = EnhancerConfig.threads,
    device: Annotated[Literal["auto", "cpu", "cuda", "mps"], typer.Option(help="Device.")] = EnhancerConfig.device,
    amp: Annotated[
        Literal["auto", "bf16", "fp16", "off"], typer.Option(help="Mixed precision, as for train.")
    ] = EnhancerConfig.amp,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing enhancer folder.")] = EnhancerConfig.overwrite,
) -> None:
    """Learn a face enhancer from the target person's frames: render --enhancer sharpens the pasted faces with it."""
    cfg = _config(EnhancerConfig, locals())
    from retarget.train.enhancer import train_enhancer as run_train

    _run(lambda: run_train(cfg))


# Longer than 60 lines on purpose: one Typer parameter per option.
@app.command("train-refiner")
def train_refiner(
    data: Annotated[str, typer.Argument(help="Face dataset of the target person: the one render --target-faces uses.")],
    out: Annotated[
        Optional[str],
        typer.Option("-o", "--out", help="Refiner folder \\[default: models/refiner_<dataset name>]."),
    ] = RefinerConfig.out,
    exclude: Annotated[
        int, _ref_opt("exclude", help="Frames either side of a training frame that may not be its input.")
    ] = RefinerConfig.exclude,
    factor: Annotated[int, _ref_opt("factor", help="The network works at 1/factor of the crop side.")] = (
        RefinerConfig.factor
    ),
    smooth: Annotated[
        bool, typer.Option(help="Correct at 1/factor only: the face's fine detail passes unchanged (sharper).")
    ] = RefinerConfig.smooth,
    width: Annotated[int, _ref_opt("width", help="Channels of the network.")] = RefinerConfig.width,
    blocks: Annotated[int, _ref_opt("blocks", help="Residual blocks.")] = RefinerConfig.blocks,
    steps: Annotated[int, _ref_opt("steps", help="Optimisation steps at most.")] = RefinerConfig.steps,
    time_limit: Annotated[
        Optional[float], _ref_opt("time_limit", help="Stop after this many seconds of training.")
    ] = RefinerConfig.time_limit,
    batch_size: Annotated[int, _ref_opt("batch_size", help="Patches per step.")] = RefinerConfig.batch_size,
    patch: Annotated[int, _ref_opt("patch", help="Patch side (px).")] = RefinerConfig.patch,
    lr: Annotated[float, _ref_opt("lr", help="Adam learning rate.")] = RefinerConfig.lr,
    max_frames: Annotated[
        int, _ref_opt("max_frames", help="Faces turned into training pairs (evenly spaced).")
    ] = RefinerConfig.max_frames,
    holdout: Annotated[
        float, _ref_opt("holdout", help="Share of the faces (the last) kept out of training to score it.")
    ] = RefinerConfig.holdout,
    seed: Annotated[int, _ref_opt("seed", help="Random seed.")] = RefinerConfig.seed,
    threads: Annotated[Optional[int], _ref_opt("threads", help="Torch threads.")] = RefinerConfig.threads,
    device: Annotated[Literal["auto", "cpu", "cuda", "mps"], typer.Option(help="Device.")] = RefinerConfig.device,
    amp: Annotated[
        Literal["auto", "bf16", "fp16", "off"], typer.Option(help="Mixed precision, as for train.")
    ] = RefinerConfig.amp,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing refiner folder.")] = RefinerConfig.overwrite,
) -> None:
    """Learn a swap refiner from the target person's own video: render --target-faces B --refiner R cleans each face."""
    cfg = _config(RefinerConfig, locals())
    from retarget.train.refiner import train_refiner as run_train

    _run(lambda: run_train(cfg))


@app.command("eval")
def eval_(
    output: Annotated[str, typer.Argument(help="The translated video to judge.")],
    source: Annotated[
        Optional[str], typer.Option(help="The video it was translated from (warping error, faces).")
    ] = EvalConfig.source,
    truth: Annotated[
        Optional[str], typer.Option(help="Its ground-truth translation (PSNR, SSIM, flicker).")
    ] = EvalConfig.truth,
    faces: Annotated[
        bool, typer.Option("--faces", help="Face scores: landmark error, mouth and eye movement, sharpness.")
    ] = EvalConfig.faces,
    target: Annotated[
        Optional[str],
        typer.Option(help="The target person (dataset folder or video): identity of the output faces, with --faces."),
    ] = EvalConfig.target,
    face_backend: Annotated[
        Literal["dlib", "fan"], typer.Option(help="Face landmark backend for --faces.")
    ] = EvalConfig.face_backend,
    flow: Annotated[
        Literal["ultrafast", "fast", "medium"], typer.Option(help="Optical-flow (DIS) preset on the source.")
    ] = EvalConfig.flow,
    cut_threshold: Annotated[
        float, _eval_opt("cut_threshold", help="Source scene-cut threshold; pairs across a cut are left out.")
    ] = EvalConfig.cut_threshold,
    json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = EvalConfig.json,
    per_frame: Annotated[
        bool, typer.Option("--per-frame", help="Add per-frame values to the JSON.")
    ] = EvalConfig.per_frame,
) -> None:
    """Score a translated video: temporal consistency, fidelity to a truth, faces."""
    cfg = _config(EvalConfig, locals())
    from retarget.eval.evaluate import evaluate, print_result
    from retarget.options import check_effects

    _run(lambda: check_effects(cfg))  # --per-frame without --json, --face-backend without --faces
    result = _run(lambda: evaluate(cfg))
    if cfg.json:
        typer.echo(result.to_json())
    else:
        print_result(result)


@app.command()
def demo(
    out: Annotated[str, typer.Option("-o", "--out", help="Folder for everything the demo writes.")] = DemoConfig.out,
    seed: Annotated[int, _demo_opt("seed", help="Seed of the synthetic domains and the training.")] = DemoConfig.seed,
    steps: Annotated[int, _demo_opt("steps", help="Training steps.")] = DemoConfig.steps,
    size: Annotated[int, _demo_opt("size", help="Frame size of the synthetic domains (px).")] = DemoConfig.size,
) -> None:
    """Make two synthetic video domains, then extract, train and render on them."""
    cfg = _config(DemoConfig, locals())
    from retarget.demo.demo import demo as run_demo

    _run(lambda: run_demo(cfg))


@app.command()
def runs(
    folder: Annotated[str, typer.Argument(help="Folder to search for run folders.")] = "models",
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
) -> None:
    """List the training runs under FOLDER: progress, last losses, age, resumable or not."""
    from retarget.views.runs import list_runs, table_rows

    if not folder.strip():
        _usage_error("FOLDER: empty; give the folder to search for runs (default: models)")
    rows = _run(lambda: list_runs(folder))
    if json_out:
        import json

        typer.echo(json.dumps([r.to_json() for r in rows], indent=2))
        return
    if not rows:
        typer.echo(f"no runs under {folder}")
        return
    head, cells = table_rows(rows)
    widths = [max(len(c) for c in col) for col in zip(head, *cells)]
    for line in [head, *cells]:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())


@app.command()
def ui(
    root: Annotated[str, typer.Option(help="The folder the app browses and writes in.")] = ".",
    host: Annotated[
        str, typer.Option(help="Address to listen on; 127.0.0.1 keeps the app on this machine.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 7860,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Do not open the page in a browser.")] = False,
) -> None:
    """Open the whole workflow (data, training, rendering, runs) in a local app page (needs the ui extra)."""
    from retarget.ui import require_gradio

    _run(require_gradio)
    from retarget.ui.app import serve

    _run(lambda: serve(root, host=host, port=port, browser=not no_browser))


def main(argv: Optional[list[str]] = None) -> None:
    """Console-script entry point: every error is one ``error:`` line and a non-zero exit.

    A command line that cannot work (an unknown option, a value of the wrong type or out
    of range) is one line and exit 2, with the command's ``--help`` named; whatever fails
    outside a command's library call is one line too (:func:`_unexpected`).
    """
    # click's exception base, whether typer brings click or a copy of its own
    usage = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    args = argv if argv is not None else sys.argv[1:]
    try:
        status = app(args=args, prog_name="retarget", standalone_mode=False)
    except usage as exc:  # usage errors: BadParameter, NoSuchOption, MissingParameter...
        where = (
            f"retarget {exc.ctx.info_name} --help"
            if getattr(exc, "ctx", None) and exc.ctx.parent
            else "retarget --help"
        )
        message = " ".join(exc.format_message().split())
        typer.secho(f"error: {message} (see {where})", err=True, fg="red")
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.secho("aborted", err=True, fg="yellow")
        sys.exit(1)
    except Exception as exc:
        if os.environ.get("RETARGET_DEBUG"):
            raise
        sys.exit(_unexpected(exc))
    sys.exit(status if isinstance(status, int) else 0)
