"""jug's CompoundTask: a task whose function declares more tasks, run as jug runs it.

`CompoundTask(f, *args)` is the task `f(*args)`. When its result is stored,
that task is all there is: `f` is not called and the tasks it would declare
are not declared. Otherwise `f` is called while the taskfile loads; the tasks
it declares are declared, and the compound task waits for what `f` returned
and stores it as its own result, under its own hash. `f` may call
`barrier()` and `value()`, as in jug.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast

from .. import task as core
from ..jugalias import jug_alias
from .keyview import key_view
from .task import Task, _tasks_in, resolve


def CompoundTask(f: Callable, *args: Any, **kwargs: Any) -> Task:  # noqa: N802 - jug's name
    """The task `f(*args, **kwargs)`, where `f` returns tasks (see the module's docstring)."""
    declared = core.active().tasks
    known = set(declared)
    outer = Task(f, *args, **kwargs)
    if outer.can_load():
        return outer
    first = outer.hash not in known
    if first:
        # Not declared while f runs: a barrier() inside f must not wait for it.
        declared.pop(outer.hash, None)
    inner = f(*args, **kwargs)
    outer.__class__ = _Compound
    cast(_Compound, outer)._inner = inner
    outer.deps = tuple(_tasks_in(key_view(inner)))
    if first:
        declared[outer.hash] = outer  # after the tasks it waits for
    return outer


class _Compound(Task):
    """A compound task whose inner tasks are declared: its result is what `f` returned, computed."""

    _inner: Any

    def run(self, lookup: Callable | None = None) -> Any:
        if lookup is None:
            return self._run_and_save()
        with jug_alias():
            return resolve(self._inner, lookup)


def CompoundTaskGenerator(f: Callable) -> Callable:  # noqa: N802 - jug's name
    """Decorator: calling `f` declares `CompoundTask(f, ...)`."""
    @functools.wraps(f)
    def generator(*args: Any, **kwargs: Any) -> Task:
        return CompoundTask(f, *args, **kwargs)
    generator.__dict__["f"] = f  # what jug's generators carry, and jugkey reads
    return generator


def compound_task_execute(x: Any, h: Any) -> Any:
    """jug's internal helper, kept for jugfiles that name it: returns `x`."""
    return x
