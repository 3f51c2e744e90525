"""What the app's buttons do: plain functions over the library, tested without a browser.

Each takes the :class:`~retarget.ui.paths.Root` and the values of the page's controls, confines
every path to the root, builds the same config the CLI would and calls the same library
function (training: the ``retarget train`` command in its own process, :mod:`retarget.ui.jobs`).
A user error is the library's :class:`~retarget.errors.RetargetError`, one line, raised before
anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from retarget.config import ExtractConfig, LossConfig, RenderConfig, TrainConfig, check_train_config, model_preset
from retarget.errors import RetargetError
from retarget.outputs import check_distinct, check_output
from retarget.ui import jobs
from retarget.ui.paths import Root
from retarget.ui.views import load_dataset

Report = Callable[[float, str], None]


def _no_report(fraction: float, what: str) -> None:
    """A progress report that goes nowhere."""


def _positive(value: Optional[float], what: str) -> Optional[float]:
    """``value`` when set and above 0; None when unset or 0 (the page's "no limit")."""
    if value is None or value == 0:
        return None
    if value < 0:
        raise RetargetError(f"{what} {value:g}: must be above 0 (or 0 for none)")
    return value


# --- Data ------------------------------------------------------------------------------


def default_dataset(video: str) -> str:
    """The dataset a video extracts to by default: ``data/<video's stem>``."""
    return f"data/{Path(video).stem}"


def extract_videos(
    root: Root,
    videos: Sequence[str],
    output: str,
    *,
    size: int = 256,
    align: str = "none",
    frame: str = "full",
    fps: Optional[float] = None,
    max_frames: Optional[int] = None,
    overwrite: bool = False,
    report: Report = _no_report,
) -> Path:
    """Extract ``videos`` into the dataset ``output`` (paths under the root); return the dataset folder.

    The same as ``retarget extract VIDEOS -o OUTPUT --size --align --frame --fps --max-frames``.
    """
    from retarget.dataset.extract import extract
    from retarget.ui.progress import follow

    if not videos:
        raise RetargetError("videos: pick at least one video")
    paths = [str(root.inside(v, "video")) for v in videos]
    out = root.inside(output or default_dataset(videos[0]), "dataset")
    cfg = ExtractConfig(
        videos=tuple(paths),
        output=str(out),
        size=int(size),
        align=align,  # type: ignore[arg-type]
        frame=frame if align == "none" else "full",  # type: ignore[arg-type]
        fps=_positive(fps, "fps"),
        max_frames=int(max_frames) if max_frames else None,
        overwrite=overwrite,
    )
    follow(lambda: extract(cfg), report)
    return out


def save_upload(root: Root, upload: str, folder: str = "videos") -> str:
    """Copy an uploaded file (gradio's temporary copy) to ``folder/<its name>`` under the root; return it.

    Raises:
        RetargetError: a file of that name exists there already, or it is not a video.
    """
    import shutil

    from retarget.atomic import atomic_file
    from retarget.outputs import VIDEO_SUFFIXES

    name = Path(upload).name
    if Path(name).suffix.lower() not in VIDEO_SUFFIXES:
        raise RetargetError(f"{name}: not a video file ({', '.join(VIDEO_SUFFIXES)})")
    target = root.inside(f"{folder}/{name}", "upload")
    if target.exists():
        raise RetargetError(f"{root.rel(target)}: already exists; rename the file or pick it from the list")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(target) as tmp:
        shutil.copyfile(upload, tmp)
    return root.rel(target)


# --- Train -----------------------------------------------------------------------------


def default_run(datasets: Sequence[str]) -> str:
    """The run folder a training writes by default: ``models/<A>-to-<B>``, ``models/<n1>-<n2>-...``."""
    names = [Path(d).name for d in datasets]
    return "models/" + ("-to-".join(names) if len(names) == 2 else "-".join(names))


@dataclass(frozen=True)
class TrainForm:
    """The Train page's options."""

    datasets: tuple[str, ...]
    out: str = ""  # run folder; "" = default_run(datasets)
    preset: str = "auto"  # auto: preset and size picked for the device and time limit (retarget train without both)
    size: int = 128  # not with auto
    steps: int = 10000
    time_limit: Optional[float] = None  # seconds; None or 0 = steps only
    preview_every: int = 500
    checkpoint_every: int = 1000
    overwrite: bool = False


def _train_args(root: Root, form: TrainForm, init_from: Optional[Path]) -> tuple[Path, list[str]]:
    """Check the form as ``retarget train`` would; the run folder and the command's arguments."""
    if len(form.datasets) < 2:
        raise RetargetError("datasets: pick at least two (one per domain)")
    data = [root.inside(d, "dataset") for d in form.datasets]
    for d in data:
        load_dataset(d)  # a missing or unreadable dataset: its one line, now
    check_distinct(data)
    out = root.inside(form.out or default_run(form.datasets), "run folder")
    limit = _positive(form.time_limit, "time limit")
    try:
        auto = form.preset == "auto"
        preset = "default" if auto else form.preset
        arch = model_preset(preset, size=int(form.size))  # type: ignore[arg-type]
        cfg = TrainConfig(
            a_dir=str(data[0]),
            b_dir=str(data[1]),
            more=tuple(str(d) for d in data[2:]),
            out=str(out),
            preset=preset,  # type: ignore[arg-type]
            model=arch,
            auto=auto,
            loss=LossConfig(),
            steps=int(form.steps),
            time_limit=limit,
            preview_every=int(form.preview_every),
            checkpoint_every=int(form.checkpoint_every),
            overwrite=form.overwrite,
            init_from=str(init_from) if init_from else None,
        )
        check_train_config(cfg)
    except ValueError as exc:
        raise RetargetError(str(exc)) from None
    check_output(out, kind="run", inputs=[*data, init_from], overwrite=form.overwrite, command="train")
    args = ["train", *map(str, data), "--out", str(out)]
    args += [] if auto else ["--preset", form.preset, "--size", str(int(form.size))]
    args += ["--steps", str(int(form.steps)), "--preview-every", str(int(form.preview_every))]
    args += ["--checkpoint-every", str(int(form.checkpoint_every))]
    args += ["--time-limit", f"{limit:g}"] if limit else []
    args += ["--overwrite"] if form.overwrite else []
    args += ["--init-from", str(init_from)] if init_from else []
    return out, args


def start_training(root: Root, form: TrainForm, init_from: Optional[str] = None) -> jobs.Job:
    """Start ``retarget train`` with the form's options in its own process; return its job.

    ``init_from``: a run under the root to start from (``--init-from RUN``).
    """
    start = root.inside(init_from, "run") if init_from else None
    out, args = _train_args(root, form, start)
    return jobs.start(root.app_dir, out, args, root.path)


def resume_training(root: Root, run: str) -> jobs.Job:
    """``retarget train --resume RUN`` in its own process; return its job.

    Raises:
        RetargetError: the run cannot be resumed (no complete checkpoint, damaged), or it is training.
    """
    from retarget.views.runs import describe_run

    folder = root.inside(run, "run")
    row = describe_run(folder)
    if not row.resumable:
        why = row.problem or "it has no complete checkpoint yet"
        raise RetargetError(f"{run}: cannot resume: {why}")
    if row.state == "finished":
        raise RetargetError(f"{run}: finished all its {row.steps_planned} steps; start a new run from it instead")
    return jobs.start(root.app_dir, folder, ["train", "--resume", str(folder)], root.path)


def stop_training(root: Root, run: str) -> jobs.Job:
    """Ask the training of ``run`` to save a checkpoint and stop (SIGINT)."""
    return jobs.stop(root.app_dir, root.inside(run, "run"))


def training_state(root: Root, run: str) -> str:
    """One line on the run: training (pid, step), or its ``retarget runs`` state and how its job ended."""
    from retarget.views.runs import describe_run

    folder = root.inside(run, "run")
    job = jobs.find_job(root.app_dir, folder)
    live = jobs.running(job)
    if not folder.is_dir():
        return "starting" if live else f"{run}: no such run folder"
    row = describe_run(folder)
    done = "-" if row.steps_done is None else row.steps_done
    line = f"{'training' if live else row.state}: checkpoint at step {done} of {row.steps_planned or '?'}"
    if live and job is not None:
        return f"{line} (process {job.pid})"
    if row.resumable and row.state != "finished":
        line += " (resumable)"
    if job is not None and job.rc not in (None, 0, 130, 143):
        line += f"; the training failed: {jobs.last_error(job) or f'exit status {job.rc}'}"
    return line


# --- Render ----------------------------------------------------------------------------


def default_render(video: str, target: str) -> str:
    """The video a render writes by default: ``renders/<stem>_to_<target>.mp4``."""
    return f"renders/{Path(video).stem}_to_{Path(target).name}.mp4"


def side_name(output: Path) -> Path:
    """The side-by-side video beside ``output``: ``<stem>_side<suffix>``."""
    return output.with_name(f"{output.stem}_side{output.suffix}")


def render_video(
    root: Root,
    video: str,
    output: str = "",
    *,
    run: Optional[str] = None,
    to: Optional[str] = None,
    target_faces: Optional[str] = None,
    side_by_side: bool = True,
    stabilize: float = 1.0,
    overwrite: bool = False,
    report: Report = _no_report,
) -> tuple[Path, Optional[Path]]:
    """Translate ``video`` with ``run`` (``--to`` a domain) or swap its faces for ``target_faces``.

    The same as ``retarget render VIDEO OUTPUT --model RUN --to TO`` (or ``--target-faces``),
    and, when ``side_by_side``, the source beside that output in ``<output>_side.mp4`` (made from the two files).
    Returns the output and the side-by-side video (None without it).
    """
    from retarget.render.render import render
    from retarget.ui.progress import follow

    if (run is None) == (target_faces is None):
        raise RetargetError("render: pick a trained run, or a face dataset to swap faces with (one of them)")
    source = root.inside(video, "video")
    target = to or Path(run or target_faces or "").name
    out = root.inside(output or default_render(video, target), "output")
    side = side_name(out) if side_by_side else None
    for path in filter(None, (out, side)):
        check_output(path, kind="video", inputs=[source], overwrite=overwrite, command="render", option="OUTPUT")
    common = dict(input=str(source), stabilize=float(stabilize), overwrite=overwrite)
    if run is not None:
        cfg = RenderConfig(output=str(out), model=str(root.inside(run, "run")), to_domain=to or None, **common)
    else:
        cfg = RenderConfig(output=str(out), target_faces=str(root.inside(target_faces or "", "face dataset")), **common)
    for path in filter(None, (out, side)):
        path.parent.mkdir(parents=True, exist_ok=True)
    follow(lambda: render(cfg), lambda f, what: report(f, f"{what}: output"))
    if side is not None:  # from the two files: the generator does not run twice
        from retarget.render.sidebyside import side_by_side_video

        side_by_side_video(source, out, side)
    return out, side


# --- Runs ------------------------------------------------------------------------------


def runs_table(root: Root) -> tuple[list[str], list[list[str]]]:
    """The ``retarget runs`` table of every run under the root (header, rows; run names relative to it)."""
    from retarget.views.runs import list_runs, table_rows

    return table_rows(list_runs(root.path, depth=4))


def run_names(root: Root) -> list[str]:
    """Every run folder under the root, relative paths, newest first."""
    from retarget.views.runs import list_runs

    return [r.name for r in list_runs(root.path, depth=4)]


def run_domains(root: Root, run: str) -> list[str]:
    """The domain names of ``run`` (a pair's dataset folder names, or a multi-domain run's names)."""
    from retarget.run.layout import read_config_dict
    from retarget.views.runs import run_domains as domains

    return list(domains(read_config_dict(root.inside(run, "run"))))


def face_datasets(root: Root) -> list[str]:
    """The datasets under the root made with ``--align face`` (targets of a face swap)."""
    found = []
    for d in root.datasets():
        try:
            if load_dataset(root.inside(d)).align == "face":
                found.append(d)
        except RetargetError:
            continue
    return found
