"""The ``retarget`` command line: parse flags, build a config, call one library function.

Nothing here does work of its own. Each flag is a field of a config in
:mod:`retarget.config`; library errors (:class:`~retarget.errors.RetargetError`)
become one line on stderr and a non-zero exit. Heavy imports (torch, av, cv2) happen
inside the commands so ``retarget --help`` and ``--version`` answer at once.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Callable, Literal, Optional, TypeVar

import typer

from retarget import __version__
from retarget.config import (
    DemoConfig,
    ExtractConfig,
    FaceConfig,
    LossConfig,
    RenderConfig,
    TrainConfig,
    model_preset,
)
from retarget.errors import RetargetError

R = TypeVar("R")

# OpenMP threads that spin while waiting make torch many times slower whenever
# another process shares the cores (measured: 25.8 s -> 5.6 s per official step on
# a loaded 2-core machine). Set before torch is first imported; users may override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
    """Call a library function; turn user-facing errors and Ctrl-C into clean exits."""
    try:
        return fn()
    except RetargetError as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True, fg="yellow")
        raise typer.Exit(130) from None


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


@app.command()
def extract(
    videos: Annotated[list[str], typer.Argument(help="Video files of one domain, decoded in order.")],
    output: Annotated[
        Optional[str], typer.Option("-o", "--output", help="Dataset folder \\[default: data/<first video's name>].")
    ] = None,
    size: Annotated[int, typer.Option(min=16, help="Side of the square output frames (px).")] = 256,
    format: Annotated[Literal["png", "jpg"], typer.Option(help="Image format of the frames.")] = "png",
    quality: Annotated[int, typer.Option(min=1, max=100, help="JPEG quality (with --format jpg).")] = 95,
    fps: Annotated[Optional[float], typer.Option(min=0.01, help="Resample to this frame rate by timestamp.")] = None,
    every: Annotated[int, typer.Option(min=1, help="Keep every N-th frame.")] = 1,
    start: Annotated[Optional[float], typer.Option(min=0, help="Start at this second.")] = None,
    end: Annotated[Optional[float], typer.Option(min=0, help="Stop at this second.")] = None,
    max_frames: Annotated[Optional[int], typer.Option(min=1, help="At most this many frames per video.")] = None,
    align: Annotated[
        Literal["none", "face"], typer.Option(help="none: resize and centre-crop; face: align on the face.")
    ] = "none",
    crop: Annotated[Optional[str], typer.Option(help="Source region x,y,w,h to use with --align none.")] = None,
    backend: Annotated[Literal["dlib", "fan"], typer.Option(help="Face landmark backend.", rich_help_panel=FACE)] = "dlib",
    margin: Annotated[
        float, typer.Option(min=0, help="Border around the face, as a fraction of its size.", rich_help_panel=FACE)
    ] = 0.4,
    smooth: Annotated[
        float, typer.Option(min=0, help="Temporal smoothing strength; 0 disables.", rich_help_panel=FACE)
    ] = 1.0,
    face: Annotated[
        Literal["tracked", "largest"],
        typer.Option(help="With several faces: the tracked one or the largest.", rich_help_panel=FACE),
    ] = "tracked",
    detect_every: Annotated[
        int, typer.Option(min=1, help="Run the detector every N frames, track in between.", rich_help_panel=FACE)
    ] = 5,
    detect_size: Annotated[
        int, typer.Option(min=64, help="Longest side of the frame the detector sees (px).", rich_help_panel=FACE)
    ] = 480,
    cut_threshold: Annotated[
        float, typer.Option(min=0, max=1, help="Histogram distance that counts as a scene cut.")
    ] = 0.5,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    append: Annotated[bool, typer.Option(help="Add to an existing dataset.")] = False,
    workers: Annotated[int, typer.Option(min=1, help="Threads writing images.")] = 4,
) -> None:
    """Decode videos (and for faces: detect, align, smooth) into a frame dataset."""
    cfg = ExtractConfig(
        videos=tuple(videos),
        output=output,
        size=size,
        format=format,
        quality=quality,
        fps=fps,
        every=every,
        start=start,
        end=end,
        max_frames=max_frames,
        align=align,
        crop=_crop(crop),
        face=FaceConfig(
            backend=backend, margin=margin, smooth=smooth, pick=face, detect_every=detect_every, detect_size=detect_size
        ),
        cut_threshold=cut_threshold,
        overwrite=overwrite,
        append=append,
        workers=workers,
    )
    from retarget.dataset.extract import extract as run_extract

    _run(lambda: run_extract(cfg))


@app.command()
def train(
    a_dir: Annotated[str, typer.Argument(help="Dataset of domain A (extract output or a folder of images).")],
    b_dir: Annotated[str, typer.Argument(help="Dataset of domain B.")],
    out: Annotated[Optional[str], typer.Option("-o", "--out", help="Run folder \\[default: models/<A>-to-<B>].")] = None,
    model: Annotated[Literal["recycle", "cyclegan"], typer.Option(help="Recycle-GAN or plain CycleGAN.")] = "recycle",
    preset: Annotated[
        Literal["default", "official", "tiny"],
        typer.Option(help="Architecture preset; the options below override it.", rich_help_panel=MODEL),
    ] = "default",
    size: Annotated[int, typer.Option(min=16, help="Training resolution (px).", rich_help_panel=MODEL)] = 128,
    ngf: Annotated[Optional[int], typer.Option(min=1, help="Generator width.", rich_help_panel=MODEL)] = None,
    blocks: Annotated[Optional[int], typer.Option(min=1, help="Residual blocks per generator.", rich_help_panel=MODEL)] = None,
    ndf: Annotated[Optional[int], typer.Option(min=1, help="Discriminator width.", rich_help_panel=MODEL)] = None,
    npf: Annotated[Optional[int], typer.Option(min=1, help="Predictor U-Net width.", rich_help_panel=MODEL)] = None,
    p_depth: Annotated[Optional[int], typer.Option(min=1, help="Predictor U-Net depth.", rich_help_panel=MODEL)] = None,
    p_residual: Annotated[
        Optional[bool],
        typer.Option(
            help="Predictor = last frame + U-Net residual, starting as a copy \\[default: from the preset].",
            rich_help_panel=MODEL,
        ),
    ] = None,
    gan_loss: Annotated[
        Literal["lsgan", "vanilla", "hinge"], typer.Option(help="Adversarial loss form.", rich_help_panel=LOSS)
    ] = "lsgan",
    cycle: Annotated[float, typer.Option(min=0, help="Spatial cycle weight; 0 = pure Recycle-GAN.", rich_help_panel=LOSS)] = 10.0,
    recurrent: Annotated[float, typer.Option(min=0, help="Recurrent (predictor) weight.", rich_help_panel=LOSS)] = 10.0,
    recycle: Annotated[float, typer.Option(min=0, help="Recycle weight.", rich_help_panel=LOSS)] = 10.0,
    identity: Annotated[
        Optional[float],
        typer.Option(min=0, help="Identity weight \\[default: 0 for recycle, 0.5 x cycle for cyclegan].", rich_help_panel=LOSS),
    ] = None,
    similarity: Annotated[float, typer.Option(min=0, help="L1 between input and translation.", rich_help_panel=LOSS)] = 0.0,
    gp: Annotated[float, typer.Option(min=0, help="One-sided gradient penalty weight.", rich_help_panel=LOSS)] = 0.0,
    tv: Annotated[float, typer.Option(min=0, help="Total variation weight.", rich_help_panel=LOSS)] = 0.0,
    warp: Annotated[
        float,
        typer.Option(min=0, help="Recycle only: warp consistency along the source's flow (not in the paper).", rich_help_panel=LOSS),
    ] = 0.0,
    steps: Annotated[int, typer.Option(min=1, help="Optimisation steps.", rich_help_panel=RUN)] = 10000,
    batch_size: Annotated[int, typer.Option(min=1, help="Triplets per domain per step.", rich_help_panel=RUN)] = 1,
    lr: Annotated[float, typer.Option(min=0, help="Adam learning rate.", rich_help_panel=RUN)] = 2e-4,
    beta1: Annotated[float, typer.Option(min=0, max=1, help="Adam beta1.", rich_help_panel=RUN)] = 0.5,
    beta2: Annotated[float, typer.Option(min=0, max=1, help="Adam beta2.", rich_help_panel=RUN)] = 0.999,
    decay_from: Annotated[
        Optional[int], typer.Option(min=0, help="Step where linear LR decay starts \\[default: steps/2].", rich_help_panel=RUN)
    ] = None,
    pool: Annotated[int, typer.Option(min=0, help="Image history pool size; 0 disables.", rich_help_panel=RUN)] = 50,
    load_size: Annotated[
        Optional[int],
        typer.Option(min=16, help="Resize frames to this before the random crop \\[default: size x 1.12].", rich_help_panel=RUN),
    ] = None,
    flip: Annotated[bool, typer.Option(help="Random horizontal flips.", rich_help_panel=RUN)] = True,
    seed: Annotated[int, typer.Option(help="Random seed.", rich_help_panel=RUN)] = 0,
    device: Annotated[Literal["auto", "cpu", "cuda", "mps"], typer.Option(help="Device.", rich_help_panel=RUN)] = "auto",
    amp: Annotated[Literal["bf16", "fp16", "off"], typer.Option(help="Mixed precision on CUDA.", rich_help_panel=RUN)] = "bf16",
    channels_last: Annotated[bool, typer.Option(help="channels_last memory format on CUDA.", rich_help_panel=RUN)] = True,
    cache: Annotated[
        Literal["memory", "mmap"], typer.Option(help="Frame cache in RAM or a memory-mapped file.", rich_help_panel=RUN)
    ] = "memory",
    resume: Annotated[bool, typer.Option(help="Continue the run in --out.", rich_help_panel=RUN)] = False,
    overwrite: Annotated[bool, typer.Option(help="Start afresh over an existing run.", rich_help_panel=RUN)] = False,
    checkpoint_every: Annotated[int, typer.Option(min=1, help="Steps between checkpoints.", rich_help_panel=RUN)] = 1000,
    preview_every: Annotated[int, typer.Option(min=1, help="Steps between preview grids.", rich_help_panel=RUN)] = 500,
    log_every: Annotated[int, typer.Option(min=1, help="Steps between metrics lines.", rich_help_panel=RUN)] = 10,
    threads: Annotated[Optional[int], typer.Option(min=1, help="CPU threads for torch.", rich_help_panel=RUN)] = None,
) -> None:
    """Train Recycle-GAN (or CycleGAN) between two sequence datasets."""
    try:
        arch = model_preset(
            preset, model=model, size=size, ngf=ngf, blocks=blocks, ndf=ndf, npf=npf, p_depth=p_depth, p_residual=p_residual
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    cfg = TrainConfig(
        a_dir=a_dir,
        b_dir=b_dir,
        out=out,
        preset=preset,
        model=arch,
        loss=LossConfig(
            gan_loss=gan_loss,
            cycle=cycle,
            recurrent=recurrent,
            recycle=recycle,
            identity=identity,
            similarity=similarity,
            gp=gp,
            tv=tv,
            warp=warp,
        ),
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        beta1=beta1,
        beta2=beta2,
        decay_from=decay_from,
        pool=pool,
        load_size=load_size,
        flip=flip,
        seed=seed,
        device=device,
        amp=amp,
        channels_last=channels_last,
        cache=cache,
        resume=resume,
        overwrite=overwrite,
        checkpoint_every=checkpoint_every,
        preview_every=preview_every,
        log_every=log_every,
        threads=threads,
    )
    from retarget.train.trainer import train as run_train

    _run(lambda: run_train(cfg))


@app.command()
def render(
    input: Annotated[str, typer.Argument(help="Video to translate.")],
    output: Annotated[str, typer.Argument(help="Video to write (.mp4, .mkv or .mov).")],
    model: Annotated[
        Optional[str], typer.Option("-m", "--model", help="Run folder or checkpoint \\[default: newest run in ./models].")
    ] = None,
    direction: Annotated[Literal["a2b", "b2a"], typer.Option(help="Which way to translate.")] = "a2b",
    align: Annotated[
        Optional[Literal["none", "face"]], typer.Option(help="Alignment mode \\[default: the one the run was trained with].")
    ] = None,
    output_size: Annotated[
        Literal["source", "model"], typer.Option(help="Write at the source size or the model's size.")
    ] = "source",
    mask: Annotated[Literal["hull", "ellipse"], typer.Option(help="Face blend mask.", rich_help_panel=FACE)] = "hull",
    feather: Annotated[
        float, typer.Option(min=0, max=0.5, help="Mask feather, as a fraction of the crop side.", rich_help_panel=FACE)
    ] = 0.08,
    color_match: Annotated[
        Literal["lab", "none"], typer.Option(help="Match the face's colour to its surroundings.", rich_help_panel=FACE)
    ] = "lab",
    batch_size: Annotated[int, typer.Option(min=1, help="Frames per generator call.")] = 8,
    crf: Annotated[int, typer.Option(min=0, max=51, help="H.264 quality (lower is better).")] = 18,
    side_by_side: Annotated[bool, typer.Option(help="Write input and output side by side.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    device: Annotated[Literal["auto", "cpu", "cuda", "mps"], typer.Option(help="Device.")] = "auto",
    amp: Annotated[Literal["bf16", "fp16", "off"], typer.Option(help="Mixed precision on CUDA.")] = "off",
) -> None:
    """Translate a video with a trained run, paste faces back and keep the audio."""
    cfg = RenderConfig(
        input=input,
        output=output,
        model=model,
        direction=direction,
        align=align,
        output_size=output_size,
        mask=mask,
        feather=feather,
        color_match=color_match,
        batch_size=batch_size,
        crf=crf,
        side_by_side=side_by_side,
        overwrite=overwrite,
        device=device,
        amp=amp,
    )
    from retarget.render.render import render as run_render

    _run(lambda: run_render(cfg))


@app.command()
def demo(
    out: Annotated[str, typer.Option("-o", "--out", help="Folder for everything the demo writes.")] = "demo_out",
    seed: Annotated[int, typer.Option(help="Seed of the synthetic domains and the training.")] = 0,
    steps: Annotated[int, typer.Option(min=1, help="Training steps.")] = DemoConfig.steps,
    size: Annotated[int, typer.Option(min=32, help="Frame size of the synthetic domains (px).")] = DemoConfig.size,
) -> None:
    """Make two synthetic video domains, then extract, train and render on them."""
    cfg = DemoConfig(out=out, seed=seed, steps=steps, size=size)
    from retarget.demo.demo import demo as run_demo

    _run(lambda: run_demo(cfg))


def main(argv: Optional[list[str]] = None) -> None:
    """Console-script entry point."""
    app(args=argv if argv is not None else sys.argv[1:], prog_name="retarget")
