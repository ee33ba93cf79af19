"""Executors: what runs a worker's claimed tasks (base.py says what one must do), by name."""
from __future__ import annotations

from ..errors import UsageError
from .base import Done, Executor, Failure, InputGone, InputUnreadable, Job, run_task
from .ipp import IppExecutor
from .local import LocalExecutor

DEFAULT = "local"

# Every executor, by the name `execute` knows it by.
EXECUTORS: dict[str, type[Executor]] = {LocalExecutor.name: LocalExecutor, IppExecutor.name: IppExecutor}


def executor_class(name: str) -> type[Executor]:
    """The executor called `name`; UsageError when there is none."""
    try:
        return EXECUTORS[name]
    except KeyError:
        raise UsageError(f"unknown executor {name!r} (known: {', '.join(sorted(EXECUTORS))})") from None


__all__ = ["DEFAULT", "EXECUTORS", "Done", "Executor", "Failure", "InputGone", "InputUnreadable", "Job",
           "LocalExecutor", "executor_class", "run_task"]
