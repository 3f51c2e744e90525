"""Resuming a run with its own options: :func:`resume_config`, :func:`check_resume`.

A run folder's ``config.json`` holds every option the run was started with. A resumed
run takes them all from there, so it continues exactly the run that was interrupted
(same data, seed, learning rate, architecture...). Only the options in
:data:`RESUMABLE` (how long to run, how often to save, log and preview, where and on
how many threads) may change; any other option that differs is refused, naming it.

Library use::

    cfg = resume_config("models/a-to-b", steps=20000)   # the run's options, 20000 steps
    train(cfg)

``TrainConfig(resume=True, ...)`` passed to :func:`retarget.train.train` directly must
match the run's ``config.json`` the same way (checked by :func:`check_resume`).
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from pathlib import Path
from typing import Any

from retarget.config import LossConfig, ModelConfig, TrainConfig, replace
from retarget.options import resumable_options
from retarget.errors import RetargetError
from retarget.run import checkpoint as ckpt
from retarget.run import layout

#: Options a resumed run may change: run length and run control, nothing that changes
#: what is trained (the fields marked ``opt(resumable=True)`` in :class:`TrainConfig`).
RESUMABLE = resumable_options(TrainConfig)
#: Fields that say where and how to start, not what the run is.
_CONTROL = ("out", "resume", "overwrite")

_TOP = {f.name for f in dataclasses.fields(TrainConfig)} - {"model", "loss"}
_MODEL = {f.name for f in dataclasses.fields(ModelConfig)}
_LOSS = {f.name for f in dataclasses.fields(LossConfig)}


def resume_command(run_dir: str | os.PathLike[str]) -> str:
    """The command line that resumes the run in ``run_dir`` (the run keeps its own options)."""
    return f"retarget train --resume {shlex.quote(str(run_dir))}"


def read_run_config(run_dir: str | os.PathLike[str]) -> TrainConfig:
    """The :class:`TrainConfig` a run was started with (``RUN/config.json``); RetargetError if absent or unreadable."""
    cfg = layout.read_train_config(run_dir)
    if cfg is None:
        path = Path(run_dir) / layout.CONFIG
        raise RetargetError(f"{path}: not found; the run's options are unknown, so it cannot be resumed")
    return cfg


def resume_config(run_dir: str | os.PathLike[str], **changes: Any) -> TrainConfig:
    """The configuration that continues the run in ``run_dir``: its own, with ``changes``.

    Args:
        run_dir: a run folder holding a complete checkpoint and ``config.json``.
        changes: option values by field name. Names of :data:`RESUMABLE` options are
            applied. Any other option (a field of ``TrainConfig``, ``ModelConfig`` or
            ``LossConfig``, by its own name; ``model`` may be a ``ModelConfig`` or the
            model kind, ``loss`` a ``LossConfig``) must equal the run's value.

    Returns:
        the run's :class:`TrainConfig` with ``out=run_dir``, ``resume=True``,
        ``overwrite=False`` and the allowed changes.

    Raises:
        RetargetError: no complete checkpoint, no readable ``config.json`` (a value of the
            wrong type names the file and its key), an option that differs from the run's
            (the message names it), or ``steps`` below the step the run has reached.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RetargetError(f"{run_dir}: no such run folder")
    if not ckpt.is_run(run_dir):
        raise RetargetError(
            f"{run_dir}: nothing to resume (no complete checkpoint: the run stopped before its first one); "
            "run it again without --resume to start afresh"
        )
    saved = read_run_config(run_dir)
    allowed = {k: v for k, v in changes.items() if k in RESUMABLE}
    for name, value in changes.items():
        if name not in RESUMABLE:
            _check_same(saved, run_dir, name, value)
    cfg = replace(saved, out=str(run_dir), resume=True, overwrite=False, **allowed)
    check_steps(cfg.steps, run_dir)
    return cfg


def run_step(run_dir: str | os.PathLike[str]) -> int:
    """The step of the newest complete checkpoint of ``run_dir`` (read from its header; no weight is read).

    Raises:
        RetargetError: no complete checkpoint, or one whose header is unreadable.
    """
    folder = ckpt.latest_checkpoint(run_dir)
    if folder is None:
        raise RetargetError(f"{run_dir}: nothing to resume (no complete checkpoint)")
    return int(ckpt.read_metadata(folder / layout.WEIGHTS).get("step", 0))


def check_steps(steps: int, run_dir: str | os.PathLike[str]) -> None:
    """Refuse ``--steps`` below the step the run in ``run_dir`` has already reached (one line)."""
    done = run_step(run_dir)
    if steps < done:
        raise RetargetError(
            f"--steps {steps}: the run is already at step {done}; give more steps to continue {run_dir}"
        )


def check_resume(cfg: TrainConfig, run_dir: str | os.PathLike[str]) -> None:
    """Refuse to resume ``run_dir`` with ``cfg`` when an option other than :data:`RESUMABLE` differs from the run's,
    or ``cfg.steps`` lies below the step the run has reached."""
    saved = read_run_config(run_dir)
    check_steps(cfg.steps, run_dir)
    for name in sorted(_TOP - set(RESUMABLE) - set(_CONTROL)):
        _check_same(saved, Path(run_dir), name, getattr(cfg, name))
    _check_same(saved, Path(run_dir), "model", cfg.model)
    _check_same(saved, Path(run_dir), "loss", cfg.loss)


#: Options whose flag is not the field's name.
_FLAGS = {"a_dir": "A_DIR", "b_dir": "B_DIR", "more": "DATASETS (after A_DIR B_DIR)", "init_swap": "--swap"}


def _flag(name: str) -> str:
    return _FLAGS.get(name) or "--" + name.replace("_", "-")


def _show(value: Any) -> Any:
    """A value as the command line writes it: lists (``--names``, further datasets) comma-separated."""
    return ",".join(str(v) for v in value) if isinstance(value, (tuple, list)) else value


def _refuse(run_dir: Path, name: str, value: Any, old: Any) -> RetargetError:
    value, old = _show(value), _show(old)
    return RetargetError(
        f"{_flag(name)} {value}: the run in {run_dir} was trained with {old}; a resumed run keeps its options "
        f"(only {', '.join(_flag(n) for n in RESUMABLE)} may change). Leave it out, or start a new run "
        "with another --out"
    )


def _check_same(saved: TrainConfig, run_dir: Path, name: str, value: Any) -> None:
    """RetargetError naming ``name`` when ``value`` differs from the run's."""
    if name == "out":
        if value is not None and Path(value).resolve() != run_dir.resolve():
            raise _refuse(run_dir, name, value, f"--out {run_dir}")
        return
    if name == "resume":
        return
    if name == "overwrite":
        if value:
            raise RetargetError("--overwrite and --resume exclude each other: --overwrite starts the run afresh")
        return
    if name in ("model", "loss") and dataclasses.is_dataclass(value):
        old_sub = getattr(saved, name)
        for f in dataclasses.fields(old_sub):
            if getattr(value, f.name) != getattr(old_sub, f.name):
                raise _refuse(run_dir, f.name, getattr(value, f.name), getattr(old_sub, f.name))
        return
    if name == "model" or (name in _MODEL and name not in _TOP):
        old = getattr(saved.model, name)
    elif name in _TOP:
        old = getattr(saved, name)
    elif name in _LOSS:
        old = getattr(saved.loss, name)
    else:
        raise RetargetError(f"{name}: not an option of retarget train")
    if name in ("a_dir", "b_dir", "init_from"):
        same = value == old or (value is not None and old is not None and Path(value).resolve() == Path(old).resolve())
    elif name == "more":
        same = [Path(v).resolve() for v in value] == [Path(v).resolve() for v in old]
    else:
        same = value == old or (isinstance(old, tuple) and tuple(value) == old)
    if not same:
        raise _refuse(run_dir, name, value, old)
