"""Building blocks that declare many tasks at once: `mapreduce` and a parallel `map`."""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, overload

from .errors import UsageError
from .task import Task, TaskGenerator

_NO_INITIAL = object()


@overload
def _plain(f: Callable) -> Callable: ...
@overload
def _plain(f: None) -> None: ...
def _plain(f: Callable | None) -> Callable | None:
    # Inside a map task the mapper and reducer are called, not declared.
    return f.f if isinstance(f, TaskGenerator) else f


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def map_chunk(mapper: Callable, reducer: Callable | None, chunk: list, *initial: Any) -> Any:
    """One task of `mapreduce`/`map`: map each input; combine them with `reducer` if given.

    `initial` (one value or none) is the result for an empty chunk, as in `functools.reduce`.
    """
    mapped = [mapper(x) for x in chunk]
    if reducer is None:
        return mapped
    return functools.reduce(reducer, mapped, *initial)


def reduce_values(reducer: Callable, values: list) -> Any:
    """One reduce task of `mapreduce`: combine partial results in order."""
    return functools.reduce(reducer, values)


def mapreduce(reducer: Callable, mapper: Callable | None, inputs: Iterable, map_step: int = 4,
              reduce_step: int = 8, initial: Any = _NO_INITIAL) -> Task:
    """Declare tasks computing `reduce(reducer, map(mapper, inputs))`; returns the final task.

    Each map task handles `map_step` inputs and already combines them; reduce
    tasks then combine up to `reduce_step` partial results at a time, in a
    tree, keeping the order of `inputs` (so `reducer` need not commute, but
    must be associative). `mapper` and `reducer` must be module-level
    functions (plain or @TaskGenerator).

    `initial` is the result when `inputs` is empty (a filter that matched
    nothing): the reducer's empty result, such as 0 for a sum or [] for a
    concatenation. It may be a task. Unlike the initializer of
    `functools.reduce` it is not combined with the results when there are
    inputs, so adding it to a mapreduce changes none of its tasks. Without
    `initial`, the result for no inputs is an empty list, as in jug.
    """
    items = list(inputs)
    if map_step < 1 or reduce_step < 2:
        raise UsageError("mapreduce needs map_step >= 1 and reduce_step >= 2")
    mapper, reducer = _plain(mapper), _plain(reducer)
    if not items:
        return Task(map_chunk, mapper, reducer, [], [] if initial is _NO_INITIAL else initial)
    level = [Task(map_chunk, mapper, reducer, chunk) for chunk in _chunks(items, map_step)]
    while len(level) > 1:
        level = [group[0] if len(group) == 1 else Task(reduce_values, reducer, group)
                 for group in _chunks(level, reduce_step)]
    return level[0]


def map(mapper: Callable, inputs: Iterable, map_step: int = 1) -> list:  # noqa: A001 - mirrors builtins.map
    """Declare tasks computing `mapper(x)` for each input; returns a list of task results.

    With `map_step=1` each element of the returned list is a task; with a larger
    step each task maps several inputs and the list holds task elements, so the
    list lines up with `inputs` either way (empty for empty `inputs`).
    """
    items = list(inputs)
    if map_step < 1:
        raise UsageError("map needs map_step >= 1")
    if map_step == 1:
        return [Task(mapper, x) for x in items]
    out: list = []
    for chunk in _chunks(items, map_step):
        t = Task(map_chunk, _plain(mapper), None, chunk)
        out.extend(t[i] for i in range(len(chunk)))
    return out
