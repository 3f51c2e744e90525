"""The app's one folder (``retarget ui --root``): every path it reads or writes lies under it.

A path typed in the page (or picked from a list) is relative to the root; :meth:`Root.inside`
turns it into an absolute path and refuses, in one line, anything that leads out of the root:
an absolute path elsewhere, ``../`` steps, or a symbolic link (of the path or a folder above
it) that points outside. The listings name the videos, datasets and runs found under the root.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from retarget.errors import RetargetError
from retarget.outputs import MANIFEST, VIDEO_SUFFIXES
from retarget.run.layout import CHECKPOINTS, PREVIEWS, TB

#: The app's own folder under the root: training jobs, uploads, gradio's file cache.
APP_DIR = ".retarget-ui"
#: Folder levels below the root that the listings search.
DEPTH = 4
#: Folders never searched: a run's previews and TensorBoard logs, Python caches.
_SKIP = {PREVIEWS, TB, CHECKPOINTS, "__pycache__", "node_modules"}


class Root:
    """The folder the app works in.

    Args:
        folder: the ``--root`` folder; it must exist.

    Raises:
        RetargetError: ``folder`` is not an existing folder.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise RetargetError(f"--root {folder}: no such folder")
        self.path = path.resolve()

    @property
    def app_dir(self) -> Path:
        """``ROOT/.retarget-ui``: the app's own files (created on first use)."""
        return self.path / APP_DIR

    def inside(self, given: str | os.PathLike[str], what: str = "path") -> Path:
        """``given`` (relative to the root, or absolute) as an absolute path under the root.

        Symbolic links are resolved, so a link that points out of the root is refused like
        ``../``; the returned path keeps no ``..`` step.

        Raises:
            RetargetError: ``given`` is empty or leads outside the root (one line naming it).
        """
        text = str(given).strip()
        if not text:
            raise RetargetError(f"{what}: empty; give a path under {self.path}")
        if "\0" in text:
            raise RetargetError(f"{what} {text!r}: not a valid path")
        full = (self.path / Path(text).expanduser()).resolve()
        if full != self.path and not full.is_relative_to(self.path):
            raise RetargetError(f"{what} {text}: outside the app's folder {self.path}; give a path inside it")
        if full == self.app_dir or full.is_relative_to(self.app_dir):
            raise RetargetError(f"{what} {text}: the app's own folder; give another path")
        return full

    def rel(self, path: str | os.PathLike[str]) -> str:
        """``path`` relative to the root, ``/``-separated (the root itself is ``.``)."""
        full = Path(path).resolve()
        return full.relative_to(self.path).as_posix() if full.is_relative_to(self.path) else str(path)

    def _walk(self) -> Iterator[tuple[Path, list[str], list[str]]]:
        """``os.walk`` of the root, without hidden folders, run internals, or links out of the root."""
        for top, dirs, files in os.walk(self.path, followlinks=False):
            here = Path(top)
            depth = len(here.relative_to(self.path).parts)
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP and depth < DEPTH)
            yield here, dirs, sorted(files)

    def videos(self) -> list[str]:
        """Video files under the root (by suffix), relative paths; not those inside datasets or runs."""
        found = []
        for here, dirs, files in self._walk():
            if (here / MANIFEST).is_file():
                dirs[:] = []
                continue
            videos = [here / f for f in files if Path(f).suffix.lower() in VIDEO_SUFFIXES]
            found += [self.rel(v) for v in videos if v.resolve().is_relative_to(self.path)]
        return found

    def datasets(self) -> list[str]:
        """Dataset folders (``retarget extract`` output) under the root, relative paths."""
        found = []
        for here, dirs, _ in self._walk():
            if (here / MANIFEST).is_file():
                found.append(self.rel(here))
                dirs[:] = []
        return found
