"""Shared rich progress bars, so every long command reports alike."""

from __future__ import annotations

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
    return Progress(*columns, console=console, disable=not console.is_terminal)
