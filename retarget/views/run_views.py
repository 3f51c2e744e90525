"""What a person looks at during a run: ``report.html`` and, when installed, TensorBoard.

The training loop's hook (:class:`retarget.train.hooks.Views`) calls three methods of
:class:`RunViews`: :meth:`RunViews.logged` after a metrics line,
:meth:`RunViews.previewed` after a preview, and leaving the context at the end of the
run (normal, interrupted or failed). Only rank 0 makes one (``enabled=False`` elsewhere
does nothing). Everything here reads the run folder only.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

from retarget.run import layout
from retarget.views.tensorboard import Board, open_board


class RunViews:
    """The report page and the optional TensorBoard logger of one run.

    Args:
        run_dir: the run folder.
        start_step: steps done before this session (0, or the resumed step).
        enabled: False on ranks other than 0: every method does nothing.
    """

    def __init__(self, run_dir: Path, start_step: int = 0, enabled: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.board: Optional[Board] = open_board(self.run_dir, start_step) if enabled else None

    def logged(self) -> None:
        """A metrics line was appended: pass it to TensorBoard."""
        if self.board is not None:
            self.board.sync()

    def previewed(self) -> None:
        """A preview was written: refresh report.html and TensorBoard."""
        if not self.enabled:
            return
        from retarget.views.report import write_report

        write_report(self.run_dir)
        if self.board is not None:
            self.board.sync()

    def close(self) -> None:
        """Final refresh of report.html; close TensorBoard's event file."""
        if not self.enabled:
            return
        try:
            self.previewed()
        finally:
            if self.board is not None:
                self.board.close()
                self.board = None

    def __enter__(self) -> "RunViews":
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            self.close()
        except Exception:
            if exc_type is None:
                raise  # otherwise the run's own error is the one to report


def clear_views(run_dir: Path) -> None:
    """Remove the report pages and TensorBoard logs of a run (``--overwrite``)."""
    run_dir = Path(run_dir)
    for page in layout.report_pages(run_dir).values():
        page.unlink(missing_ok=True)
    shutil.rmtree(run_dir / layout.TB, ignore_errors=True)
