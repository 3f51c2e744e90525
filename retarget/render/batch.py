"""``retarget render IN... -o DIR``: many videos into one folder, resumable, optionally in parallel.

:func:`render_many` renders each input into ``DIR`` under its own name (``clip.mov`` ->
``DIR/clip.mov``; an input whose container H.264 cannot go in, ``.avi`` or ``.webm``,
becomes ``DIR/clip.mp4``) with the one render of :func:`retarget.render.render.render`,
so every output is written under a temporary name and renamed when complete.

**Resuming.** After an output's rename a small record is written beside it, atomically:
``DIR/.<name>.done.json`` with the input's size and modification time and a hash of
the render options. A later batch skips a clip whose output exists and whose record
matches its input and options ("skipped: done earlier"), so a batch that was killed goes
on where it stopped: the clip that was being written left only a temporary file, which
the next render removes (:func:`retarget.atomic.clean_stale_temps`). An output without a
matching record (killed in the instant between the rename and the record, made by other
options, or by hand) is never replaced silently: that clip fails with the usual "already
exists (pass --overwrite...)" line, and ``--overwrite`` renders it again.

**Failures.** A clip that cannot render (unreadable, no face...) is reported with its
one-line error and the others go on. **Parallel.** ``jobs > 1`` renders that many clips
at once in spawned processes, each with ``cores // jobs`` torch threads and its output
quiet (a line per finished clip instead of bars).
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

from retarget.atomic import atomic_file
from retarget.config import RenderConfig, to_dict
from retarget.errors import RetargetError
from retarget.outputs import FILE_KINDS, KINDS, VIDEO_SUFFIXES, check_apart, product_kind
from retarget.progress import console
from retarget.render.stream import OUTPUT_SUFFIXES

__all__ = ["BatchSummary", "ClipResult", "collect_inputs", "output_for", "record_path", "render_many"]

#: What a clip's status says.
DONE, SKIPPED, FAILED = "done", "skipped", "failed"


@dataclass
class ClipResult:
    """One clip of a batch."""

    input: str
    output: str
    status: str  # "done", "skipped" (complete from an earlier batch) or "failed"
    frames: int = 0
    seconds: float = 0.0  # wall time of its render (of the earlier render when skipped)
    error: str = ""  # the one-line error of a failed clip


@dataclass
class BatchSummary:
    """What :func:`render_many` did, clip by clip, in input order."""

    out_dir: str
    clips: list[ClipResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[ClipResult]:
        """The clips that did not render."""
        return [c for c in self.clips if c.status == FAILED]


def _is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES and not path.name.startswith(".")


def collect_inputs(given: Iterable[str]) -> list[Path]:
    """The videos named by ``given``: files, folders (their videos, sorted by name) and glob patterns.

    A file is kept whatever its suffix (an unreadable one fails at its turn); a folder
    contributes its files with a video suffix (:data:`retarget.outputs.VIDEO_SUFFIXES`),
    hidden names aside. The same file named twice counts once.

    Raises:
        RetargetError: a name that is neither a file, a folder nor a pattern matching
            something; nothing to render at all.
    """
    found: list[Path] = []
    for item in given:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if _is_video(p))
        elif path.is_file():
            found.append(path)
        elif glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(item))
            found += [p for p in matches if _is_video(p)]
            if not matches:
                raise RetargetError(f"{item}: no file matches this pattern")
        else:
            raise RetargetError(f"{item}: no such file or folder")
    unique = list({p.resolve(): p for p in found}.values())
    if not unique:
        raise RetargetError(f"{' '.join(given)}: no video to render (looked for {', '.join(VIDEO_SUFFIXES)})")
    return unique


def output_for(src: Path, out_dir: Path) -> Path:
    """``out_dir/<src's name>``, or ``<stem>.mp4`` when H.264 cannot go in ``src``'s container."""
    name = src.name if src.suffix.lower() in OUTPUT_SUFFIXES else src.stem + ".mp4"
    return out_dir / name


def record_path(out: Path) -> Path:
    """Where the completion record of output ``out`` lives: ``.<name>.done.json`` beside it."""
    return out.with_name(f".{out.name}.done.json")


def options_key(cfg: RenderConfig) -> str:
    """A hash of the render options, paths and ``overwrite`` aside: equal for the same render."""
    same = dataclasses.replace(cfg, input="", output="", overwrite=False, out_dir=None, jobs=1)
    text = json.dumps(to_dict(same), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _input_stamp(src: Path) -> dict[str, int]:
    st = src.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _complete(cfg: RenderConfig, src: Path, out: Path) -> Optional[dict]:
    """The record of ``out`` when it is a complete render of ``src`` with ``cfg``'s options, else None."""
    try:
        record = json.loads(record_path(out).read_text(encoding="utf-8"))
        same = record["input"] == _input_stamp(src) and record["options"] == options_key(cfg)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record if same and out.is_file() else None


def _write_record(cfg: RenderConfig, src: Path, out: Path, frames: int, seconds: float) -> None:
    record = {"input": _input_stamp(src), "options": options_key(cfg), "frames": frames, "seconds": seconds,
              "source": str(src)}  # fmt: skip
    with atomic_file(record_path(out)) as tmp:
        tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")


def render_clip(cfg: RenderConfig, src: Path, out: Path, quiet: bool = False) -> ClipResult:
    """Render ``src`` into ``out`` with ``cfg``'s options and write its record; a failure is a result.

    Skipped when ``out`` is already a complete render of ``src`` with these options (and
    ``cfg.overwrite`` is off). KeyboardInterrupt passes.
    """
    from retarget.failures import error_line
    from retarget.render.plan import plan_render
    from retarget.render.stream import stream

    if not cfg.overwrite and (record := _complete(cfg, src, out)) is not None:
        return ClipResult(str(src), str(out), SKIPPED, int(record.get("frames", 0)), float(record.get("seconds", 0)))
    if not cfg.overwrite and out.is_file() and record_path(out).is_file():
        why = f"{out}: rendered earlier from another version of {src.name} or with other options; pass --overwrite"
        return ClipResult(str(src), str(out), FAILED, error=why + " to render it again")
    one = dataclasses.replace(cfg, input=str(src), output=str(out))
    started = time.perf_counter()
    try:
        summary = stream(plan_render(one), quiet=quiet)
        _write_record(cfg, src, out, summary.frames, summary.seconds)
    except RetargetError as exc:
        return ClipResult(str(src), str(out), FAILED, seconds=time.perf_counter() - started, error=str(exc))
    except Exception as exc:  # one clip's bug or a machine failure: said in a line, the others go on
        return ClipResult(str(src), str(out), FAILED, seconds=time.perf_counter() - started, error=error_line(exc)[0])
    return ClipResult(str(src), str(out), DONE, summary.frames, summary.seconds)


def _check_out_dir(out_dir: Path, inputs: Sequence[Path], others: Sequence[Optional[str]] = ()) -> None:
    """RetargetError when ``out_dir`` is a file, the folder of an input video (outputs would mix with
    inputs), is, holds or lies inside one of ``others`` (the run, the networks, the target's faces),
    or holds a dataset, a run or a network of its own."""
    if out_dir.exists() and not out_dir.is_dir():
        raise RetargetError(f"-o {out_dir}: is a file; give a folder for the outputs of several inputs")
    check_apart(out_dir, others)
    kind = product_kind(out_dir)
    if kind is not None and kind not in FILE_KINDS:
        raise RetargetError(f"-o {out_dir}: holds {KINDS[kind][1]}; write the outputs to another folder")
    where = out_dir.resolve()
    for src in inputs:
        if src.resolve().parent == where:
            raise RetargetError(f"-o {out_dir}: holds the input {src}; write the outputs to another folder")
    names: dict[Path, Path] = {}
    for src in inputs:
        out = output_for(src, out_dir)
        if out in names:
            raise RetargetError(f"{src}: would be written to {out} as {names[out]} is; rename one of them")
        names[out] = src


def _worker_init(threads: int) -> None:
    """A spawned render process: its share of the cores, and no bars of its own."""
    import torch

    from retarget.progress import console as worker_console

    torch.set_num_threads(max(1, threads))
    worker_console.quiet = True


def render_many(cfg: RenderConfig, inputs: Sequence[str]) -> BatchSummary:
    """Render every video of ``inputs`` (files, folders, globs) into ``cfg.out_dir`` with ``cfg``'s options.

    ``cfg.input`` and ``cfg.output`` are ignored; ``cfg.jobs`` clips render at once. See the
    module for resuming and failures. A table of the clips is printed at the end.

    Returns:
        :class:`BatchSummary`, clips in input order (check ``failed``).

    Raises:
        RetargetError: no inputs, ``cfg.out_dir`` missing, a file or an input's folder, two inputs with
            one output name, ``cfg.jobs`` below 1.
    """
    jobs = int(cfg.jobs)
    if jobs < 1:
        raise RetargetError(f"--jobs {jobs}: must be at least 1")
    if not cfg.out_dir or not cfg.out_dir.strip():
        raise RetargetError("render -o '': give the folder the outputs go to")
    sources = collect_inputs(inputs)
    folder = Path(cfg.out_dir)
    _check_out_dir(folder, sources, (cfg.model, cfg.enhancer, cfg.refiner, cfg.target_faces, cfg.face_ref))
    folder.mkdir(parents=True, exist_ok=True)
    pairs = [(src, output_for(src, folder)) for src in sources]
    started = time.perf_counter()
    if jobs == 1 or len(pairs) == 1:
        clips = _in_order(cfg, pairs)
    else:
        clips = _in_parallel(cfg, pairs, min(jobs, len(pairs)))
    summary = BatchSummary(str(folder), clips, time.perf_counter() - started)
    print_table(summary)
    return summary


def _line(k: int, n: int, clip: ClipResult) -> str:
    what = {DONE: f"done, {clip.frames} frames", SKIPPED: "skipped: done earlier"}.get(clip.status, clip.error)
    return f"[{k}/{n}] {clip.input}: {what}"


def _in_order(cfg: RenderConfig, pairs: list[tuple[Path, Path]]) -> list[ClipResult]:
    clips = []
    for k, (src, out) in enumerate(pairs, 1):
        console.print(f"[{k}/{len(pairs)}] {src} -> {out}", markup=False)
        clip = render_clip(cfg, src, out, quiet=True)
        console.print(_line(k, len(pairs), clip), markup=False)
        clips.append(clip)
    return clips


def _in_parallel(cfg: RenderConfig, pairs: list[tuple[Path, Path]], jobs: int) -> list[ClipResult]:
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // jobs)
    console.print(f"{len(pairs)} clips, {jobs} at a time ({threads} torch thread(s) each)", markup=False)
    results: dict[int, ClipResult] = {}
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init, initargs=(threads,)) as pool:
        futures = {pool.submit(render_clip, cfg, src, out, True): i for i, (src, out) in enumerate(pairs)}
        for done, future in enumerate(as_completed(futures), 1):
            i = futures[future]
            try:
                results[i] = future.result()
            except Exception as exc:  # the process died (memory): the clip failed, the others go on
                src, out = pairs[i]
                results[i] = ClipResult(str(src), str(out), FAILED, error=f"render process failed: {exc}")
            console.print(_line(done, len(pairs), results[i]), markup=False)
    return [results[i] for i in range(len(pairs))]


def print_table(summary: BatchSummary) -> None:
    """The batch's table: clip, frames, seconds, status (a failed clip's one-line error)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(f"render into {summary.out_dir}"), title_justify="left")
    for name, justify in (("clip", "left"), ("frames", "right"), ("seconds", "right"), ("status", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for clip in summary.clips:
        status = {SKIPPED: "skipped (done earlier)", FAILED: f"failed: {clip.error}"}.get(clip.status, clip.status)
        table.add_row(Text(Path(clip.input).name), str(clip.frames), f"{clip.seconds:.1f}", Text(status))
    console.print(table)
    counts = {s: sum(c.status == s for c in summary.clips) for s in (DONE, SKIPPED, FAILED)}
    console.print(
        f"{counts[DONE]} rendered, {counts[SKIPPED]} skipped, {counts[FAILED]} failed in {summary.seconds:.1f} s",
        markup=False,
    )
