"""The worker loop: claim a ready task, have it run, save its result, repeat.

Workers share nothing but the store. A Worker is built of parts, each
extending the one before: checks.py (results checked again), graph.py (the
ready set), refresh.py (what others did), handoff.py (inputs), attempt.py
(claim, run through the executor, save, release), batching.py (short tasks
claimed and saved many at a time), remote.py (executors that claim where they
run) and this module (the loop, limits, signals).
"""
from __future__ import annotations

import errno
import logging
import os
import random
import time
from collections.abc import Callable

from .. import confirm
from ..errors import StoreAccessError
from ..executors import Done, executor_class
from ..memory import task_peak_bytes
from ..signals import Signals, Terminated
from ..stores.base import Store
from ..stores.lease import Heartbeat
from ..task import Task
from .attempt import InFlight
from .fitting import Picker
from .remote import RemoteAttempts
from .options import Options, Outcome, RunSummary
from .presence import Presence
from .reporter import Reporter
from .share import MachineShare
from .wakeup import Wakeup
from .walltime import deadline

log = logging.getLogger(__name__)

# Look again at the tasks others hold after this many collisions with them.
REFRESH_AFTER_COLLISIONS = 32
IDLE_FIRST_SLEEP = 0.02
IDLE_MAX_SLEEP = 2.0


class Worker(RemoteAttempts):
    def __init__(self, store: Store, options: Options | None = None, reporter: Reporter | None = None,
                 clock: Callable[[], float] = time.time):
        # Fewer than 30 attributes in all (the parts set the others): beyond that CPython gives up the
        # shared-key instance dict, and every attribute access on the per-task path gets slower.
        self.store = store
        self.options = options or Options()
        self.reporter = reporter or Reporter()
        executor_class(self.options.executor)  # an unknown name fails here, before any work
        self.leases = store.claims(self.options.lease, clock=clock)
        self._started = time.monotonic()
        self._ran_total = 0
        self._stop_checked = 0.0
        self._signals = Signals()
        self.journal = store.journal()
        self.news = store.news()
        self.verified: set[str] = set()
        o = self.options
        self.picker = Picker(o.capacity, MachineShare(o.share) if o.share else None)

    def run(self, tasks: list[Task]) -> RunSummary:
        """Run what can be run of `tasks` (in declaration order, targets already selected) to the end.

        Raises StoreAccessError when the store cannot be read or written; the
        claim of the task at hand is given back first.
        """
        try:
            return self._run_all(tasks)
        except OSError as e:  # the tasks' own errors are failures: this one is taskflow's, on the store
            where = e.filename or self.store.location("store")
            if e.errno in (errno.EROFS, errno.EACCES):  # the store as a whole, most likely: name the folder
                folder = os.path.dirname(where) if e.filename else where
                what = "cannot write in" if e.errno == errno.EROFS else "no access to"
                from ..stores.modes import owners  # only on this path

                who = f" ({owners(folder)})" if owners(folder) else ""
                raise StoreAccessError(f"{what} {folder}: {e.strerror}{who} (a worker must read and write "
                                       "claims and results in the store)", path=folder) from e
            raise StoreAccessError(f"store I/O error on {where}: {e.strerror or e}", path=where) from e

    def _run_all(self, tasks: list[Task]) -> RunSummary:
        self._prepare(tasks)
        summary = RunSummary(Outcome.FINISHED, total=len(tasks))
        if self._remaining() == 0:
            summary.already_finished = True
            confirm.record_complete(self.store, list(self.index), self.leases.worker)
            return summary
        self.store.ensure()
        self.store.expect_results(len(self.index))
        o = self.options
        self.picker.begin(self.store, self.index, self.finished, deadline(self._started, o.max_time, o.time_left),
                          o.resource_defaults)
        self._begin_batches()
        presence = Presence(self.store, self.leases.worker, self.picker)
        task_peak_bytes()  # so that the first task's peak is its own, not the taskfile's
        self.reporter.begin(len(tasks), len(self.finished), len(self.failed))
        self._signals = Signals()
        executor = executor_class(self.options.executor)(self._signals, **self.options.executor_args)
        # One heartbeat per claim this process holds; none where the executor's engines hold them.
        beats = 0 if executor.claims else executor.slots
        self.flight = InFlight(executor, [Heartbeat(self.leases) for _ in range(beats)])
        restore = self._signals.install()
        try:
            summary.outcome = self._loop(summary)
            self._signals.deliver()  # one that came while the last claim was given back
        except Terminated:
            summary.outcome = Outcome.TERMINATED
        finally:
            try:
                self._give_back()
            finally:
                executor.close()
                for heartbeat in self.flight.heartbeats:
                    heartbeat.stop()
                restore()
                presence.stop()
                self.picker.end_pass()
                self.store.close_results()
                self.journal.close()
                self.leases.close()
                self.reporter.end()
        return summary

    def _loop(self, summary: RunSummary) -> Outcome:
        sleep = IDLE_FIRST_SLEEP
        wakeup = Wakeup(self.options.wake_fd)
        idle_since: float | None = None
        flying, slots = self.flight.claims, self.flight.executor.slots
        while True:
            self._signals.deliver()
            if flying and (not self.ready or len(flying) >= slots):
                if not self._complete(summary):
                    return self._drain(summary, Outcome.FAILED)
                if self.collisions >= REFRESH_AFTER_COLLISIONS:
                    self._refresh()
                sleep, idle_since = IDLE_FIRST_SLEEP, None
                continue
            if self._remaining() == 0:
                if summary.failed:
                    return Outcome.FAILED
                if self._all_in_store():
                    return Outcome.FINISHED
                continue
            if self.ready:
                h = self.ready.popleft()
                if h in self.finished or h in self.failed or h in flying:
                    continue
                reason = self._limit_reached()
                if reason:
                    log.info("taking no new task: %s", reason)
                    return self._drain(summary, Outcome.REMAINING)
                self._attempt(h)
                # At once, not on the next pass: with one slot, the task runs right after its claim.
                if len(flying) >= slots and not self._complete(summary):
                    return self._drain(summary, Outcome.FAILED)
                if self.collisions >= REFRESH_AFTER_COLLISIONS:
                    self._refresh()
                sleep, idle_since = IDLE_FIRST_SLEEP, None
                continue
            # Nothing we can start: others are running tasks, or failures block the rest.
            if self.picker.retry_deferred(self.ready):
                continue
            # What others finished may leave nothing for this worker to do: then it waits a first
            # pause, or every idle worker would read every journal at every task others finish
            # (the end of a run with many workers); the pauses grow only while nothing changes.
            changed = self._refresh()
            if changed and (self.ready or not self.elsewhere or self._remaining() == 0):
                continue
            if changed:
                sleep = IDLE_FIRST_SLEEP
            if not self.elsewhere:
                leaving = self.picker.leaving(self.index)
                if leaving:
                    log.warning("taking no new task: %s", leaving)
                    if not self.failed:
                        return Outcome.REMAINING
                summary.blockers = sorted((self.index[h].name, h) for h in self.failed)
                summary.blocked = self._remaining() - len(self.failed)
                return Outcome.FAILED
            now = time.monotonic()
            idle_since = idle_since or now
            if self.options.wait is not None and now - idle_since >= self.options.wait:
                log.info("waited %.0fs for other workers; %d tasks remain", now - idle_since, self._remaining())
                return Outcome.REMAINING
            reason = self._limit_reached()
            if reason and reason.startswith(self.store.location("stop")):
                return Outcome.REMAINING
            self._signals.allow()
            try:
                wakeup.pause(sleep * random.uniform(0.5, 1.0))
            finally:
                self._signals.interruptible = False
            sleep = min(IDLE_MAX_SLEEP, sleep * 2)

    def _attempt(self, h: str) -> None:
        # Only what fits this worker, the machine's share left free and the time left (fitting.py).
        if self.picker.take(self.index[h]):
            super()._attempt(h)
            if self.picker.reserved or self.picker.devices_set:  # something to give back: rare
                self.picker.settle(self.flight.claims, self.ready)

    def _complete(self, summary: RunSummary) -> bool:
        go_on = super()._complete(summary)
        if self.picker.reserved or self.picker.devices_set:
            self.picker.settle(self.flight.claims, self.ready)
        return go_on

    def _finish(self, done: Done, summary: RunSummary) -> bool:
        go_on = super()._finish(done, summary)
        if self.picker.time_left is not None and done.task.hash in self.finished:
            self.picker.ran(done.task, done.seconds)  # what tasks of this name take, for the time left
        return go_on

    def _drain(self, summary: RunSummary, outcome: Outcome) -> Outcome:
        """Stopping: take in what the executor is still running (its results and failures count) first."""
        while self.flight.claims:
            self._complete(summary)
        return outcome

    def _limit_reached(self) -> str | None:
        o = self.options
        # Tasks at the executor count as run: they will be by the time it stops.
        if o.max_tasks is not None and self._ran_total + len(self.flight.claims) >= o.max_tasks:
            return f"--max-tasks {o.max_tasks} reached"
        if o.max_time is not None and time.monotonic() - self._started >= o.max_time:
            return f"--max-time {o.max_time:g}s reached"
        now = time.monotonic()
        if now - self._stop_checked > 1.0:
            self._stop_checked = now
            if self.store.stop_requested():
                return f"{self.store.location('stop')} exists"
            for path in o.stop_files:
                if os.path.exists(path):
                    return f"{path} exists"
        return None
