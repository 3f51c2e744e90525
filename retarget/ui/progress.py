"""Progress of a library call, for the page's progress bar.

The library draws its bars with :func:`retarget.progress.make_progress` (rich, on a terminal
only). :func:`follow` runs a library function in a worker thread and reports the bars it
creates there: while the call runs, the modules that draw bars get a ``make_progress`` that
also hands each bar to the calling thread. Nothing else changes: the call, its result and
its errors are the library's.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any, Callable, Optional, TypeVar

from rich.progress import Progress

R = TypeVar("R")

#: The modules whose bars are followed (each imported ``make_progress`` by name).
MODULES = ("retarget.dataset.extract", "retarget.render.stream")

_local = threading.local()
_lock = threading.Lock()
_patched = False


def _install() -> None:
    """Wrap ``make_progress`` in :data:`MODULES` once: a bar made in a followed thread is recorded."""
    global _patched
    with _lock:
        if _patched:
            return
        for name in MODULES:
            module = importlib.import_module(name)
            original = module.make_progress

            def wrapped(*args: Any, _original: Callable[..., Progress] = original, **kwargs: Any) -> Progress:
                bar = _original(*args, **kwargs)
                sink = getattr(_local, "sink", None)
                if sink is not None:
                    sink.append(bar)
                return bar

            module.make_progress = wrapped
        _patched = True


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
    _install()
    bars: list[Progress] = []
    box: dict[str, Any] = {}

    def work() -> None:
        _local.sink = bars
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc
        finally:
            _local.sink = None

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
