"""Trainings started from the page: each one its own process, found again by its run folder.

A training is ``python -m retarget.ui.trainjob JOB train ...``: the ``retarget train`` command
in a new session (``start_new_session``), so a reload, a closed tab or the app's own end
never stops it. Its job file ``ROOT/.retarget-ui/jobs/<run>.json`` names the run folder, the
process id, the command and its log; the job process writes its exit status there when it
ends. A page finds a run's training by that file (the pid checked with
:func:`retarget.atomic.pid_alive`), not by anything held in the app's memory.

Stop sends SIGINT: the trainer finishes its step, saves a checkpoint and exits (130), as
Ctrl-C does on the command line; ``retarget train --resume RUN`` continues it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from retarget.atomic import atomic_file, pid_alive
from retarget.errors import RetargetError

JOBS = "jobs"
#: Handles of the trainings this app process started, reaped so that a finished one is no zombie.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Job:
    """One training started from the page.

    Attributes:
        run: the run folder (absolute).
        pid: the training's process id.
        args: the ``retarget`` arguments it runs (``train ...``).
        log: its stderr and stdout (absolute path).
        started: when it started (seconds since the epoch).
        rc: its exit status once it ended (130: stopped by Stop); None while it runs or unknown.
    """

    run: str
    pid: int
    args: list[str]
    log: str
    started: float
    rc: Optional[int] = None


def _key(run: Path) -> str:
    """A file name for ``run``: its folder name and a hash of its whole path."""
    digest = hashlib.sha1(str(run).encode("utf-8", "surrogateescape")).hexdigest()[:10]
    return f"{run.name[:40]}-{digest}"


def job_file(app_dir: Path, run: Path) -> Path:
    """``APP_DIR/jobs/<run>-<hash>.json``: the job file of the run folder ``run``."""
    return app_dir / JOBS / f"{_key(run)}.json"


def write_job(path: Path, job: Job) -> None:
    """Write ``job`` to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(asdict(job), indent=2) + "\n", encoding="utf-8")


def read_job(path: Path) -> Optional[Job]:
    """The job in ``path``; None when absent or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Job(**data)
    except (OSError, ValueError, TypeError):
        return None


def find_job(app_dir: Path, run: Path) -> Optional[Job]:
    """The newest training started from the page for ``run``; None when there is none."""
    return read_job(job_file(app_dir, run))


def running(job: Optional[Job]) -> bool:
    """Whether ``job``'s process still runs (a finished child of this app is reaped first)."""
    if job is None or job.rc is not None:
        return False
    child = _children.get(job.pid)
    if child is not None and child.poll() is not None:
        _children.pop(job.pid, None)
        return False
    return pid_alive(job.pid) and not _zombie(job.pid)


def _zombie(pid: int) -> bool:
    """Whether ``pid`` is a zombie (ended, not yet reaped by a parent other than this app)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def start(app_dir: Path, run: Path, args: list[str], cwd: Path) -> Job:
    """Start ``retarget ARGS`` (a ``train`` command for ``run``) as its own process; return its job.

    Raises:
        RetargetError: the run is already training from the page.
    """
    path = job_file(app_dir, run)
    if running(read_job(path)):
        raise RetargetError(f"{run}: is training already; stop it first")
    path.parent.mkdir(parents=True, exist_ok=True)
    log = path.with_suffix(".log")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "retarget.ui.trainjob", str(path), *args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    _children[child.pid] = child
    job = Job(run=str(run), pid=child.pid, args=list(args), log=str(log), started=time.time())
    write_job(path, job)
    return job


def stop(app_dir: Path, run: Path) -> Job:
    """Ask the training of ``run`` to save a checkpoint and stop (SIGINT, as Ctrl-C).

    Raises:
        RetargetError: no training of ``run`` is running.
    """
    job = find_job(app_dir, run)
    if not running(job):
        raise RetargetError(f"{run}: no training of this run is running")
    assert job is not None
    os.kill(job.pid, signal.SIGINT)
    return job


def last_error(job: Job) -> Optional[str]:
    """The last ``error:`` line of the job's log (the one line the command printed); None without one."""
    try:
        lines = Path(job.log).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    errors = [line.strip() for line in lines if line.strip().startswith("error:")]
    return errors[-1] if errors else None
