"""Any exception as the one line a user reads, and the exit status that goes with it.

The CLI, the app and a batch render's table say every failure the same way: a
:class:`~retarget.errors.RetargetError` is its own line (its exit status); memory
running out (:func:`retarget.budget.out_of_memory`) or the file system failing
(:func:`retarget.errors.system_error`) is one line naming what failed (status 1);
anything else is a bug, said with how to see its traceback (status 3).
"""

from __future__ import annotations

from retarget.budget import out_of_memory
from retarget.errors import RetargetError, bug_line, system_error

#: The exit status of an unexpected error (a bug).
BUG_STATUS = 3


def error_line(exc: BaseException) -> tuple[str, int]:
    """``(line, exit status)`` for ``exc``; the line has no ``error:`` prefix and no newline."""
    if isinstance(exc, RetargetError):
        return str(exc), exc.exit_code
    known = out_of_memory(exc)
    if known is not None:
        return str(known), known.exit_code
    line = system_error(exc)
    return (line, 1) if line is not None else (bug_line(exc), BUG_STATUS)
