"""Waiting for a taskfile's tasks: until all are finished, failures block the rest, or a timeout.

For scripts and notebooks after `taskflow submit`:

    from taskflow.wait import wait
    result = wait("taskfile.py", timeout=3600)
    result.outcome   # WaitOutcome.FINISHED, FAILED or TIMEOUT

The taskfile is loaded again at every look, so tasks below a barrier count
once what the barrier waits for is finished.

"Failed" means that nothing else can run: some task failed and no task is
ready or running. Every unfinished task then waits, directly or through
others, on a failed one. (A task whose claim went stale counts as ready:
a live worker will take it over.)
"""
from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import jobs
from .statusreport import StatusReport, confirmed, damage_hint
from .stores import open_store
from .stores.base import Store
from .taskfile import store_path
from .units import format_duration

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 5.0


class WaitOutcome(enum.Enum):
    FINISHED = "finished"   # every task finished
    FAILED = "failed"       # a task failed and nothing else can run
    TIMEOUT = "timeout"     # the timeout passed with tasks left


@dataclass
class Progress:
    """One look at the store while waiting."""

    report: StatusReport
    elapsed: float
    workers: list[jobs.Activity]

    def line(self) -> str:
        t = self.report.total
        total = sum(t.values())
        text = f"{t['finished']} of {total} tasks finished, {t['running']} running, {t['failed']} failed"
        if not self.report.complete:
            text += " (more below a barrier)"
        if self.report.damaged:
            text += (f", {self.report.damaged} found damaged ({damage_hint(self.report.store)} "
                     "to compute them again)")
        if self.workers:
            active = sum(len(a.active) for a in self.workers)
            text += f"; {active} of {sum(a.record.workers for a in self.workers)} workers active"
        return text + f"; waited {format_duration(self.elapsed)}"


@dataclass
class WaitResult:
    outcome: WaitOutcome
    report: StatusReport
    elapsed: float


def judge(report: StatusReport) -> WaitOutcome | None:
    """FINISHED or FAILED when the report shows an end; None while something can still run."""
    if report.all_finished:
        return WaitOutcome.FINISHED
    t = report.total
    if t["failed"] and not t["ready"] and not t["running"]:
        return WaitOutcome.FAILED
    return None


def look(taskfile: str, store: Store, argv: Sequence[str] = ()) -> StatusReport:
    # Confirmed: a stale listing through this client must not keep a finished run waiting.
    return confirmed(taskfile, store, argv)[1]


def wait(taskfile: str, store: str | Store | None = None, argv: Sequence[str] = (),
         timeout: float | None = None, interval: float = DEFAULT_INTERVAL,
         on_progress: Callable[[Progress], None] | None = None,
         clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> WaitResult:
    """Block until every task of `taskfile` is finished, failures block the rest, or `timeout` seconds pass.

    Looks at the store every `interval` seconds and passes each look to
    `on_progress`. `timeout=None` waits forever; 0 looks once.
    """
    if not isinstance(store, Store):
        store = open_store(store_path(taskfile, store))
    store.check_format()
    start = clock()
    while True:
        report = look(taskfile, store, argv)
        elapsed = clock() - start
        log.debug("%s after %.1fs: %s", store, elapsed, report.total)
        if on_progress is not None:
            on_progress(Progress(report, elapsed, jobs.summary(store, jobs.live_workers(report))))
        outcome = judge(report)
        if outcome is not None:
            return WaitResult(outcome, report, elapsed)
        if timeout is not None and elapsed >= timeout:
            return WaitResult(WaitOutcome.TIMEOUT, report, elapsed)
        pause = interval if timeout is None else max(0.0, min(interval, timeout - elapsed))
        sleep(pause)
