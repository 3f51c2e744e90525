"""The runs under a folder at a glance (``retarget runs``): how far each got, its last losses, resumable or not.

Everything here only reads run folders, through :mod:`retarget.run.layout` (names,
``config.json``, ``metrics.jsonl``) and :mod:`retarget.run.checkpoint` (the newest
complete checkpoint); it imports nothing of the training package, so ``retarget runs``
starts quickly.
"""

from __future__ import annotations

import math
import os
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from retarget.errors import RetargetError
from retarget.run import checkpoint as ckpt
from retarget.run import layout

WARP_ERROR = "temporal/warp_error"
#: Folders never searched for runs (inside a run folder).
_SKIP = {layout.PREVIEWS, layout.TB, "__pycache__"}


@dataclass(frozen=True)
class RunRow:
    """One run folder, summarised.

    Attributes:
        name: the folder relative to the listed root (``"faces-to-cats"``).
        path: the folder as given (root joined with name).
        model: ``"recycle"`` or ``"cyclegan"``; ``"?"`` when config.json is unreadable.
        domains: the domains' names: a multi-domain run's, or a pair's two dataset folders
            (A's first); () when config.json is unreadable.
        size: training resolution (px); None when unknown.
        steps_done: steps of the newest complete checkpoint; None without one.
        steps_planned: ``--steps`` of the run; None when unknown.
        loss_g, loss_d: the last logged generator / discriminator totals.
        warp_error: the last temporal-preview warping error (mean abs, [0, 1] pixel units).
        age_s: seconds since anything in the folder was last written.
        resumable: a complete, readable checkpoint and a readable ``config.json`` exist, so
            ``retarget train --resume RUN`` continues.
        state: ``"finished"``, ``"stopped"`` (resumable, fewer steps than planned),
            ``"no checkpoint"`` or ``"damaged"`` (see ``problem``).
        problem: why a damaged run cannot be resumed or rendered (``config.json`` or the
            newest checkpoint does not load), naming the file; None otherwise.
    """

    name: str
    path: str
    model: str
    domains: tuple[str, ...]
    size: Optional[int]
    steps_done: Optional[int]
    steps_planned: Optional[int]
    loss_g: Optional[float]
    loss_d: Optional[float]
    warp_error: Optional[float]
    age_s: float
    resumable: bool
    state: str
    problem: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        """The row as a JSON-ready dict (same keys as the attributes)."""
        return asdict(self)


def run_domains(cfg: dict[str, Any]) -> tuple[str, ...]:
    """The domain names a run's ``config.json`` (as a dict) gives: ``names`` (multi-domain), else the
    dataset folders' names (``a_dir``, ``b_dir``, ``more``); () when it names none."""
    names = cfg.get("names")
    if isinstance(names, list) and names:
        return tuple(_shown(str(n)) for n in names)
    more = cfg.get("more")
    dirs = [cfg.get("a_dir"), cfg.get("b_dir"), *(more if isinstance(more, list) else [])]
    return tuple(_shown(Path(d).name) for d in dirs if isinstance(d, str) and d)


def _shown(name: str) -> str:
    """``name`` as text that can be printed and written: a byte of a file name that is not UTF-8
    (a surrogate escape) becomes U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def checkpoint_step(run_dir: Path) -> Optional[int]:
    """Steps done by the newest complete checkpoint of ``run_dir``; None when there is none.

    The checkpoint layout is :mod:`retarget.run.checkpoint`'s; this reads only the
    safetensors header of the newest complete checkpoint (the step is in its metadata).
    """
    folder = ckpt.latest_checkpoint(run_dir)
    if folder is None:
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(folder / layout.WEIGHTS), "pt") as f:
            meta = f.metadata() or {}
        return int(meta["step"])
    except Exception:  # noqa: BLE001 - a damaged or foreign file is simply not a checkpoint
        return None


def is_resumable(run_dir: Path) -> bool:
    """True when ``retarget train --resume RUN`` can continue ``run_dir`` (a complete checkpoint exists,
    and it and ``config.json`` load: :func:`run_problem`)."""
    return ckpt.is_run(run_dir) and run_problem(run_dir) is None


def run_problem(run_dir: Path) -> Optional[str]:
    """Why ``run_dir`` is damaged: its ``config.json`` or its newest complete checkpoint does not load; None if sound.

    Cheap: reads ``config.json``, the safetensors header of the newest checkpoint (whose
    reader checks that the header parses and the file is exactly as long as its tensors
    say) and the zip directory at the end of its ``state.pt``; no weight is read. A folder
    without a checkpoint is only checked for a readable ``config.json``.
    """
    folder = ckpt.latest_checkpoint(run_dir)
    config = run_dir / layout.CONFIG
    try:
        train_cfg = layout.read_train_config(run_dir)
        if folder is None:
            return None
        if train_cfg is None:
            return f"{layout.CONFIG} missing: the run's options are unknown"
        weights = folder / layout.WEIGHTS
        meta = ckpt.read_metadata(weights)
    except RetargetError as exc:
        return _short(exc, run_dir)
    rel = weights.relative_to(run_dir).as_posix()
    step = layout.parse_step(folder.name)
    if step is not None and int(meta.get("step", -1)) != step:
        return f"{rel}: holds step {meta.get('step')}, not {step}"
    if ckpt.model_config_of(meta) != train_cfg.model:
        return f"{rel}: another architecture than {config.name}"
    return _state_problem(folder / layout.STATE, run_dir)


def _state_problem(state: Path, run_dir: Path) -> Optional[str]:
    """Why a checkpoint's ``state.pt`` (a ``torch.save`` zip archive) is unreadable, from its zip directory; None if fine."""
    rel = state.relative_to(run_dir).as_posix()
    try:
        with zipfile.ZipFile(state) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return f"{rel}: unreadable (cut short or not a training state)"
    if not any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
        return f"{rel}: not a training state"
    return None


def _short(exc: Exception, run_dir: Path) -> str:
    """A RetargetError's line with the run folder left out of the file name it starts with."""
    text = str(exc)
    prefix = str(run_dir) + os.sep
    return text[len(prefix) :] if text.startswith(prefix) else text


def last_value(records: list[dict[str, Any]], key: str) -> Optional[float]:
    """The newest finite number logged under ``key``; None when never logged."""
    for rec in reversed(records):
        v = rec.get(key)
        if isinstance(v, (int, float)) and math.isfinite(v):
            return float(v)
    return None


def last_write(run_dir: Path) -> float:
    """Modification time (epoch seconds) of the newest entry in ``run_dir`` or its previews."""
    newest = run_dir.stat().st_mtime
    for folder in (run_dir, run_dir / layout.PREVIEWS):
        if folder.is_dir():
            for entry in os.scandir(folder):
                try:
                    newest = max(newest, entry.stat().st_mtime)
                except OSError:
                    pass
    return newest


def describe_run(
    run_dir: Path,
    name: Optional[str] = None,
    now: Optional[float] = None,
    records: Optional[list[dict[str, Any]]] = None,
) -> RunRow:
    """Summarise one run folder (see :class:`RunRow`); ``records``: its metrics lines, if already read."""
    cfg = layout.read_config_dict(run_dir)
    model = cfg.get("model") if isinstance(cfg.get("model"), dict) else {}
    records = layout.read_metrics(run_dir) if records is None else records
    done = checkpoint_step(run_dir)
    planned = cfg.get("steps") if isinstance(cfg.get("steps"), int) and not isinstance(cfg.get("steps"), bool) else None
    problem = run_problem(run_dir)
    if problem is not None:
        state = "damaged"
    elif done is None:
        state = "no checkpoint"
    elif planned is not None and done >= planned:
        state = "finished"
    else:
        state = "stopped"
    return RunRow(
        name=name if name is not None else run_dir.name,
        path=str(run_dir),
        model=str(model.get("model", "?")),
        domains=run_domains(cfg),
        size=model.get("size")
        if isinstance(model.get("size"), int) and not isinstance(model.get("size"), bool)
        else None,
        steps_done=done,
        steps_planned=planned,
        loss_g=last_value(records, "loss/loss_G"),
        loss_d=last_value(records, "loss/loss_D"),
        warp_error=last_value(records, WARP_ERROR),
        age_s=max(0.0, (time.time() if now is None else now) - last_write(run_dir)),
        resumable=done is not None and problem is None,
        state=state,
        problem=problem,
    )


def _run_dirs(folder: Path, depth: int) -> Iterator[Path]:
    if (folder / layout.CONFIG).is_file() or (folder / layout.WEIGHTS).is_file():
        yield folder
        return
    if depth == 0:
        return
    try:
        children = sorted(
            p for p in folder.iterdir() if p.is_dir() and p.name not in _SKIP and not p.name.startswith(".")
        )
    except OSError:
        return
    for child in children:
        yield from _run_dirs(child, depth - 1)


def list_runs(root: str | os.PathLike[str] = "models", depth: int = 3) -> list[RunRow]:
    """Every run folder under ``root`` (a folder holding config.json or weights.safetensors), newest first.

    Args:
        root: where to look; a run folder itself is listed alone.
        depth: how many folder levels below ``root`` to search.

    Raises:
        RetargetError: ``root`` does not exist or is not a folder.
    """
    base = Path(root)
    if not base.is_dir():
        raise RetargetError(f"{base}: no such folder (runs are listed from ./models or the folder given)")
    now = time.time()
    rows = [
        describe_run(d, d.relative_to(base).as_posix() if d != base else base.name, now) for d in _run_dirs(base, depth)
    ]
    return sorted(rows, key=lambda r: r.age_s)


def format_age(seconds: float) -> str:
    """``42 s``, ``5 min``, ``3.2 h``, ``6 d``."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} d"


def _num(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.3f}"


def table_rows(rows: list[RunRow]) -> tuple[list[str], list[list[str]]]:
    """Header and text cells of the runs table, as printed by ``retarget runs``."""
    head = ["run", "model", "domains", "size", "steps", "G", "D", "warp err", "age", "state"]
    cells = []
    for r in rows:
        steps = (
            f"{'-' if r.steps_done is None else r.steps_done} / {'?' if r.steps_planned is None else r.steps_planned}"
        )
        state = r.state + (" (resumable)" if r.resumable and r.state != "finished" else "")
        if r.problem:
            state += f": {r.problem}"
        size = "-" if r.size is None else str(r.size)
        cells.append(
            [
                r.name,
                r.model,
                ",".join(r.domains) or "-",
                size,
                steps,
                _num(r.loss_g),
                _num(r.loss_d),
                _num(r.warp_error),
                format_age(r.age_s),
                state,
            ]
        )
    return head, cells
