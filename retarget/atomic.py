"""Write outputs under a temporary name and rename them when complete.

An interrupted command must never leave a half-written file or folder under the
name the user asked for. Temporary names live beside the target (same file
system, so the final ``os.replace`` is atomic) and start with a dot so they are
easy to recognise and clean.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


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
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + suffix, dir=target.parent)
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
def atomic_dir(target: str | os.PathLike[str], replace: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``target``; on success it becomes ``target``.

    Args:
        target: final folder path.
        replace: remove an existing ``target`` once the new one is complete. Without it
            an existing target raises ``FileExistsError`` at the rename.

    On any exception the temporary folder is deleted and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    _chmod_default(tmp, 0o777)
    try:
        yield tmp
        if target.exists():
            if not replace:
                raise FileExistsError(f"{target} already exists")
            old = target.with_name(f".{target.name}.old.{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
