"""The data pipeline's two kinds of failure.

`DataError` is a mistake in what the user gave (a file, a format, a setting): it stops the command
with one line naming the bad value and what was expected. `UnreadableError` is one sample that
cannot be decoded: training replaces it, evaluation skips it, and both count it.
"""

from __future__ import annotations


class DataError(ValueError):
    """Bad input; the message is one line naming it and what was expected."""


class UnreadableError(Exception):
    """One video or frame folder could not be decoded (corrupt, truncated, unopenable)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, " ".join(reason.split())[:200]
        super().__init__(f"{path}: {self.reason}")
