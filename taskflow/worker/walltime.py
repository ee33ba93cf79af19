"""Walltime-aware picking: a worker that knows when it will be stopped takes a task only if the
task is expected to finish before then (give or take a small `grace`).

When it will be stopped: the job's end, as the job scripts tell it (TASKFLOW_WALLTIME_LEFT, the
time the job had left when its script started) or the scheduler does (schedulers/environment.py
`time_left`), else `--max-time` after the worker started.

How long a task is expected to take: its declared `time`, else a high percentile (PERCENTILE) of
the runtimes of finished tasks of the same name (the `duration` their results' metadata
records, read for at most SAMPLE of them per name), else unknown: then it is taken.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from ..resources import Resources
from ..stores.base import Store
from ..task import Task


PERCENTILE = 90
SAMPLE = 50          # results read per task name, at most
RESAMPLE_AFTER = 10.0  # seconds: look for newly finished tasks of a name at most this often
GRACE = 0.05
MAX_GRACE = 60.0


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile: the smallest value with at least p % of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class Runtimes:
    """What finished tasks of each name took, sampled from their results' metadata."""

    def __init__(self, store: Store, finished_of: Callable[[str], list[Task]]):
        self.store = store
        self.finished_of = finished_of  # the finished tasks of a name, as this worker knows them
        self._seconds: dict[str, list[float]] = {}
        self._read: dict[str, set[str]] = {}
        self._looked: dict[str, float] = {}

    def add(self, task: Task, seconds: float) -> None:
        """A task of this worker finished: its runtime counts at once, without reading it back."""
        read = self._read.setdefault(task.name, set())
        if task.hash not in read:
            read.add(task.hash)
            seconds_of = self._seconds.setdefault(task.name, [])
            seconds_of.append(seconds)
            if len(seconds_of) > 2 * SAMPLE:
                del seconds_of[0]  # the most recent count; the percentile stays cheap

    def expected(self, name: str) -> float | None:
        now = time.monotonic()
        seconds = self._seconds.setdefault(name, [])
        if len(seconds) < SAMPLE and now - self._looked.get(name, -math.inf) >= RESAMPLE_AFTER:
            self._looked[name] = now
            read = self._read.setdefault(name, set())
            fresh = [t for t in self.finished_of(name) if t.hash not in read][:SAMPLE - len(seconds)]
            if fresh:
                read.update(t.hash for t in fresh)  # one try each: a missing or damaged one is not asked again
                # Known finished: no listing of the store, one header read each.
                for _, meta in self.store.metas(fresh, finished={t.hash for t in fresh},
                                                on_damaged=lambda task, error: None):
                    duration = meta.get("duration")
                    if isinstance(duration, (int, float)):
                        seconds.append(float(duration))
        return percentile(seconds, PERCENTILE) if seconds else None


class TimeLeft:
    """The time a worker has until its deadline, and whether a task fits in it."""

    def __init__(self, deadline: float, runtimes: Runtimes, clock: Callable[[], float] = time.monotonic):
        self.deadline = deadline  # on `clock`
        self.runtimes = runtimes
        self.clock = clock

    def left(self) -> float:
        return self.deadline - self.clock()

    def too_long(self, task: Task, needs: Resources) -> tuple[float, str] | None:
        """(expected seconds, where that comes from) when `task` would not finish in time; else None."""
        if needs.time is not None:
            expected, source = needs.time, "declared time"
        else:
            known = self.runtimes.expected(task.name)
            if known is None:
                return None
            expected, source = known, f"p{PERCENTILE} of finished {task.name} tasks"
        return (expected, source) if expected > self.left() + grace(expected) else None


def grace(expected: float) -> float:
    """How far past the deadline a task's expected time may reach and the task still be taken.

    A declared time is an upper bound, and `taskflow submit` asks a resource class's walltime
    for exactly its declared time: a worker of that class, which starts a few seconds into its
    job, must still take one such task. GRACE of the expected time, at most MAX_GRACE seconds.
    """
    return min(GRACE * expected, MAX_GRACE)


def deadline(started: float, max_time: float | None, time_left: float | None) -> float | None:
    """When (on the monotonic clock) a worker started at `started` must have finished its tasks:
    when its scheduler ends it (`time_left` seconds after its start), where that is known, else
    `--max-time` after its start; None when neither is known.

    The scheduler's end, not `--max-time`, where both are known: the job scripts set --max-time a
    margin before the end, to take no new task then, and a task started before may run into it.
    """
    limit = time_left if time_left is not None else max_time
    return None if limit is None else started + limit
