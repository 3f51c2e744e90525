"""Shared rich progress bars, so every long command reports alike."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator, Optional

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

#: Progress and summaries go to stderr so stdout stays clean for scripting. Messages
#: are not wrapped: a path broken over two lines can't be copied or grepped.
console = Console(stderr=True, soft_wrap=True)
#: The bars made in a thread inside :func:`watching` (per thread: the app follows its own calls).
_watched = threading.local()


@contextmanager
def watching(bars: Optional[list[Progress]] = None) -> Iterator[list[Progress]]:
    """Collect in ``bars`` (a new list when None) every bar :func:`make_progress` makes in this thread
    while inside, drawn or not.

    For a caller that shows progress its own way (the app's page reads the bars' tasks),
    whatever command runs inside.
    """
    outer = getattr(_watched, "bars", None)
    _watched.bars = bars = [] if bars is None else bars
    try:
        yield bars
    finally:
        _watched.bars = outer


class RateColumn(ProgressColumn):
    """Completed units per second, e.g. ``31.2 frames/s``."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text(f"- {self.unit}/s", style="cyan")
        return Text(f"{speed:.1f} {self.unit}/s", style="cyan")


def make_progress(unit: str = "frames", extra: str = "") -> Progress:
    """A progress bar: description, bar, done/total, rate in ``unit``/s, elapsed, ETA.

    Args:
        unit: what is counted ("frames", "it").
        extra: a rich format string for one more field, e.g. ``"{task.fields[losses]}"``;
            the task must then be created with that field.

    The bar draws only on a terminal; in CI logs and pipes it stays silent, and the
    commands print their summaries instead.
    """
    columns: list[ProgressColumn] = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    if extra:
        columns.append(TextColumn(extra))
    bar = Progress(*columns, console=console, disable=not console.is_terminal)
    sink = getattr(_watched, "bars", None)
    if sink is not None:
        sink.append(bar)
    return bar
