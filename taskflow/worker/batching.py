"""Batches of short tasks: one claim for many, so that claiming costs less than running them.

When the tasks of a name are known to be short (from what this worker ran of
them, or from the recorded runtimes of finished ones), a worker takes as many
ready tasks of that name as fit in `--batch-time` (at most a tenth of the
lease), claims them with one `Claims.claim_batch`, looks once for those
finished or failed elsewhere, and runs them one after another. Where the
store saves results together for less (`Store.saves_together`: the folder
store with packs appends them to its pack with one write) their results are
saved together once the batch is run, or once 4 MiB are held, elsewhere each
as it comes;
each only while its claim is still ours (`Claims.holds`), and each member is
released once saved; a failure goes through `Attempts._finish` as for a task
with a claim of its own. One heartbeat renews the batch's lease. A worker
killed mid-batch leaves the results it held unsaved: those tasks run again
elsewhere, as a task killed while it ran does.

A batch starts at one task for a name of unknown duration and grows at most
fourfold from one batch to the next, and never takes more than the ready
tasks over twice the active workers, so that others are not left idle at the
end of a run. Every guarantee stays per task: a member another worker took
over is not saved (`Claims.holds`), and the members a dead owner left are
taken over one by one, as any stale claim.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from ..encoding import Payload
from ..executors import Done, Job
from ..signals import Terminated
from ..stores.base import Claim, Store
from ..stores.lease import Heartbeat
from ..task import Task
from .attempt import Attempts
from .options import RunSummary
from .walltime import Runtimes

if TYPE_CHECKING:
    from .fitting import Picker

log = logging.getLogger(__name__)

# Seconds a task is taken to cost at least, whatever it measured: claiming, saving and
# releasing it take about this long.
MIN_SECONDS = 1e-4
MAX_BATCH = 1000      # tasks in one batch at most, however short
GROWTH = 4            # a name's batch grows at most this much from one batch to the next
WORKERS_AFTER = 10.0  # seconds: count the active workers again at most this often
HELD_BYTES = 4 << 20  # results of a batch held to be saved together, at most


class Sizer:
    """How many tasks of a name to claim together."""

    def __init__(self, batch_time: float, lease: float):
        self.bound = min(batch_time, lease / 10) if batch_time > 0 else 0.0
        self.seconds: dict[str, float] = {}  # name: what one task of it takes here, claim to release
        self.last: dict[str, int] = {}       # name: the size of its last batch
        self.runtimes: Runtimes | None = None
        self.running: Batch | None = None  # the batch a worker is running
        self._workers = (-WORKERS_AFTER, 1)  # (when counted, active workers)

    def begin(self, store: Store, index: dict[str, Task], finished: set[str]) -> None:
        if self.bound <= 0:
            return
        by_name: dict[str, list[Task]] = {}
        for t in index.values():
            by_name.setdefault(t.name, []).append(t)
        self.runtimes = Runtimes(store, lambda name: [t for t in by_name.get(name, ()) if t.hash in finished])

    def size(self, name: str, ready: int, store: Store) -> int:
        """Tasks of `name` to claim at once, with `ready` tasks ready."""
        if self.bound <= 0:
            return 1
        per = self.seconds.get(name)
        if per is None and self.runtimes is not None:
            per = self.runtimes.expected(name)  # recorded by the workers that ran them
            if per is not None:
                self.seconds[name] = per
        if per is None:
            return 1
        n = min(int(self.bound / max(per, MIN_SECONDS)), MAX_BATCH, GROWTH * self.last.get(name, 1),
                ready // (2 * self._active(store)))
        return max(1, n)

    def ran(self, name: str, tasks: int, seconds: float) -> None:
        """`tasks` of `name` took `seconds` in all: up at once, down by halves."""
        if tasks <= 0:
            return
        per = seconds / tasks
        before = self.seconds.get(name)
        self.seconds[name] = per if before is None or per > before else (before + per) / 2
        self.last[name] = max(tasks, self.last.get(name, 1) if tasks > 1 else 1)

    def _active(self, store: Store) -> int:
        now = time.monotonic()
        if now - self._workers[0] >= WORKERS_AFTER:
            live = sum(1 for r in store.worker_records() if r.live)
            self._workers = (now, max(1, live))
        return self._workers[1]


class Batch:
    """The batch being run: its members' claims, those not yet handed to the executor, its heartbeat."""

    __slots__ = ("claims", "queue", "heartbeat", "started", "name", "held", "size")

    def __init__(self, claims: list[Claim], heartbeat: Heartbeat, name: str):
        self.claims = claims
        self.queue = deque(c.task_hash for c in claims)
        self.heartbeat = heartbeat
        self.started = time.monotonic()
        self.name = name
        self.held: list[tuple[Done, Payload]] = []  # results run and not yet saved
        self.size = 0  # their bytes

    def holds(self, task_hash: str) -> bool:
        return bool(self.held) and self.held[-1][0].task.hash == task_hash


class BatchAttempts(Attempts):
    """Claims short tasks in batches, and runs each batch's members through `Attempts._finish`."""

    # One attribute for batching, with the batch being run (`Sizer.running`): the Worker keeps
    # fewer than 30 (see loop.py).
    sizer: Sizer
    picker: Picker  # the Worker's

    def _begin_batches(self) -> None:
        self.sizer = Sizer(self.options.batch_time, self.leases.lease)
        self.sizer.begin(self.store, self.index, self.finished)

    def _attempt(self, h: str) -> None:
        task = self.index[h]
        executor = self.flight.executor
        if self.sizer.bound <= 0 or executor.slots != 1 or executor.claims or h in self.suspect \
                or h in self.retrying:
            super()._attempt(h)
            return
        n = self.sizer.size(task.name, len(self.ready) + 1, self.store)
        max_tasks = self.options.max_tasks
        if max_tasks is not None:
            n = min(n, max_tasks - self._ran_total - len(self.flight.claims))
        hashes = self._gather(h, n) if n > 1 else [h]
        if len(hashes) < 2:
            super()._attempt(h)
            return
        self._claim_batch(task.name, hashes)

    def _gather(self, h: str, n: int) -> list[str]:
        """`h` and up to n - 1 more ready tasks of its name that this worker may take now."""
        name = self.index[h].name
        members, skipped, seen = [h], [], 0
        flying = self.flight.claims
        while self.ready and len(members) < n and seen < 4 * n:
            x = self.ready.popleft()
            seen += 1
            if x in self.finished or x in self.failed or x in flying or x in members:
                continue
            t = self.index[x]
            if t.name != name or x in self.suspect or x in self.retrying:
                skipped.append(x)
            elif self.picker.take(t):  # as the loop would ask before claiming it; else set aside
                members.append(x)
        self.ready.extendleft(reversed(skipped))
        return members

    def _claim_batch(self, name: str, hashes: list[str]) -> None:
        claims = self.leases.claim_batch(hashes)
        if len(claims) < len(hashes):
            got = {c.task_hash for c in claims}
            for h in hashes:
                if h not in got:
                    self.elsewhere.add(h)
                    self.collisions += 1
            self.crowded = True
            self._jump()
        if not claims:
            return
        held = [c.task_hash for c in claims]
        finished = self.store.finished_among(held)
        failed = self.store.failed_among([h for h in held if h not in finished])
        run = []
        for c in claims:
            h = c.task_hash
            if h in finished:
                self._met_finished(h)
            elif h in failed and self._failed_elsewhere(h):
                self.failed.add(h)
            else:
                run.append(c)
                continue
            self.leases.release_finished(c)
        if not run:
            self.leases.release_all(claims)
            return
        heartbeat = self.flight.idle.pop()
        heartbeat.watch(run)
        for c in run:
            self.flight.claims[c.task_hash] = (c, heartbeat)
        self.sizer.running = Batch(run, heartbeat, name)

    def _complete(self, summary: RunSummary) -> bool:
        batch = self.sizer.running
        if batch is None:
            return super()._complete(summary)
        go_on = True
        try:
            while batch.queue and go_on:
                h = batch.queue.popleft()
                task = self.index[h]
                claim = self.flight.claims[h][0]
                if claim is not None and not self.leases.holds(claim):  # a look only once the batch is old
                    log.warning("lost the claim on %s (%s) before running it: %s", task.name, h[:12],
                                claim.why or "another worker took it over")
                    del self.flight.claims[h]
                    self._lost(h)
                    continue
                self.reporter.task_started(task)
                self.flight.executor.submit(Job(task, self._lookup))
                while h in self.flight.claims and not batch.holds(h):  # again while `retries=` says so
                    for done in self.flight.executor.complete():
                        if not self._hold(batch, done):
                            go_on = self._finish(done, summary) and go_on
                if batch.size >= HELD_BYTES:
                    self._save_held(batch, summary)
            self._save_held(batch, summary)
        finally:
            self._end_batch(batch)
        self.sizer.ran(batch.name, len(batch.claims) - len(batch.queue), time.monotonic() - batch.started)
        return go_on

    def _hold(self, batch: Batch, done: Done) -> bool:
        """Keep a result that came back to be saved with the others of its batch; False for what
        `_finish` deals with: a failure, a retried task, an input gone, a value that cannot be
        encoded, and every result where saving them together costs no less (`saves_together`)."""
        task = done.task
        if done.failure is not None or done.gone is not None or task.hash in self.flight.tries \
                or not self.store.saves_together:
            return False
        try:
            payload = self._payload(done)
        except (KeyboardInterrupt, Terminated):
            raise
        except BaseException:
            return False  # encoded again by _finish, which records the failure
        batch.held.append((done, payload))
        batch.size += sum(payload.sizes)
        return True

    def _save_held(self, batch: Batch, summary: RunSummary) -> None:
        """Save the results held, those whose claims are still ours, together; then release them."""
        held, batch.held, batch.size = batch.held, [], 0
        keep = []
        for done, payload in held:
            h = done.task.hash
            claim = self.flight.claims[h][0]
            assert claim is not None
            if self.leases.holds(claim):
                keep.append((done, payload, claim))
                continue
            log.warning("lost the claim on %s (%s) while running it: %s; discarding this result",
                        done.task.name, h[:12], claim.why or "another worker took it over")
            del self.flight.claims[h]
            self._lost(h)
        if not keep:
            return
        sizes = self.store.save_payloads([(done.task.hash, payload) for done, payload, _ in keep])
        for (done, _, claim), size in zip(keep, sizes, strict=True):
            del self.flight.claims[done.task.hash]
            self._saved(done.task, done, claim, size, summary)
            if self.picker.time_left is not None:  # as Worker._finish asks
                self.picker.ran(done.task, done.seconds)
            self.leases.release_finished(claim)

    def _unwatch(self, heartbeat: Heartbeat) -> None:
        if self.sizer.running is None or heartbeat is not self.sizer.running.heartbeat:
            super()._unwatch(heartbeat)  # the batch's goes back when the batch ends

    def _finish(self, done: Done, summary: RunSummary) -> bool:
        go_on = super()._finish(done, summary)
        if self.sizer.bound > 0 and self.sizer.running is None and done.task.hash in self.finished:
            self.sizer.ran(done.task.name, 1, done.seconds)
        return go_on

    def _end_batch(self, batch: Batch) -> None:
        """Give back the batch's heartbeat and whatever it still claims (members not run: a failure
        stopped the run, or a signal)."""
        self.sizer.running = None
        for c in batch.claims:  # all finished and given back already, unless the run stops
            self.flight.claims.pop(c.task_hash, None)
        batch.heartbeat.watch(None)
        self.flight.idle.append(batch.heartbeat)
        self.leases.release_all(batch.claims)

    def _give_back(self) -> None:
        if self.sizer.running is not None:
            self._end_batch(self.sizer.running)
        super()._give_back()
