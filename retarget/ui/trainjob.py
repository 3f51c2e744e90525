"""``python -m retarget.ui.trainjob JOB ARGS...``: run ``retarget ARGS`` and record its exit status in JOB.

The process the app starts for a training (:mod:`retarget.ui.jobs`). It is the ``retarget``
command itself, run in this process (so Stop's SIGINT reaches the trainer), and when it
ends its exit status goes into the job file, so that a page opened later can say how it ended.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    """Run ``retarget argv[1:]``; write its status into the job file ``argv[0]``; return the status."""
    from retarget.ui.jobs import read_job, write_job

    # Stop is a SIGINT. A process started in the background of a shell inherits SIGINT ignored
    # (`retarget ui &`, CI scripts), and then a Stop before the trainer installs its own handler
    # would be lost and the training would go on: take Python's Ctrl-C back first.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    path = Path(argv[0])
    try:
        from retarget.cli import main as cli_main  # torch loads here: a Stop pressed meanwhile is a stop too

        cli_main(argv[1:])
        rc = 0
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        rc = 130
    job = read_job(path)
    for _ in range(50):  # the app writes the job file just after starting this process
        if job is not None:
            break
        time.sleep(0.1)
        job = read_job(path)
    if job is not None and job.pid == os.getpid():
        write_job(path, dataclasses.replace(job, rc=rc))
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
