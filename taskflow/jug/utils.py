"""jug.utils: identity, timed_path, CustomHash, jug_execute, cached_glob, sync_move."""
from __future__ import annotations

import glob as _glob
import os
import subprocess
from collections.abc import Callable
from typing import Any

from .. import task as core
from ..errors import JugFeatureError
from .keyview import JUG_HASH, key_view
from .task import CachedFunction, Task, TaskGenerator, Tasklet, resolve, value

__all__ = ["identity", "timed_path", "CustomHash", "jug_execute", "cached_glob", "glob_sort", "sync_move"]


def _identity(x: Any) -> Any:
    return x


def identity(x: Any) -> Any:
    """A task whose result is `x` (tasks and Tasklets are returned as they are)."""
    if isinstance(x, (core.Task, core.TaskElement, Tasklet)):
        return x
    return Task(_identity, x)


class CustomHash:
    """`CustomHash(obj, hash_function)`: `obj` reaches the task; `hash_function(obj)` (bytes) identifies it."""

    def __init__(self, obj: Any, hash_function: Callable[[Any], bytes]):
        self.obj = obj
        self.hash_function = hash_function

    def __jug_hash__(self) -> bytes:
        return self.hash_function(self.obj)

    def __jug_value__(self) -> Any:
        return value(self.obj)

    def _key_view(self) -> Any:
        digest = self.hash_function(self.obj)
        if isinstance(digest, str):
            digest = digest.encode("utf-8")
        # The tasks inside obj are still dependencies; only its plain values are left to the digest.
        return (JUG_HASH, "taskflow.jug.utils.CustomHash", digest, _tasks_only(self.obj))

    def _resolve(self, lookup: Callable) -> Any:
        return resolve(self.obj, lookup)

    def __repr__(self) -> str:
        return f"CustomHash({self.obj!r}, {self.hash_function!r})"


def _tasks_only(obj: Any) -> list:
    from .task import _tasks_in
    return _tasks_in(key_view(obj))


def hash_with_mtime_size(path: Any) -> bytes:
    """A digest of `path` with its file's modification time and size."""
    from .hash import hash_one, jug_scheme

    st = os.stat(path)
    if jug_scheme.get() is not None:
        # jug's own key: jug rebuilds the stat result from its tuple part, which holds whole seconds.
        return hash_one((path, os.stat_result(st).st_mtime, st.st_size))
    return hash_one((path, st.st_mtime, st.st_size))


def timed_path(path: Any) -> CustomHash:
    """`path`, hashed with its file's modification time and size, so changing the file makes new tasks."""
    return CustomHash(path, hash_with_mtime_size)


@TaskGenerator
def jug_execute(args: Any, check_exit: bool = True, run_after: Any = None, return_value: Any = None) -> Any:
    """Run a command (`subprocess.call(args)`); `run_after` and `return_value` only order tasks."""
    ret = subprocess.call(args)
    if check_exit and ret != 0:
        raise SystemError(f"Command {args!r} failed with exit code {ret}")
    return return_value


def glob_sort(pattern: str) -> list:
    """`glob.glob(pattern)`, sorted."""
    return sorted(_glob.glob(pattern))


def cached_glob(pattern: str) -> list:
    """The sorted files matching `pattern`, found once and then kept in the store (a CachedFunction)."""
    return CachedFunction(glob_sort, pattern)


def sync_move(src: str, dst: str) -> None:
    """Rename `src` to `dst` and fsync the destination folder."""
    os.rename(src, dst)
    fd = os.open(os.path.dirname(os.path.abspath(dst)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def __getattr__(name: str) -> Any:
    if name in ("prepare_task_matcher", "prepare_name_matcher", "add_task_selection_options",
                "print_task_summary_table"):
        raise JugFeatureError(f"jug.utils.{name}", "these serve jug's command line; use taskflow's commands")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
