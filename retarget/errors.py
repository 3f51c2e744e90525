"""User-facing errors.

Library code raises :class:`RetargetError` for anything a user can fix (bad input,
missing files, incompatible checkpoints). The CLI turns it into one line on stderr
and a non-zero exit, never a traceback.
"""

from __future__ import annotations


class RetargetError(Exception):
    """A problem the user can fix; the message is one line naming the file and the problem."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def system_error(exc: BaseException) -> str | None:
    """One line for a failure of the file system under a command, or None for anything else.

    An ``OSError`` with its file name (permission, read-only, disk full, a file where a
    folder should be) is said in one line naming what failed. Library code checks what it
    can beforehand (:mod:`retarget.atomic`, :mod:`retarget.outputs`); this is the last word
    (:func:`retarget.failures.error_line`), so that no such failure is a traceback.
    """
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, OSError) and (exc.filename or exc.strerror):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or text}"
    return None


def bug_line(exc: BaseException) -> str:
    """The one line of an unexpected error (a bug): what it was, and how to see the traceback."""
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return (
        f"internal error {type(exc).__name__}{': ' + text if text else ''} "
        "(a bug: please report it; RETARGET_DEBUG=1 shows the traceback)"
    )
