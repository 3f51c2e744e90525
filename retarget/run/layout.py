"""The run folder: every name in it, and the one reader and writer of its text files.

A run folder (docs/checkpoints.md) holds::

    config.json            the TrainConfig the run was started with (read_train_config, write_config)
    metrics.jsonl          one JSON record per logged step (read_metrics, append_metrics, MetricsTail)
    loss_curve.png         every loss term against the step
    previews/step_N.png    preview grids; previews/step_N.mp4 temporal preview clips; previews/source.mp4
    report.html            the run's page; report_2.html, report_3.html... older previews
    tb/                    TensorBoard event files
    checkpoints/step_N/    weights.safetensors + state.pt (retarget.run.checkpoint writes them)
    cache_<domain>.npy     --cache mmap frame cache of one domain, with cache_<domain>.json
    eval.json              an evaluation the user saved there (shown by the report)
    weights.safetensors, state.pt, data.json   runs of the old layout only

Step folders and preview files are named ``step_`` and the step with seven digits
(:func:`step_name`) and parsed by :func:`parse_step` alone. Every other module names a
file of a run folder through this one; ``tests/test_layout.py`` checks that no other file
of ``retarget/`` spells one of these names.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Optional

from retarget.atomic import atomic_file
from retarget.config import AMP_USED, TrainConfig, from_dict, to_dict
from retarget.errors import RetargetError

CONFIG = "config.json"
METRICS = "metrics.jsonl"
LOSS_CURVE = "loss_curve.png"
PREVIEWS = "previews"  # folder of the preview grids and clips
SOURCE_CLIP = "source.mp4"  # inside previews/: the temporal preview's source frames
REPORT = "report.html"
EVAL = "eval.json"
TB = "tb"  # folder of the TensorBoard event files
CHECKPOINTS = "checkpoints"  # folder of the step folders
WEIGHTS = "weights.safetensors"
STATE = "state.pt"
DATA = "data.json"  # old runs only: the data info now lives in the weights metadata
ENHANCER_WEIGHTS = "enhancer.safetensors"  # an enhancer folder's network (retarget.run.enhancer)
GRID = ".png"  # suffix of a preview grid
CLIP = ".mp4"  # suffix of a temporal preview clip

_STEP_PREFIX = "step_"
_REPORT_PAGE = re.compile(r"report_([0-9]+)\.html")
_CACHE_PREFIX = "cache_"
_CACHE_SUFFIXES = (".npy", ".json")

#: Top-level files of a previous run that a fresh start (``--overwrite``) removes,
#: besides the frame caches (:func:`cache_files`); folders are cleared by their owners.
RUN_FILES = (WEIGHTS, STATE, CONFIG, DATA, METRICS, LOSS_CURVE)


# --- names ---------------------------------------------------------------------------


def step_name(step: int, suffix: str = "") -> str:
    """``step_0001234`` (+ ``suffix``): the name of the step folder or preview file of ``step``."""
    return f"{_STEP_PREFIX}{int(step):07d}{suffix}"


def parse_step(name: str, suffix: str = "") -> Optional[int]:
    """The step of a name made by :func:`step_name` with ``suffix``; None for any other name."""
    m = re.fullmatch(re.escape(_STEP_PREFIX) + r"([0-9]+)" + re.escape(suffix), name)
    return int(m.group(1)) if m else None


def checkpoint_dir(run_dir: str | os.PathLike[str], step: int) -> Path:
    """``RUN/checkpoints/step_NNNNNNN``: where the checkpoint of ``step`` lives (existing or not)."""
    return Path(run_dir) / CHECKPOINTS / step_name(step)


def preview_file(step: int, suffix: str = GRID) -> str:
    """``previews/step_N.png`` (or ``.mp4`` with ``suffix=CLIP``), relative to the run folder (a link's target)."""
    return f"{PREVIEWS}/{step_name(step, suffix)}"


def source_clip_file() -> str:
    """``previews/source.mp4``, relative to the run folder."""
    return f"{PREVIEWS}/{SOURCE_CLIP}"


def report_page(page: int) -> str:
    """The report page ``page`` (1-based): ``report.html``, then ``report_2.html``..."""
    return REPORT if page == 1 else f"report_{int(page)}.html"


def report_pages(run_dir: str | os.PathLike[str]) -> dict[int, Path]:
    """Every report page in ``run_dir`` by its number (report.html is 1)."""
    run_dir = Path(run_dir)
    pages = {1: run_dir / REPORT} if (run_dir / REPORT).exists() else {}
    for p in run_dir.glob("report_*.html"):
        m = _REPORT_PAGE.fullmatch(p.name)
        if m:
            pages[int(m.group(1))] = p
    return pages


def cache_file(domain: str) -> str:
    """``cache_<domain>.npy``: the ``--cache mmap`` frame cache of a domain (its key beside it as ``.json``)."""
    return f"{_CACHE_PREFIX}{domain}{_CACHE_SUFFIXES[0]}"


def cache_files(run_dir: str | os.PathLike[str]) -> list[Path]:
    """The frame-cache files in ``run_dir``, of any domain."""
    run_dir = Path(run_dir)
    return sorted(p for s in _CACHE_SUFFIXES for p in run_dir.glob(f"{_CACHE_PREFIX}*{s}") if p.is_file())


def run_files(run_dir: str | os.PathLike[str]) -> list[Path]:
    """The top-level files of a previous run in ``run_dir`` that a fresh start removes (existing or not)."""
    run_dir = Path(run_dir)
    return [run_dir / name for name in RUN_FILES] + cache_files(run_dir)


# --- metrics.jsonl ---------------------------------------------------------------------


def parse_record(line: str | bytes) -> Optional[dict[str, Any]]:
    """One line of ``metrics.jsonl`` as a record with a numeric ``step``; None for a damaged or foreign line."""
    try:
        rec = json.loads(line)
    except ValueError:  # a line cut short by a crash (bytes that are not UTF-8 included)
        return None
    if not isinstance(rec, dict):
        return None
    step = rec.get("step")
    return rec if isinstance(step, (int, float)) and not isinstance(step, bool) else None


def read_metrics(run_dir: str | os.PathLike[str], upto: Optional[float] = None) -> list[dict[str, Any]]:
    """Every readable record of ``metrics.jsonl``, in file order; [] without the file.

    Args:
        run_dir: the run folder.
        upto: keep only records of steps up to this one (a resume redoes the later ones).
    """
    path = Path(run_dir) / METRICS
    try:
        with open(path, "rb") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    records = (parse_record(line) for line in lines)
    return [r for r in records if r is not None and (upto is None or r["step"] <= upto)]


def write_metrics(run_dir: str | os.PathLike[str], records: list[dict[str, Any]]) -> None:
    """Replace ``metrics.jsonl`` with ``records``, atomically."""
    with atomic_file(Path(run_dir) / METRICS) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))


def append_metrics(run_dir: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Add one record to ``metrics.jsonl`` (flushed at once, so a crash loses at most that line)."""
    with open(Path(run_dir) / METRICS, "a") as f:
        f.write(json.dumps(record) + "\n")


class MetricsTail:
    """Follows ``metrics.jsonl`` as it grows: each :meth:`new_records` returns the complete lines added since.

    Args:
        run_dir: the run folder.
        skip_existing: treat the lines already in the file as read.
    """

    def __init__(self, run_dir: str | os.PathLike[str], skip_existing: bool = False) -> None:
        self.path = Path(run_dir) / METRICS
        self.offset = self.path.stat().st_size if skip_existing and self.path.exists() else 0

    def new_records(self) -> list[dict[str, Any]]:
        """The records of the complete lines written since the last call (all of them after a rewrite)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(0, os.SEEK_END)
                if f.tell() < self.offset:  # rewritten shorter: start over
                    self.offset = 0
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n") + 1  # only complete lines
        self.offset += end
        records = (parse_record(line) for line in chunk[:end].splitlines())
        return [r for r in records if r is not None]


# --- config.json -----------------------------------------------------------------------


def _config_json(path: Path) -> Any:
    return json.loads(path.read_text())


def read_config_dict(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``config.json`` as a plain dict; {} when absent or unreadable (for views that show what there is)."""
    try:
        data = _config_json(Path(run_dir) / CONFIG)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_train_config(run_dir: str | os.PathLike[str]) -> Optional[TrainConfig]:
    """The :class:`TrainConfig` the run was started with; None when ``config.json`` is absent.

    Raises:
        RetargetError: the file exists but is not a readable configuration (one line naming it).
    """
    path = Path(run_dir) / CONFIG
    if not path.exists():
        return None
    try:
        data = _config_json(path)
        if isinstance(data, dict) and AMP_USED not in data and data.get("amp") == "bf16":
            # written before --amp worked off CUDA, when bf16 was the default and meant
            # "bf16 on CUDA, float32 elsewhere": today's auto (a forced bf16 would now
            # run emulated on a CPU without native bf16)
            data["amp"] = "auto"
        return from_dict(TrainConfig, data)
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise RetargetError(f"{path}: invalid run configuration ({str(exc)[:120]})") from None


def write_config(run_dir: str | os.PathLike[str], cfg: TrainConfig, amp_used: Optional[str] = None) -> None:
    """Write ``config.json`` (the options that re-create the run), atomically.

    ``amp_used``: what ``--amp`` resolved to on the run's device ("bf16", "fp16" or
    "off"), recorded beside the options under :data:`retarget.config.AMP_USED` (which
    :func:`retarget.config.from_dict` ignores).
    """
    data = to_dict(cfg)
    if amp_used is not None:
        data[AMP_USED] = amp_used
    with atomic_file(Path(run_dir) / CONFIG) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
