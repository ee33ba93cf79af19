"""taskflow: task graphs for batch clusters, coordinated through a shared folder.

This module is the public API and nothing else. No name here is also the name of
one of taskflow's modules, so `taskflow.status` is always the function, never
the module behind it (that one is taskflow.statusreport).
"""
from ._version import __version__
from .blocks import map, mapreduce
from .errors import (CorruptResultError, ExitCode, ResultMissingError, SchedulerError, StoreAccessError, StoreError,
                     TaskDeclarationError, TaskFailedError, TaskfileError, TaskflowError, UnhashableArgumentError,
                     UsageError)
from .results import value
from .statusreport import status
from .task import Task, TaskElement, TaskGenerator, defaults, iteratetask
from .taskfile import barrier, bvalue, init

__all__ = [
    "__version__", "Task", "TaskElement", "TaskGenerator", "iteratetask", "value", "barrier", "bvalue",
    "defaults", "map", "mapreduce", "init", "status",
    "ExitCode", "TaskflowError", "UsageError", "TaskfileError", "TaskDeclarationError", "UnhashableArgumentError",
    "StoreError", "StoreAccessError", "ResultMissingError", "CorruptResultError", "TaskFailedError",
    "SchedulerError",
]
