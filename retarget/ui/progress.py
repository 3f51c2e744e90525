"""Progress of a library call, for the page's progress bar.

The library draws its bars with :func:`retarget.progress.make_progress` (rich, on a terminal
only). :func:`follow` runs a library function in a worker thread inside
:func:`retarget.progress.watching`, which collects the bars it makes, and reports how far
the newest one is. The call, its result and its errors are the library's.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional, TypeVar

from rich.progress import Progress

from retarget.progress import watching

R = TypeVar("R")


def fraction(bars: list[Progress]) -> Optional[tuple[float, str]]:
    """How far the newest bar is, as (fraction done, its description); None before any bar or total."""
    if not bars:
        return None
    tasks = list(bars[-1].tasks)
    done = sum(t.completed for t in tasks)
    total = sum(t.total or 0 for t in tasks)
    if not tasks or total <= 0:
        return None
    return min(1.0, done / total), tasks[-1].description


def follow(fn: Callable[[], R], report: Callable[[float, str], None], every: float = 0.25) -> R:
    """``fn()`` in a worker thread; ``report(fraction, description)`` each ``every`` seconds while it runs.

    Returns what ``fn`` returns and raises what it raises.
    """
    bars: list[Progress] = []  # the bars the call makes, read here while it runs
    box: dict[str, Any] = {}

    def work() -> None:
        with watching(bars):
            try:
                box["result"] = fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                box["error"] = exc

    worker = threading.Thread(target=work, name="retarget-ui-call", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(every)
        now = fraction(bars)
        if now is not None:
            report(*now)
    if "error" in box:
        raise box["error"]
    return box["result"]
