"""Errors a user can cause and the tool explains in one line (exit code 2)."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the input the user gave: the message says what to do about it."""

    def __init__(self, message: str, *, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
