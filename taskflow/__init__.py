"""taskflow: task graphs for batch clusters, coordinated through a shared folder.

This module is the public API and nothing else. No name here is also the name of
one of taskflow's modules, so `taskflow.status` is always the function, never
the module behind it (that one is taskflow.statusreport).
"""
import typing as _typing

from ._version import __version__
from .blocks import map, mapreduce
from .errors import (CorruptResultError, ExitCode, KeyFileError, ResultMissingError, SchedulerError, StoreAccessError,
                     StoreError, TaskDeclarationError, TaskFailedError, TaskfileError, TaskflowError,
                     UnhashableArgumentError, UnsignedResultError, UntrustedResultError, UsageError)
from .results import value
from .task import Task, TaskElement, TaskGenerator, defaults, iteratetask
from .taskfile import barrier, bvalue, init

if _typing.TYPE_CHECKING:
    from .statusreport import status

__all__ = [
    "__version__", "Task", "TaskElement", "TaskGenerator", "iteratetask", "value", "barrier", "bvalue",
    "defaults", "map", "mapreduce", "init", "status",
    "ExitCode", "TaskflowError", "UsageError", "TaskfileError", "TaskDeclarationError", "UnhashableArgumentError",
    "StoreError", "StoreAccessError", "UntrustedResultError", "ResultMissingError", "CorruptResultError",
    "TaskFailedError", "SchedulerError", "UnsignedResultError", "KeyFileError",
]


def __getattr__(name: str) -> _typing.Any:
    # status is imported when first asked for: a worker, which imports this package, never needs it.
    if name == "status":
        from .statusreport import status
        globals()["status"] = status
        return status
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
