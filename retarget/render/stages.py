"""Three concurrent stages joined by bounded queues: produce -> transform -> consume.

``produce`` (decode and prepare) and ``consume`` (compose and encode) run in worker
threads, ``transform`` (the network) in the calling thread, so a Ctrl-C lands where
the heavy work is and stops everything. PyAV, OpenCV and torch release the GIL in
their heavy parts, so the stages overlap; the bounded queues keep memory constant in
the length of the input.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from typing import Any, Callable, Iterable, Optional, TypeVar

A = TypeVar("A")
B = TypeVar("B")

_END = object()
_POLL = 0.1  # seconds between checks of the stop flag while a queue is full/empty


def _yield_to_main() -> None:
    """Lower this thread's CPU priority a little (Linux: nice is per thread).

    On a machine with few cores the network's thread pool is the bottleneck; its
    threads wait for each other at every layer, so a decode or encode thread taking a
    core at the wrong moment stalls all of them. Niced helpers still get the CPU they
    need (the network leaves gaps) but yield at those moments. Threads the helpers
    start (FFmpeg's decoder and encoder threads) inherit the value.
    """
    nice = int(os.environ.get("RETARGET_RENDER_NICE", "5"))
    if nice <= 0 or not hasattr(os, "setpriority") or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
    except OSError:  # not permitted or not supported: run at normal priority
        pass


class _Stopped(Exception):
    """Raised inside a stage when another stage failed."""


class _Channel:
    def __init__(self, depth: int, stop: threading.Event) -> None:
        self.q: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.stop = stop

    def put(self, item: Any) -> None:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                self.q.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def get(self) -> Any:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                return self.q.get(timeout=_POLL)
            except queue.Empty:
                continue


# Longer than 60 lines on purpose: thread setup, error propagation and shutdown of the stages belong together.
def run_stages(
    produce: Iterable[A],
    transform: Callable[[A], B],
    consume: Callable[[B], None],
    depth: int = 2,
) -> None:
    """Run ``consume(transform(item))`` for every item of ``produce``, the three overlapped.

    Args:
        produce: iterable consumed in a worker thread (e.g. decoded frame batches).
        transform: applied in the calling thread, in order.
        consume: applied in a second worker thread, in order.
        depth: items each queue holds at most (memory bound).

    The first exception raised by any stage (KeyboardInterrupt included) stops the
    others and is re-raised here once every thread has finished.
    """
    stop = threading.Event()
    to_main = _Channel(depth, stop)
    to_sink = _Channel(depth, stop)
    errors: list[BaseException] = []
    lock = threading.Lock()

    def fail(exc: BaseException) -> None:
        with lock:
            errors.append(exc)
        stop.set()

    def source() -> None:
        _yield_to_main()
        try:
            for item in produce:
                to_main.put(item)
            to_main.put(_END)
        except _Stopped:
            pass
        except BaseException as exc:  # re-raised in the calling thread
            fail(exc)

    def sink() -> None:
        _yield_to_main()
        try:
            while True:
                item = to_sink.get()
                if item is _END:
                    return
                consume(item)
        except _Stopped:
            pass
        except BaseException as exc:
            fail(exc)

    threads = [
        threading.Thread(target=source, name="render-decode", daemon=True),
        threading.Thread(target=sink, name="render-encode", daemon=True),
    ]
    for t in threads:
        t.start()
    main_error: Optional[BaseException] = None
    try:
        while True:
            item = to_main.get()
            if item is _END:
                break
            to_sink.put(transform(item))
        to_sink.put(_END)
        threads[1].join()
    except _Stopped:
        pass
    except BaseException as exc:
        main_error = exc
        stop.set()
    finally:
        for t in threads:
            while t.is_alive():
                t.join(timeout=_POLL)
        if errors and main_error is None:
            main_error = errors[0]
    if main_error is not None:
        raise main_error
