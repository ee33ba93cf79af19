"""jug's API on taskflow: jugfiles run unchanged under `taskflow execute`.

While taskflow loads a taskfile, `import jug` gives this package (see
taskflow.jugalias), so a jugfile needs no edit; a notebook changes
`import jug` to `import taskflow.jug as jug`. Tasks are taskflow's (its
store, workers and hashes). docs/jug.md says what maps to what.
"""
from __future__ import annotations

from typing import Any

from ..errors import JugFeatureError
from . import compound, hash, hooks, io, jug, mapreduce, task, utils  # noqa: F401
from .barrier import barrier, bvalue
from .compound import CompoundTask, CompoundTaskGenerator
from .jug import init, is_jug_running, set_jugdir
from .task import CachedFunction, Task, TaskGenerator, Tasklet, iteratetask, return_tuple, value

__all__ = ["Task", "Tasklet", "TaskGenerator", "iteratetask", "return_tuple", "value", "CachedFunction",
           "CompoundTask", "CompoundTaskGenerator", "barrier", "bvalue", "set_jugdir", "init",
           "is_jug_running"]

_UNCOVERED = {
    "file_store": "taskflow keeps results in its own store folder: pass --store DIR",
    "dict_store": "taskflow keeps results in its own store folder: pass --store DIR",
    "redis_store": "taskflow needs only a shared folder, no server: pass --store DIR",
    "backends": "taskflow keeps results in its own store folder: pass --store DIR",
    "subcommands": "run the taskflow command instead",
    "main": "run the taskflow command (`taskflow execute FILE`)",
}


def __getattr__(name: str) -> Any:
    if name in _UNCOVERED:
        raise JugFeatureError(f"jug.{name}", _UNCOVERED[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
