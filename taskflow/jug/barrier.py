"""jug's barrier and bvalue on taskflow's barrier."""
from __future__ import annotations

from typing import Any

from .. import task as core
from ..taskfile import BarrierReached, _caller_line, _unfinished
from ..taskfile import barrier  # taskflow's own: it names the taskfile line it stops at
from .keyview import key_view
from .task import _tasks_in, value

__all__ = ["barrier", "bvalue", "BarrierError"]

BarrierError = BarrierReached


def bvalue(x: Any) -> Any:
    """The value of `x`, stopping the taskfile here until the tasks `x` needs are finished.

    Unlike `barrier()`, only the tasks in `x` (and what they depend on) are waited for, as in jug.
    """
    declarations = core.active()
    if declarations.store is not None:
        needs = core.closure(_needed(x))
        if _unfinished(declarations.store, [t.hash for t in needs], declarations.known_finished):
            raise BarrierReached(_caller_line(), needs)
        declarations.barriers_passed += 1
    return value(x)


def _needed(x: Any) -> list:
    from .io import NoLoad

    if isinstance(x, NoLoad):
        return []  # its value is the wrapper itself
    return _tasks_in(key_view(x))
