"""What `retries=N, retry_on=(ExceptionType, ...)` declare: a task that raised runs again.

Declared on a TaskGenerator or a Task, never part of the hash: allowing more
attempts must not make a finished task run again. The worker that holds the
claim runs the task again at once, in the same claim, up to N more times while
the exception is an instance of one of `retry_on` (every Exception by
default; never KeyboardInterrupt or SystemExit), and records the attempts
with the result or the failure (worker/retries.py).
"""
from __future__ import annotations

from typing import Any

from .errors import TaskDeclarationError


class Retry:
    """How often a task that raised runs again, and on which exceptions."""

    __slots__ = ("times", "on")

    def __init__(self, times: int, on: tuple[type[BaseException], ...]):
        self.times = times
        self.on = on

    def wants(self, exception: BaseException, tried: int) -> bool:
        """Whether a task that raised `exception` after `tried` earlier retries runs again."""
        return tried < self.times and isinstance(exception, self.on)

    def __repr__(self) -> str:
        return f"Retry({self.times}, on={tuple(t.__name__ for t in self.on)})"


def parse(retries: Any, retry_on: Any, where: str) -> Retry | None:
    """The Retry declared by `retries=` and `retry_on=`; None for none. TaskDeclarationError naming
    `where` when either is not what it should be."""
    if retries is None and retry_on is None:
        return None
    if retries is None:
        raise TaskDeclarationError(f"{where}: retry_on= needs retries=N, how often to run the task again")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise TaskDeclarationError(f"{where}: retries= must be a whole number of at least 0, got {retries!r}")
    on = (Exception,) if retry_on is None else retry_on
    if isinstance(on, type):
        on = (on,)
    if not (isinstance(on, tuple) and on and all(isinstance(t, type) and issubclass(t, Exception) for t in on)):
        raise TaskDeclarationError(f"{where}: retry_on= must be an exception class or a tuple of them, "
                                   f"got {retry_on!r}")
    return Retry(retries, on) if retries else None
