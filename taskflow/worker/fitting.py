"""Which ready tasks a worker takes: those that fit what it was given, in the share of the machine
that is free now, and in the time it has left.

The loop asks `Picker.take` before it claims a task. A task that needs more cpus, memory or
GPUs than this worker has at all, or that would not finish in its time left (walltime.py), is
set aside: this worker never takes it, and when only such tasks are left it exits (exit 3)
saying why, leaving them to a bigger worker or one with more time. A task that fits but not in
what `--jobs` siblings leave free on the machine now (share.py) is deferred: tried again once a
task of this worker is back, or after a short pause.

A task that declares GPUs sees only its own devices in CUDA_VISIBLE_DEVICES: the first ones of
this worker's, or those its reservation of the machine's share handed it.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections import deque
from collections.abc import Collection

from ..capacity import Capacity
from ..resources import NONE, Resources, effective
from ..stores.base import Store
from ..task import Task
from ..units import format_duration
from .share import MachineShare, Reservation, limited
from .walltime import Runtimes, TimeLeft

log = logging.getLogger(__name__)

SIZE, TIME = "size", "time"
DEFERRED_PAUSE = 0.02  # seconds before looking again at a machine share that had no room, doubling
DEFERRED_MAX_PAUSE = 0.5


def _secs(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 60 else format_duration(seconds)


class Picker:
    """What one worker may take now (see the module docstring)."""

    def __init__(self, capacity: Capacity | None = None, share: MachineShare | None = None,
                 time_left: TimeLeft | None = None):
        self.capacity = capacity
        self.share = share
        self.time_left = time_left
        self.set_aside: dict[str, tuple[str, str]] = {}   # task hash -> (SIZE or TIME, why)
        self.deferred: list[str] = []
        self.reserved: dict[str, Reservation] = {}
        self.walltime_skips = 0  # tasks not started because they would not have finished in time
        self.defaults = NONE
        self._visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        self.devices_set = False  # CUDA_VISIBLE_DEVICES changed for a task: put back when none runs
        self._no_room: set[tuple] = set()  # needs the share had no room for, since a task came back
        self._pause = DEFERRED_PAUSE

    def begin(self, store: Store, index: dict[str, Task], finished: set[str], deadline: float | None,
              defaults: Resources = NONE) -> None:
        """A pass over the graph `index` starts; `finished` is the worker's set, kept up to date."""
        self.set_aside.clear()
        self.deferred.clear()
        self.defaults = defaults
        self.time_left = None
        if deadline is not None:
            by_name: dict[str, list[Task]] = {}
            for t in index.values():
                by_name.setdefault(t.name, []).append(t)

            def finished_of(name: str) -> list[Task]:
                return [t for t in by_name.get(name, ()) if t.hash in finished]

            self.time_left = TimeLeft(deadline, Runtimes(store, finished_of))

    def end_pass(self) -> None:
        self.settle((), deque())
        self.deferred.clear()

    def take(self, task: Task) -> bool:
        """Whether to claim `task` now; when not, it is set aside or deferred."""
        if getattr(task, "resources", NONE) is NONE and self.defaults is NONE and self.time_left is None:
            return True  # the common case: nothing declared, no time limit, at no cost
        needs = effective(task, self.defaults)
        if not needs and self.time_left is None:
            return True
        if task.hash in self.set_aside:
            return False
        if needs and self.capacity is not None and not self.capacity.fits(dataclasses.replace(needs, time=None)):
            self._set_aside(task, SIZE, needs.describe())
            return False
        if self.time_left is not None:
            late = self.time_left.too_long(task, needs)
            if late is not None:
                self.walltime_skips += 1
                self._set_aside(task, TIME, f"expected {_secs(late[0])} ({late[1]}), "
                                            f"{_secs(max(0.0, self.time_left.left()))} left")
                return False
        devices: tuple[str, ...] | None = None
        if self.share is not None and limited(needs):
            # One look at the ledger per kind of need until a task comes back: not one per ready task.
            reservation = None if needs.key() in self._no_room else self.share.reserve(needs)
            if reservation is None:
                self._no_room.add(needs.key())
                self.deferred.append(task.hash)
                return False
            self._pause = DEFERRED_PAUSE
            self.reserved[task.hash] = reservation
            devices = reservation.gpus if needs.gpus is not None else None
        elif needs.gpus is not None and self.capacity is not None:
            devices = self.capacity.gpus[:needs.gpus]
        if devices is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
            self.devices_set = True
        return True

    def ran(self, task: Task, seconds: float) -> None:
        """This worker finished `task` in `seconds`."""
        if self.time_left is not None:
            self.time_left.runtimes.add(task, seconds)

    def settle(self, flying: Collection[str], ready: deque[str]) -> None:
        """After tasks came back (or a claim was not had): return what they reserved, and give
        deferred tasks another chance."""
        if not self.reserved and not self.devices_set:
            return
        back = [h for h in self.reserved if h not in flying]
        for h in back:
            reservation = self.reserved.pop(h)
            if self.share is not None:
                self.share.release(reservation)
        if not flying:
            self._restore_devices()
        if back:
            self._no_room.clear()
            if self.deferred:
                ready.extendleft(reversed(self.deferred))
                self.deferred.clear()

    def retry_deferred(self, ready: deque[str]) -> bool:
        """Nothing else to do but deferred tasks: wait a little for siblings to free the machine,
        then queue them again. False when there are none."""
        if not self.deferred:
            return False
        time.sleep(self._pause)
        self._pause = min(DEFERRED_MAX_PAUSE, self._pause * 2)
        self._no_room.clear()
        ready.extend(self.deferred)
        self.deferred.clear()
        return True

    def leaving(self, index: dict[str, Task]) -> str | None:
        """Why this worker stops when only set-aside tasks are left; None if none are."""
        if not self.set_aside:
            return None
        parts = []
        for kind, advice in ((SIZE, "more than this worker has" + self._has()),
                             (TIME, "more time than this worker has left")):
            mine = [(h, why) for h, (k, why) in self.set_aside.items() if k == kind]
            if mine:
                h, why = mine[0]
                first = f"needs {why}" if kind == SIZE else why
                parts.append(f"{len(mine)} ready task(s) need {advice} (first: {index[h].name}, {first})")
        return "; ".join(parts) + ": leaving them to other workers"

    def close(self) -> None:
        self.end_pass()
        if self.share is not None:
            self.share.close()

    def _set_aside(self, task: Task, kind: str, why: str) -> None:
        first = all(k != kind for k, _ in self.set_aside.values())
        self.set_aside[task.hash] = (kind, why)
        (log.info if first else log.debug)("not taking %s (%s): %s", task.name, task.hash[:12],
                 f"needs {why}, more than this worker has{self._has().replace(',', ':', 1)}" if kind == SIZE
                 else f"would not finish in time: {why}")

    def _has(self) -> str:
        c = self.capacity
        if c is None:
            return ""
        return ", " + Resources(cpus=c.cpus, memory=c.memory, gpus=len(c.gpus)).describe()

    def _restore_devices(self) -> None:
        if not self.devices_set:
            return
        self.devices_set = False
        if self._visible is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = self._visible
