"""jug.mapreduce: `map`, `currymap`, `mapreduce` and `reduce`, with jug's defaults.

The tasks are the ones jug declares (the same functions' counterparts, the
same grouping, `map_step=4`, `reduce_step=8`), so `import-jug` can find
their results. `map` with `map_step > 1` returns a list-like `MapResult`
over its block tasks: `len`, indexing (a task element), slicing, and usable
as a task argument, whose value is the flat list.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from .. import task as core
from .keyview import MAP, key_view
from .task import Task, _can_load, _element, resolve, value
from .utils import identity

__all__ = ["map", "currymap", "mapreduce", "reduce", "MapResult"]


def _plain(f: Any) -> Any:
    # Inside a map task the mapper is called, not declared.
    return Unwrapped(f) if isinstance(f, core.TaskGenerator) else f


class Unwrapped:
    """A TaskGenerator given to map or mapreduce: its function, called directly inside the map task.

    Kept apart from the bare function because jug hashes it as the generator.
    """

    __slots__ = ("generator",)

    def __init__(self, generator: core.TaskGenerator):
        self.generator = generator

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.generator.f(*args, **kwargs)

    def _key_view(self) -> Any:
        return self.generator

    def __repr__(self) -> str:
        return f"Unwrapped({self.generator.name})"


def _function(f: Any) -> Any:
    return f.f if isinstance(f, core.TaskGenerator) else f


def _sliceable(inputs: Any) -> Any:
    # Chunks are slices of the inputs, of their type, as jug makes them (a range gives ranges).
    return inputs if isinstance(inputs, (list, tuple, range, MapResult, _MapSlice)) else list(inputs)


def _chunks(items: Any, step: int) -> list:
    return [items[i:i + step] for i in range(0, len(items), step)]


def _map_values(mapper: Callable | None, inputs: list) -> list:
    if mapper is None:
        return list(inputs)
    return [mapper(x) for x in inputs]


def _map_reduce_values(reducer: Callable, mapper: Callable | None, inputs: list) -> Any:
    return functools.reduce(_function(reducer), _map_values(_function(mapper), inputs))


def _reduce_values(reducer: Callable, inputs: list) -> Any:
    return functools.reduce(_function(reducer), inputs)


def _curry_map_values(mapper: Callable, inputs: list) -> list:
    return [mapper(*x) for x in inputs]


def mapreduce(reducer: Callable, mapper: Callable | None, inputs: Iterable, map_step: int = 4,
              reduce_step: int = 8) -> Any:
    """A task computing `functools.reduce(reducer, map(mapper, inputs))`, in a tree of tasks.

    `reducer` must be associative. Empty `inputs` give `identity([])`, as in jug.
    """
    inputs = _sliceable(inputs)
    # The functions go in as given (generators too) and are unwrapped when the task runs, as in jug.
    level = [Task(_map_reduce_values, reducer, mapper, chunk) for chunk in _chunks(inputs, map_step)]
    while len(level) > 1:
        level = [Task(_reduce_values, reducer, group) for group in _chunks(level, reduce_step)]
    return level[0] if level else identity([])


def reduce(reducer: Callable, inputs: Iterable, reduce_step: int = 8) -> Any:
    """A task computing `functools.reduce(reducer, inputs)` in a tree of tasks (mapreduce without a mapper)."""
    return mapreduce(reducer, None, inputs, reduce_step=reduce_step)


def map(mapper: Callable, sequence: Iterable, map_step: int = 4) -> Any:  # noqa: A001 - jug's name
    """`mapper` over `sequence`, `map_step` inputs per task: a list of tasks (map_step=1) or a MapResult."""
    if map_step == 1:
        return [Task(_function(mapper), x) for x in sequence]
    items = _sliceable(sequence)
    blocks = [Task(_map_values, _plain(mapper), chunk) for chunk in _chunks(items, map_step)]
    return MapResult(blocks, map_step, len(items))


def currymap(mapper: Callable, sequence: Iterable, map_step: int = 4) -> list:
    """`mapper(*x)` for each tuple x of `sequence`, `map_step` per task."""
    if map_step == 1:
        return [Task(_function(mapper), *x) for x in sequence]
    out: list = []
    for chunk in _chunks(list(sequence), map_step):
        t = Task(_curry_map_values, _plain(mapper), chunk)
        out.extend(t[i] for i in range(len(chunk)))
    return out


class MapResult:
    """The results of `map`: one task per block of `block_size` inputs, seen as one flat list."""

    def __init__(self, blocks: list, block_size: int, length: int):
        self.blocks = blocks
        self.block_size = block_size
        self.len = length

    def __len__(self) -> int:
        return self.len

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return _MapSlice(self, i.indices(self.len))
        if not isinstance(i, int):
            raise TypeError(f"MapResult indices must be integers or slices, not {type(i).__name__}")
        if i < 0:
            i += self.len
        if not 0 <= i < self.len:
            raise IndexError(i)
        return _element(self.blocks[i // self.block_size], i % self.block_size)

    def __iter__(self):
        return (self[i] for i in range(self.len))

    def _key_view(self) -> Any:
        return (MAP, "blocks", self.blocks, self.block_size, self.len)

    def _resolve(self, lookup: Callable) -> list:
        out: list = []
        for block in self.blocks:
            out.extend(lookup(block))
        return out

    def __jug_value__(self) -> list:
        return [x for block in value(self.blocks) for x in block]

    def can_load(self) -> bool:
        return all(_can_load(b) for b in self.blocks)

    def __repr__(self) -> str:
        return f"MapResult({len(self.blocks)} tasks, {self.len} values)"


class _MapSlice:
    """`map(...)[a:b:c]`: a slice of a MapResult, itself list-like."""

    def __init__(self, base: MapResult, indices: tuple):
        self.base = base
        self.start, self.stop, self.stride = indices

    def _range(self) -> range:
        return range(self.start, self.stop, self.stride)

    def __len__(self) -> int:
        return len(self._range())

    def __getitem__(self, p: Any) -> Any:
        if isinstance(p, slice):
            r = self._range()[p]
            return _MapSlice(self.base, (r.start, r.stop, r.step))
        return self.base[self._range()[p]]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def _blocks(self) -> list:
        numbers = sorted({i // self.base.block_size for i in self._range()})
        return [self.base.blocks[b] for b in numbers]

    def _key_view(self) -> Any:
        return (MAP, "slice", key_view(self.base), self.start, self.stop, self.stride)

    def _resolve(self, lookup: Callable) -> list:
        return [resolve(self[i], lookup) for i in range(len(self))]

    def __jug_value__(self) -> list:
        return [value(self[i]) for i in range(len(self))]

    def can_load(self) -> bool:
        return all(_can_load(b) for b in self._blocks())
