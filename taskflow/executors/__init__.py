"""Executors: what runs a worker's claimed tasks (base.py says what one must do), by name."""
from __future__ import annotations

from ..errors import UsageError
from .base import Done, Executor, Failure, InputGone, InputUnreadable, Job, Setup, run_task
from .local import LocalExecutor

DEFAULT = "local"

# Every executor, by the name `execute` knows it by: its class, or "module:Class" for one imported
# only when used (every worker imports this registry; few use ipyparallel).
EXECUTORS: dict[str, type[Executor] | str] = {LocalExecutor.name: LocalExecutor,
                                              "ipp": "taskflow.executors.ipp:IppExecutor"}


def executor_class(name: str) -> type[Executor]:
    """The executor called `name`; UsageError when there is none."""
    try:
        found = EXECUTORS[name]
    except KeyError:
        raise UsageError(f"unknown executor {name!r} (known: {', '.join(sorted(EXECUTORS))})") from None
    if isinstance(found, str):
        import importlib

        module, _, attribute = found.partition(":")
        found = EXECUTORS[name] = getattr(importlib.import_module(module), attribute)
    return found


__all__ = ["DEFAULT", "EXECUTORS", "Done", "Executor", "Failure", "InputGone", "InputUnreadable", "Job",
           "LocalExecutor", "Setup", "executor_class", "run_task"]
