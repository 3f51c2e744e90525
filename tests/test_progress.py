"""The shared progress bars: a caller can watch the bars a command makes in its own thread."""

from __future__ import annotations

import threading

from retarget.progress import make_progress, watching


def test_watching_collects_the_bars_made_in_its_thread_only():
    other: list = []
    with watching() as bars:
        first = make_progress("frames")
        worker = threading.Thread(target=lambda: other.append(make_progress("it")))
        worker.start()
        worker.join()
        with watching() as inner:  # nested: the inner one collects, the outer one resumes after
            second = make_progress("it")
        third = make_progress("it")
    assert bars == [first, third] and inner == [second]
    assert len(other) == 1 and other[0] not in bars
    make_progress("frames")  # outside: collected nowhere
    assert bars == [first, third]
