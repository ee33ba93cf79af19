"""taskflow: task graphs for batch clusters, coordinated through a shared folder."""
from ._version import __version__
from .errors import (CorruptResultError, ResultMissingError, SchedulerError, StoreAccessError, StoreError,
                     TaskDeclarationError, TaskFailedError, TaskfileError, TaskflowError, UnhashableArgumentError,
                     UsageError)
from .mapreduce import map, mapreduce
from .results import value
from .status import status
from .task import Task, TaskElement, TaskGenerator, iteratetask
from .taskfile import barrier, bvalue, init

__all__ = [
    "__version__", "Task", "TaskElement", "TaskGenerator", "iteratetask", "value", "barrier", "bvalue",
    "mapreduce", "init", "status",
    "TaskflowError", "UsageError", "TaskfileError", "TaskDeclarationError", "UnhashableArgumentError",
    "StoreError", "StoreAccessError", "ResultMissingError", "CorruptResultError", "TaskFailedError",
    "SchedulerError",
]
