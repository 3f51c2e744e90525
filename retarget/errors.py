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
