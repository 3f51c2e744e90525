"""Write outputs under a temporary name and rename them when complete.

An interrupted command must never leave a half-written file or folder under the
name the user asked for. Temporary names live beside the target (same file
system, so the final ``os.replace`` is atomic) and start with a dot so they are
easy to recognise and clean.

This module is the one place that names temporary outputs. A name records the
writer's process id and a tag of its host, ``.<target>.<pid>-<host>.<random>.tmp<suffix>``
(a folder being replaced is parked as ``.<target>.<pid>-<host>.old``), so a later
command can tell a leftover of a killed writer (``kill -9``, a power cut) from the
temporary file of one still running: :func:`remove_stale_temps` removes the former
and never touches anything else.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import socket
import tempfile
import zlib
from pathlib import Path
from typing import Iterator

from retarget.errors import RetargetError

# Another host writing into the same shared folder has its own process ids: only
# leftovers of this host are ever judged by pid.
_HOST = f"{zlib.crc32(socket.gethostname().encode()) & 0xFFFFFF:06x}"
_STALE = re.compile(
    r"^\.(?P<target>.+)\.(?P<pid>[0-9]+)-(?P<host>[0-9a-f]{6})"
    r"\.(?:(?P<temp>[a-z0-9_]{8}\.tmp(?:\.[A-Za-z0-9_]+)?)|(?P<old>old))$"
)


def _tag() -> str:
    # Read at each call: a forked worker has its own pid.
    return f"{os.getpid()}-{_HOST}"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (unknown counts as alive)."""
    if pid == os.getpid():
        return True
    if os.name != "posix" or pid <= 0:
        return True  # os.kill(pid, 0) would not be a harmless probe elsewhere
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove leftovers of killed writers in ``folder``; return what was removed.

    Only names made by :func:`atomic_file` / :func:`atomic_dir` on this host whose
    process is gone are touched: temporary files and folders are deleted; a folder
    parked by an interrupted :func:`atomic_dir` replace is deleted when its target
    exists, and renamed back to its target when the target is missing (the kill fell
    between the two renames). Anything else, and anything that cannot be removed, is
    left alone. A missing or unreadable folder yields ``[]``.
    """
    folder = Path(folder)
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    removed: list[Path] = []
    for name in sorted(names):
        m = _STALE.match(name)
        if not m or m["host"] != _HOST or pid_alive(int(m["pid"])):
            continue
        path = folder / name
        try:
            if m["old"] and not (folder / m["target"]).exists():
                os.replace(path, folder / m["target"])
            elif path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed


def clean_stale_temps(*folders: str | os.PathLike[str], quiet: bool = False) -> list[Path]:
    """:func:`remove_stale_temps` in each folder, with one console line per folder that
    had leftovers (extract, render and train call it on start)."""
    removed: list[Path] = []
    for folder in folders:
        gone = remove_stale_temps(folder)
        if gone and not quiet:
            from retarget.progress import console  # progress is a leaf; imported late to keep this module light

            names = ", ".join(p.name for p in gone[:3]) + (f" and {len(gone) - 3} more" if len(gone) > 3 else "")
            console.print(
                f"removed {len(gone)} temporary file(s) of interrupted runs in {folder}: {names}", markup=False
            )
        removed += gone
    return removed


# errno -> what a user reads after "<path>: cannot write: "
_WRITE_ERRORS = {
    errno.ENOSPC: "no space left on device; free some space or write elsewhere",
    errno.EDQUOT: "disk quota exceeded; free some space or write elsewhere",
    errno.EROFS: "read-only file system; write elsewhere",
    errno.EACCES: "permission denied; write elsewhere or fix the folder's permissions",
    errno.EPERM: "operation not permitted; write elsewhere or fix the folder's permissions",
    errno.EFBIG: "file too large for this file system",
}


def _errno_of(exc: BaseException, path: Path) -> int | None:
    """The errno behind a failed write, from whatever layer reported it."""
    if isinstance(exc, OSError):
        return exc.errno
    # Rust I/O errors (safetensors' SafetensorError) carry it in the text.
    m = re.search(r"\(os error (\d+)\)", str(exc))
    if m:
        return int(m.group(1))
    # torch.save on a full disk says only "unexpected pos N vs M" or "file write
    # failed": ask the disk.
    if isinstance(exc, RuntimeError) and ("unexpected pos" in str(exc) or "write failed" in str(exc)):
        with contextlib.suppress(OSError):
            if shutil.disk_usage(path.parent if path.parent.exists() else Path.cwd()).free < _NEARLY_FULL:
                return errno.ENOSPC
    return None


_NEARLY_FULL = 1 << 20  # bytes free below which a write that failed without a reason is blamed on space


def write_error(path: str | os.PathLike[str], exc: BaseException) -> RetargetError | None:
    """A one-line :class:`RetargetError` for an error met while writing ``path``.

    Understands OSError (PyAV's ``av.error.OSError`` included), errors that quote an OS
    error number (safetensors: "... (os error 28)"), and a RuntimeError raised while the
    disk is full (torch.save: "unexpected pos"). Returns None when the error does not
    say the destination cannot take the output (a bug or an input problem, which keeps
    its traceback).
    """
    code = _errno_of(exc, Path(path)) or 0
    why = _WRITE_ERRORS.get(code)
    # A file in the way of the folder (ENOTDIR), or a folder that exists but takes no
    # files (ENOENT from /proc and the like); a missing folder keeps its own message.
    special = code in (errno.ENOTDIR, errno.EEXIST) or (code == errno.ENOENT and Path(path).parent.is_dir())
    if why is None and special and _beside(exc, Path(path)):
        why = "its folder cannot hold files (not a folder, or a special file system); write elsewhere"
    return RetargetError(f"{path}: cannot write: {why}") if why else None


def _beside(exc: BaseException, path: Path) -> bool:
    """Whether an OSError names ``path``, a file beside it (a temporary name) or one of its folders."""
    name = getattr(exc, "filename", None)
    if not name:
        return False
    named = Path(os.fsdecode(name)).absolute()
    target = path.absolute()
    return named == target or named.parent == target.parent or named in target.parents


@contextlib.contextmanager
def write_errors(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn a full disk, a read-only folder or a denied write inside the block into
    one :func:`write_error` line naming ``path``; other exceptions pass unchanged."""
    try:
        yield
    except Exception as exc:
        err = write_error(path, exc)
        if err is None:
            raise
        raise err from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _chmod_default(path: Path, mode: int) -> None:
    # mkstemp/mkdtemp create private (0600/0700) entries; a finished output should
    # get the permissions any normally created file or folder would.
    os.chmod(path, mode & ~_umask())


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike[str], keep_suffix: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it onto ``target``.

    Args:
        target: final file path. Its parent folder must exist and be writable.
        keep_suffix: end the temporary name with the target's suffix, for writers that
            pick a format from the extension (PyAV, OpenCV).

    On any exception (KeyboardInterrupt included) the temporary file is removed and
    ``target`` is left untouched.
    """
    target = Path(target)
    suffix = target.suffix if keep_suffix else ""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.{_tag()}.", suffix=".tmp" + suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    _chmod_default(tmp, 0o666)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str], replace: bool = False, durable: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``target``; on success it becomes ``target``.

    Args:
        target: final folder path.
        replace: remove an existing ``target`` once the new one is complete. Without it
            an existing target raises ``FileExistsError`` at the rename.
        durable: flush the files and the folder to the disk (fsync) before the rename,
            and the parent folder after it, so that the rename also survives a crash of
            the operating system or a power cut, not only the death of the process.

    On any exception the temporary folder is deleted and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{_tag()}.", suffix=".tmp", dir=target.parent))
    _chmod_default(tmp, 0o777)
    try:
        yield tmp
        if durable:
            for f in sorted(tmp.rglob("*")):
                if f.is_file() and not f.is_symlink():
                    fsync_path(f)
            fsync_path(tmp)
        if target.exists():
            if not replace:
                raise FileExistsError(f"{target} already exists")
            old = target.with_name(f".{target.name}.{_tag()}.old")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
        if durable:
            fsync_path(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a file's or a folder's data and metadata to the disk (``os.fsync``).

    Folders are opened read-only, which POSIX systems allow; where a folder cannot be
    opened or synced (Windows, some network file systems) this does nothing for it.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if path.is_dir():
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not path.is_dir():
            raise
    finally:
        os.close(fd)


def discard(path: str | os.PathLike[str]) -> None:
    """Delete the folder (or file) ``path`` so that no partial copy is ever left under its name.

    It is first renamed to a temporary name of this module (so a kill during the
    deletion leaves a leftover :func:`remove_stale_temps` removes), then deleted. A
    missing ``path`` is fine.
    """
    path = Path(path)
    gone = path.with_name(f".{path.name}.{_tag()}.{secrets.token_hex(4)}.tmp")
    try:
        os.replace(path, gone)
    except FileNotFoundError:
        return
    if gone.is_dir() and not gone.is_symlink():
        shutil.rmtree(gone, ignore_errors=True)
    else:
        gone.unlink(missing_ok=True)
