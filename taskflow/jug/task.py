"""jug's Task, Tasklet, TaskGenerator and value, on taskflow's tasks.

A jug `Task` here is a taskflow task: same store, same workers, taskflow's
hash. What jug adds is what a task receives and what `value` returns: jug
replaces not only tasks but also Tasklets (a function applied to a result
when it is read, never stored), `NoLoad` wrappers (the task itself reaches
the function), `CustomHash` wrappers and anything with `__jug_value__`.

Those objects are not taskflow arguments, so each jug task is hashed through
a *key view* of its arguments: the same structure with each jug object
replaced by a tagged tuple of what identifies it (a Tasklet: its base and
its function; a `__jug_hash__` object: its class and digest). Tasks inside
the view are the task's dependencies, as for any taskflow task; the task
itself keeps and receives the original arguments.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from typing import Any

from .. import task as core
from ..errors import JugFeatureError, TaskDeclarationError
from ..jugalias import jug_alias
from ..task import load_task
from .keyview import JugHash, TASKLET, _PLAIN, function_view, key_view

__all__ = ["Task", "Tasklet", "TaskGenerator", "value", "CachedFunction", "iteratetask", "return_tuple",
           "recursive_dependencies", "describe"]


class Task(core.Task):
    """`Task(f, *args, **kwargs)`: jug's lazy call, stored and run by taskflow.

    `f` may be a plain function, a TaskGenerator or a functools.partial (whose
    arguments go first, as in jug). Keyword arguments all reach `f`: `version`
    is not taken as taskflow's here (use `@taskflow.TaskGenerator(version=...)`).
    """

    def __init__(self, f: Callable, *args: Any, **kwargs: Any):
        while isinstance(f, functools.partial):
            args = f.args + args
            kwargs = {**f.keywords, **kwargs}
            f = f.func
        if not isinstance(f, core.TaskGenerator):
            f = _generator_for(f)
        key_args, key_kwargs = key_view(args), key_view(kwargs)
        super().__init__(f, *key_args, **key_kwargs)
        self.args, self.kwargs = args, kwargs
        self.hash = JugHash(self.hash)

    # -- what a jug task receives ------------------------------------------------

    def run(self, lookup: Callable[[core.Task], Any] | None = None) -> Any:
        """Call the function with jug's replacements. Without `lookup` (jug's `t.run()`),
        inputs come from the store and the result is saved there."""
        if lookup is None:
            return self._run_and_save()
        with jug_alias():  # results and the function itself may name jug.*
            args = resolve(self.args, lookup)
            kwargs = resolve(self.kwargs, lookup)
            return self.f(*args, **kwargs)

    def _run_and_save(self) -> Any:
        from ..stores.identity import HOST, result_meta

        started, t0 = time.time(), time.monotonic()
        result = self.run(load_task)
        store = self._store()
        if store is not None:
            import os
            store.save_result(self.hash, result, result_meta(self, started, time.monotonic() - t0,
                                                              f"{HOST}:{os.getpid()}"))
        return result

    # -- jug's Task methods --------------------------------------------------------

    def _store(self):
        return self.store or core.active().store

    @property
    def result(self) -> Any:
        return self.value()

    def can_load(self) -> bool:
        store = self._store()
        return store is not None and store.has_result(self.hash)

    def can_run(self) -> bool:
        store = self._store()
        return store is not None and all(store.has_result(d.hash) for d in self.deps)

    def is_loaded(self) -> bool:
        return False  # taskflow keeps no result in the task object

    def load(self) -> None:
        self.value()

    def unload(self) -> None:
        pass

    def unload_recursive(self) -> None:
        pass

    def invalidate(self) -> None:
        """Remove this task's result (only this one, as jug's `t.invalidate()`)."""
        store = self._store()
        if store is not None:
            store.remove_result(self.hash)

    def dependencies(self) -> Iterator[core.Task]:
        yield from self.deps

    def __getitem__(self, key: Any):
        return _element(self, key)

    def __getattr__(self, name: str) -> Any:
        instead = _TASK_METHODS.get(name)
        if instead is not None:
            raise JugFeatureError(f"jug's Task.{name}()", instead)
        raise AttributeError(name)

    def __repr__(self) -> str:
        return f"Task({self.name}, {self.hash[:12]})"


_TASK_METHODS = {
    name: "taskflow claims tasks with leased lock files itself; `taskflow status --running` shows them"
    for name in ("lock", "unlock", "is_locked", "fail", "is_failed")
}


def _element(base: Any, key: Any):
    """`base[key]`: a taskflow task element where taskflow can hash the key, a Tasklet otherwise."""
    if isinstance(base, (core.Task, core.TaskElement)) and key_view(key) is key:
        try:
            return core.TaskElement.__getitem__(base, key) if isinstance(base, core.TaskElement) \
                else core.TaskElement(base, (key,))
        except TaskDeclarationError:
            pass
    return Tasklet(base, _GetItem(key))


class _GetItem:
    """The function of `t[key]`: index the result (by a key that may itself hold tasks)."""

    __slots__ = ("key",)

    def __init__(self, key: Any):
        self.key = key

    def __call__(self, result: Any) -> Any:
        return result[value(self.key)]

    def _key_view(self) -> Any:
        return ("getitem", key_view(self.key))

    def __repr__(self) -> str:
        return f"[{self.key!r}]"


_generators: dict = {}


def _generator_for(f: Callable) -> core.TaskGenerator:
    # The function goes in as a taskflow TaskGenerator so that a `version` keyword stays the function's.
    try:
        return _generators[f]
    except KeyError:
        pass
    except TypeError:  # an unhashable callable object
        return core.TaskGenerator(f)
    if getattr(f, "__name__", "") == "<lambda>":
        raise TaskDeclarationError(f"cannot make a task of {f!r}: a jug Task needs a named function "
                                   "(defined with def); Tasklet(task, lambda r: ...) takes a lambda")
    generator = _generators[f] = core.TaskGenerator(f)
    return generator


class Tasklet:
    """`Tasklet(base, f)`: `f(value(base))`, computed whenever it is read, never stored."""

    __slots__ = ("base", "f")

    # A function of the base's value; NoLoad keeps the string "NoLoad" here, which names it in keys.
    def __init__(self, base: Any, f: Callable | Any):
        self.base = base
        self.f = f

    def value(self) -> Any:
        return self.f(value(self.base))

    def __jug_value__(self) -> Any:
        return self.value()

    def can_load(self) -> bool:
        return _can_load(self.base)

    def dependencies(self) -> Iterator[Any]:
        yield self.base

    def unload(self) -> None:
        pass

    def unload_recursive(self) -> None:
        pass

    def __getitem__(self, key: Any) -> Tasklet:
        return Tasklet(self, _GetItem(key))

    def __iter__(self):
        raise TypeError("cannot iterate over a Tasklet: use iteratetask(tasklet, n)")

    def _key_view(self) -> Any:
        return (TASKLET, key_view(self.base), function_view(self.f))

    def _resolve(self, lookup: Callable) -> Any:
        return self.f(resolve(self.base, lookup))

    def __repr__(self) -> str:
        return f"Tasklet({self.base!r}, {self.f!r})"


def _can_load(obj: Any) -> bool:
    if isinstance(obj, core.Task):
        store = obj.store or core.active().store
        return store is not None and store.has_result(obj.hash)
    if isinstance(obj, core.TaskElement):
        return _can_load(obj.task) and all(_can_load(d) for d in obj.deps)
    can_load = getattr(obj, "can_load", None)
    return bool(can_load()) if can_load is not None else True


def resolve(obj: Any, lookup: Callable[[core.Task], Any]) -> Any:
    """`obj` with tasks replaced through `lookup`, as jug gives a task its arguments: taskflow's
    `substitute`, which also gives Tasklets, mapped sequences and `__jug_value__` objects their values."""
    def wrapper(x: Any) -> Any:
        if isinstance(x, type) or type(x) in _PLAIN:
            return x
        own = getattr(x, "_resolve", None)
        if own is not None:
            return own(lookup)
        jug_value = getattr(x, "__jug_value__", None)
        return x if jug_value is None else jug_value()

    return core.substitute(obj, lookup, wrapper)


def value(obj: Any) -> Any:
    """jug's `value`: `obj` with every task, Tasklet and jug wrapper replaced by its result."""
    return resolve(obj, load_task)


class TaskGenerator(core.TaskGenerator):
    """`@TaskGenerator`: calling the function declares a jug Task."""

    def __new__(cls, f: Callable | None = None, **kwargs: Any):
        return object.__new__(cls)

    def __init__(self, f: Callable):
        if isinstance(f, core.TaskGenerator):
            f = f.f
        super().__init__(f)

    def __call__(self, *args: Any, **kwargs: Any) -> Task:
        return Task(self, *args, **kwargs)


def CachedFunction(f: Callable, *args: Any, **kwargs: Any) -> Any:  # noqa: N802 - jug's name
    """Call `f` now unless its result is stored; return the result (stored for next time).

    The one jug feature that runs code while a taskfile loads, as in jug.
    """
    t = Task(f, *args, **kwargs)
    if t.can_load():
        return t.value()
    if t._store() is None:
        return t.run(load_task)
    if not t.can_run():
        missing = [d.name for d in t.deps if not _can_load(d)]
        raise TaskDeclarationError(f"CachedFunction({t.name}): its inputs are not finished yet: "
                                   + ", ".join(missing[:5]), task=t.name)
    return t.run()


class iteratetask:  # noqa: N801 - jug's name
    """`a, b = iteratetask(t, 2)`: the first `n` elements of a task's result, as a sequence."""

    def __init__(self, base: Any, n: int):
        self.base = base
        self.n = n

    def __getitem__(self, i: int) -> Any:
        # As jug: past the end stops iteration; any other index goes to the task as it is.
        if i >= self.n:
            raise IndexError(i)
        return self.base[i]

    def __len__(self) -> int:
        return self.n


class _TupleItem:
    """Element i of a result that must be a tuple of n (see return_tuple)."""

    __slots__ = ("i", "n")

    def __init__(self, i: int, n: int):
        self.i, self.n = i, n

    def __call__(self, result: Any) -> Any:
        if len(result) != self.n:
            raise ValueError(f"expected a tuple of {self.n} elements, got {len(result)}")
        return result[self.i]

    def _key_view(self) -> Any:
        return ("tuple-item", self.i, self.n)


def return_tuple(n: int) -> Callable:
    """Decorator for a TaskGenerator returning a tuple of `n`: calls then return `n` Tasklets."""
    def wrapper(generator: Callable) -> Callable:
        @functools.wraps(generator)
        def wrapped(*args: Any, **kwargs: Any) -> tuple:
            t = generator(*args, **kwargs)
            return tuple(Tasklet(t, _TupleItem(i, n)) for i in range(n))
        return wrapped
    return wrapper


def recursive_dependencies(t: Any, max_level: int = -1) -> Iterator[core.Task]:
    """Every task `t` depends on, each once (down to `max_level` levels; -1: all)."""
    seen: set = set()
    level = [t]
    depth = 0
    while level and (max_level is None or max_level < 0 or depth < max_level):
        following = []
        for x in level:
            for d in _direct_dependencies(x):
                if d.hash not in seen:
                    seen.add(d.hash)
                    following.append(d)
                    yield d
        level = following
        depth += 1


def _direct_dependencies(x: Any) -> list:
    if isinstance(x, core.Task):
        return list(x.deps)
    return _tasks_in(key_view(x))


def _tasks_in(view: Any) -> list:
    from ..hashing import value_hash
    found: dict = {}
    value_hash(view, found)
    return list(found.values())


def describe(t: Any) -> Any:
    """A nested description of how `t` is computed: names, arguments and stored metadata."""
    if isinstance(t, core.Task):
        out: dict = {"name": t.name}
        if t.args:
            out["args"] = [describe(a) for a in t.args]
        if t.kwargs:
            out["kwargs"] = {k: describe(v) for k, v in t.kwargs.items()}
        store = t.store or core.active().store
        if store is not None and store.has_result(t.hash):
            out["meta"] = store.result_meta(t.hash)
        return out
    if isinstance(t, core.TaskElement):
        return {"name": "tasklet", "operation": repr(list(t.path)), "base": describe(t.task)}
    if isinstance(t, Tasklet):
        return {"name": "tasklet", "operation": repr(t.f), "base": describe(t.base)}
    if isinstance(t, list):
        return [describe(x) for x in t]
    if isinstance(t, tuple):
        return tuple(describe(x) for x in t)
    if isinstance(t, dict):
        return {k: describe(v) for k, v in t.items()}
    return t


def __getattr__(name: str) -> Any:
    if name == "alltasks":
        raise JugFeatureError("jug.task.alltasks", "`taskflow status` and `taskflow show` list the declared tasks")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
