"""The run folder before training: its default name, the --resume/--overwrite checks, a fresh start's clearing.

Every rank checks (read-only); rank 0 alone clears. A folder without a complete
checkpoint is not a run (one killed before its first checkpoint, or any other folder).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

from retarget.atomic import discard
from retarget.config import ModelConfig, TrainConfig, to_dict
from retarget.errors import RetargetError
from retarget.run import checkpoint as ckpt
from retarget.run import layout
from retarget.train.multi import default_names, folder_name
from retarget.train.resume import check_resume, resume_command
from retarget.views.run_views import clear_views

__all__ = ["clear_run_dir", "default_run_dir", "first_missing", "prepare_run_dir"]


def default_run_dir(cfg: TrainConfig) -> Path:
    """``models/<A>-to-<B>`` under the current folder, from the dataset folder names; a multi-domain
    run's is ``models/<name1>-<name2>-...`` from its domain names (``cfg`` through :func:`resolve_domains`)."""
    if cfg.is_multi:
        return Path("models") / "-".join(cfg.names or default_names(cfg.datasets))
    a, b = folder_name(cfg.a_dir), folder_name(cfg.b_dir)
    return Path("models") / f"{a}-to-{b}"


def _describe_change(old: ModelConfig, new: ModelConfig) -> str:
    diffs = [f"{k} {v} vs {getattr(new, k)}" for k, v in to_dict(old).items() if getattr(new, k) != v]
    return ", ".join(diffs)


def prepare_run_dir(cfg: TrainConfig, run_dir: Path) -> None:
    """Check the run folder against --resume/--overwrite (read-only, every rank).

    A folder without a complete checkpoint is not a run (one killed before its first
    checkpoint, or any other folder): a new run starts in it without --overwrite.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise RetargetError(f"{run_dir}: exists and is not a folder; pick another --out")
    latest = ckpt.latest_checkpoint(run_dir)
    if cfg.resume:
        if latest is None:
            raise RetargetError(
                f"{run_dir}: nothing to resume (no complete checkpoint: the run stopped before its first one); "
                "run it again without --resume to start afresh"
            )
        check_resume(cfg, run_dir)
        meta, _ = ckpt.read_weights(latest / layout.WEIGHTS)
        old = ckpt.model_config_of(meta)
        if old != cfg.model:
            raise RetargetError(
                f"{latest / layout.WEIGHTS}: checkpoint has another architecture ({_describe_change(old, cfg.model)}); "
                "train with the same options or use --overwrite"
            )
    elif latest is not None and not cfg.overwrite:
        raise RetargetError(
            f"{run_dir}: already holds a run; continue it with `{resume_command(run_dir)}` or pass --overwrite to "
            "start afresh"
        )


def clear_run_dir(run_dir: Path) -> None:
    """Remove a previous run's files (:func:`~retarget.run.layout.run_files`), previews, views, checkpoints; no more."""
    for path in layout.run_files(run_dir):
        path.unlink(missing_ok=True)
    shutil.rmtree(run_dir / layout.PREVIEWS, ignore_errors=True)
    clear_views(run_dir)  # report pages, tb/
    for step in ckpt.checkpoint_steps(run_dir):
        discard(layout.checkpoint_dir(run_dir, step))


def first_missing(path: Path) -> Optional[Path]:
    """The outermost folder of ``path`` (itself included) that does not exist yet, or None."""
    missing = None
    for p in (path, *path.parents):
        if p.exists():
            break
        missing = p
    return missing
