"""The one rule for where a command may write: :func:`check_output`.

Every command that writes (extract, train, train-enhancer, demo, render) calls
:func:`check_output` on its output path before any work. It refuses, in one line:

- an empty output path (``-o ""``);
- an output that is, holds or lies inside an input of the same call (symbolic links
  resolved), with or without ``--overwrite``;
- an existing output of another kind (:func:`product_kind`): another command's
  product, a file where a folder is wanted (or the reverse), a folder of files
  retarget did not make. ``--overwrite`` replaces only an output of the same kind;
- an existing output of the same kind without ``--overwrite`` (unless the command
  continues it: extract's ``--append``, train's ``--resume``);
- a location that cannot take files (a file where a folder should be, a denied or
  read-only folder, a special file system such as ``/proc``).

Pure path logic: it reads folder listings and a few small files, and writes nothing
but a probe file under a temporary name (:func:`retarget.atomic.atomic_file`) that is
removed at once. It names the files products are known by itself (it sits below the
modules that write them, and loads no torch).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional

from retarget.atomic import _STALE as _TEMP_NAME  # the names of atomic's temporary files
from retarget.atomic import atomic_file, write_error
from retarget.errors import RetargetError

#: The file that marks a folder as written by ``retarget demo``.
DEMO_MARKER = ".retarget-demo"
#: Suffixes of the video files retarget writes (render) and reads.
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v")
#: Every kind :func:`product_kind` knows, with the command that makes it and how a message names it.
KINDS = {
    "dataset": ("extract", "a retarget dataset"),
    "run": ("train", "a training run"),
    "enhancer": ("train-enhancer", "an enhancer folder"),
    "refiner": ("train-refiner", "a refiner folder"),
    "demo": ("demo", "a demo output"),
    "video": ("render", "a video file"),
    "onnx": ("export", "an ONNX file"),
}
#: The kinds that are single files (the others are folders).
FILE_KINDS = ("video", "onnx")

__all__ = [
    "DEMO_MARKER",
    "FILE_KINDS",
    "KINDS",
    "VIDEO_SUFFIXES",
    "check_distinct",
    "check_output",
    "product_kind",
]


def _entries(folder: Path) -> list[str]:
    """The names in ``folder``, without the temporary files of interrupted writers."""
    return [n for n in os.listdir(folder) if not _TEMP_NAME.match(n)]


#: The names the products' folders are recognised by. This module sits below the ones that
#: write them (layers: docs/architecture.md), so it names them itself; tests/test_outputs.py
#: holds them equal to retarget.dataset.manifest's and retarget.run.layout's.
MANIFEST = "manifest.json"  # a dataset's
DATASET_FORMAT = "retarget-dataset"  # its "format"
DATASET_FRAMES = "frames"  # its folder of frames
RUN_CONFIG, RUN_METRICS, RUN_PREVIEWS = "config.json", "metrics.jsonl", "previews"  # a run's
RUN_CHECKPOINTS, RUN_WEIGHTS = "checkpoints", "weights.safetensors"
ENHANCER_WEIGHTS = "enhancer.safetensors"  # an enhancer folder's
REFINER_WEIGHTS = "refiner.safetensors"  # a refiner folder's
#: What a folder product replaced whole by ``--overwrite`` holds: any other name in it is the
#: user's, and the folder is then not replaced (a run is cleared file by file, by its own names).
OWN_NAMES = {
    "dataset": {MANIFEST, DATASET_FRAMES},
    "enhancer": {ENHANCER_WEIGHTS, RUN_CONFIG},
    "refiner": {REFINER_WEIGHTS, RUN_CONFIG},
}


def _is_dataset(folder: Path) -> bool:
    """A folder whose ``manifest.json`` is a retarget dataset's (its ``format``): a web app's or
    another tool's manifest, or a broken one, makes no dataset (and is never replaced as one)."""
    import json

    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == DATASET_FORMAT


def _is_run(folder: Path) -> bool:
    """A run folder: a checkpoint's weights or a training config (:func:`_trained_here`), or a run started
    before its first checkpoint (its metrics, previews or checkpoint folder)."""
    folders = (folder / RUN_CHECKPOINTS, folder / RUN_PREVIEWS)
    return _trained_here(folder) or any(f.is_dir() for f in folders) or (folder / RUN_METRICS).is_file()


def product_kind(path: str | os.PathLike[str]) -> Optional[str]:
    """What retarget product ``path`` is: one of :data:`KINDS` or None.

    ``"demo"`` (a folder with :data:`DEMO_MARKER`), ``"dataset"`` (a folder with the
    manifest extract writes; a plain folder of images is the user's, None),
    ``"enhancer"`` / ``"refiner"`` (a folder with that network's weights), ``"run"`` (see
    :func:`_is_run`), ``"video"`` (a file with a video suffix); None for anything
    else, a missing path included.
    """
    path = Path(path)
    if path.is_file():
        suffix = path.suffix.lower()
        return "video" if suffix in VIDEO_SUFFIXES else "onnx" if suffix == ".onnx" else None
    if not path.is_dir():
        return None
    if (path / DEMO_MARKER).is_file():
        return "demo"
    if _is_dataset(path):
        return "dataset"
    try:
        if not _entries(path):
            return None
    except OSError:
        return None
    if (path / ENHANCER_WEIGHTS).is_file():
        return "enhancer"
    if (path / REFINER_WEIGHTS).is_file():
        return "refiner"
    return "run" if _is_run(path) else None


def _describe(path: Path) -> str:
    """What an existing ``path`` is, for a message: ``holds a training run (made by retarget train)``."""
    kind = product_kind(path)
    if kind in FILE_KINDS:
        return f"is {KINDS[kind][1]}"
    if kind is not None:
        return f"holds {KINDS[kind][1]} (made by retarget {KINDS[kind][0]})"
    if path.is_dir():
        return "holds files retarget did not make"
    return "is a file" if path.is_file() else "is not a regular file or folder"


def check_apart(out: Path, inputs: Iterable[str | os.PathLike[str] | None]) -> None:
    """RetargetError when ``out`` is, holds or lies inside one of ``inputs`` (symbolic links resolved)."""
    where = out.resolve()
    for given in inputs:
        if given is None or not str(given).strip():
            continue
        inp = Path(given).resolve()
        if where == inp:
            why = f"is the input {given}"
        elif inp.is_relative_to(where):
            why = f"holds the input {given}"
        elif where.is_relative_to(inp):
            why = f"lies inside the input {given}"
        else:
            continue
        raise RetargetError(f"{out}: {why}; an output never replaces or goes into an input: choose another output")


def _trained_here(folder: Path) -> bool:
    """A checkpoint's weights, or a training config (its ``a_dir``), in ``folder``: surely a run."""
    import json

    steps = folder / RUN_CHECKPOINTS
    if (folder / RUN_WEIGHTS).is_file() or (steps.is_dir() and any(steps.glob(f"step_*/{RUN_WEIGHTS}"))):
        return True
    try:
        config = json.loads((folder / RUN_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "a_dir" in config


def _enclosing_product(out: Path) -> Optional[tuple[Path, str]]:
    """The nearest folder above ``out`` that is surely a dataset, a run or an enhancer, with its kind; or None.

    Only sure signs count here (a manifest, an enhancer's weights, a checkpoint's weights or a
    training config), so that a project folder that merely has a ``checkpoints`` folder of
    another tool is not taken for a run. A demo folder holds datasets and runs by design.
    """
    for folder in out.resolve().parents:
        if _is_dataset(folder):
            return folder, "dataset"
        if (folder / ENHANCER_WEIGHTS).is_file():
            return folder, "enhancer"
        if (folder / REFINER_WEIGHTS).is_file():
            return folder, "refiner"
        if (folder / RUN_CONFIG).is_file() and _trained_here(folder):
            return folder, "run"
    return None


def _check_existing(out: Path, kind: str, overwrite: bool, reuse: bool) -> None:
    """RetargetError for an existing ``out`` that must not be replaced or written into."""
    wanted = KINDS[kind][1]
    if kind in FILE_KINDS:
        if out.is_dir():
            raise RetargetError(f"{out}: is a folder; give an output file name")
        same = product_kind(out) == kind
    elif not out.is_dir():
        raise RetargetError(f"{out}: is not a folder, it {_describe(out)}; choose another output")
    else:
        try:
            same = not _entries(out) or product_kind(out) == kind
        except OSError as exc:
            raise RetargetError(f"{out}: cannot read the folder ({exc.strerror or exc})") from None
    if not same:
        act = "--overwrite" if overwrite else "write into"
        raise RetargetError(f"{out}: {_describe(out)}, not {wanted}; refusing to {act} it: choose another output")
    if not (overwrite or reuse):
        raise RetargetError(f"{out}: already exists (pass --overwrite to replace it)")
    if overwrite and kind in OWN_NAMES and out.is_dir():
        _check_own(out, kind)


def _check_own(out: Path, kind: str) -> None:
    """RetargetError when the folder product ``out``, about to be replaced whole, holds names its command
    did not write (:data:`OWN_NAMES`): the user's files put beside it would go with it."""
    foreign = sorted(set(_entries(out)) - OWN_NAMES[kind])
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise RetargetError(
            f"{out}: holds {shown}, which retarget {KINDS[kind][0]} did not write; refusing to --overwrite it: "
            "move them out or choose another output"
        )


def _check_writable(out: Path) -> None:
    """RetargetError when ``out`` cannot be created (or written into) where it is: a file in the way, a denied
    or read-only folder, a file system that takes no files."""
    folders = [out] if out.is_dir() else []
    here = out.parent
    while not here.exists() and here != here.parent:
        here = here.parent
    if here.exists() and not here.is_dir():
        raise RetargetError(f"{out}: cannot write: {here} is a file, not a folder; choose another output")
    for folder in [*folders, here]:
        probe = folder / ".retarget-write-probe"
        try:
            with atomic_file(probe, keep_suffix=False):
                raise _Probed
        except _Probed:
            continue
        except OSError as exc:
            err = write_error(probe, OSError(exc.errno, exc.strerror, str(probe)))
            why = str(err).split(": cannot write: ", 1)[-1] if err else (exc.strerror or str(exc))
            raise RetargetError(f"{out}: cannot write: {why}") from None


class _Probed(Exception):
    """Ends the write probe: the temporary file could be made."""


def check_output(
    out: str | os.PathLike[str],
    *,
    kind: str,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    overwrite: bool = False,
    command: str = "",
    reuse: bool = False,
    option: str = "--out",
) -> Path:
    """Check where a command is about to write; return ``out`` as a Path. Reads only; never deletes.

    Args:
        out: the output path as given (``-o``); an empty or blank string is refused.
        kind: what the command makes, a key of :data:`KINDS`.
        inputs: every path the command reads (videos, datasets, a run to start from);
            None entries are skipped.
        overwrite: the user passed ``--overwrite``: an existing output of ``kind`` may be replaced.
        command: the command's name, for messages (default: the one that makes ``kind``).
        reuse: the command continues or handles an existing output of ``kind`` (or an
            empty folder) itself: extract's ``--append``, train's ``--resume``, demo's own check.
        option: the option that named ``out``, for the message about an empty path.

    Raises:
        RetargetError: one line naming ``out``: empty; is, holds or lies inside an input;
            lies inside a dataset, a run, an enhancer or a refiner (a folder output);
            exists as something other than ``kind`` (with or without ``overwrite``);
            exists without ``overwrite`` or ``reuse``; cannot be written there.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r}; one of {', '.join(KINDS)}")
    command = command or KINDS[kind][0]
    if not str(out).strip():
        what = "file" if kind in FILE_KINDS else "folder"
        raise RetargetError(f"{command} {option} {str(out)!r}: empty output path; give a {what} name")
    path = Path(out)
    check_apart(path, inputs)
    if kind not in FILE_KINDS:  # a file beside a product's own is fine: its --overwrite leaves it (OWN_NAMES)
        _check_outside_products(path)
    if path.exists() or path.is_symlink():
        _check_existing(path, kind, overwrite, reuse)
    _check_writable(path)
    return path


def _check_outside_products(out: str | os.PathLike[str]) -> None:
    """RetargetError when ``out`` lies inside a dataset, a run, an enhancer or a refiner folder: its
    reader, a run's resume or a loader would meet the file there, and the product's own
    ``--overwrite`` would take it away."""
    inside = _enclosing_product(Path(out))
    if inside is not None:
        folder, what = inside
        raise RetargetError(
            f"{out}: lies inside {folder}, {KINDS[what][1]} (made by retarget {KINDS[what][0]}); choose another output"
        )


def check_distinct(paths: Iterable[str | os.PathLike[str]], what: str = "dataset") -> None:
    """RetargetError when two of ``paths`` are the same file or folder (symbolic links resolved)."""
    seen: dict[Path, str] = {}
    for given in paths:
        key = Path(given).resolve()
        if key in seen:
            raise RetargetError(f"{given}: the same {what} as {seen[key]}; give each {what} once")
        seen[key] = str(given)
