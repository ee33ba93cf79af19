"""jug's barrier and bvalue on taskflow's barrier."""
from __future__ import annotations

from typing import Any

from .. import task as core
from ..taskfile import BarrierReached, _caller_line
from ..taskfile import barrier  # taskflow's own: it names the taskfile line it stops at
from .task import _can_load, _tasks_in, key_view, value

__all__ = ["barrier", "bvalue", "BarrierError"]

BarrierError = BarrierReached


def bvalue(x: Any) -> Any:
    """The value of `x`, stopping the taskfile here until the tasks `x` needs are finished.

    Unlike `barrier()`, only the tasks in `x` are waited for, as in jug.
    """
    store = core.active().store
    if store is not None:
        for t in _needed(x):
            if not _can_load(t):
                raise BarrierReached(_caller_line())
    return value(x)


def _needed(x: Any) -> list:
    from .io import NoLoad

    if isinstance(x, NoLoad):
        return []  # its value is the wrapper itself
    return _tasks_in(key_view(x))
