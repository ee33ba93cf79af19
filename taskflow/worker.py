"""The worker loop: claim a ready task, run it, save its result, repeat.

Workers share nothing but the store. Each keeps its own view of the graph
(which tasks are finished, which wait on what) and corrects it from the store
when it meets evidence that others moved on: a claim held by someone else, a
result that appeared, or nothing left to do while others still run.
"""
from __future__ import annotations

import enum
import errno
import logging
import os
import random
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import confirm, damage
from .encoding import Payload
from .errors import CorruptResultError, StoreAccessError, StoreError
from .memory import task_peak_bytes
from .stores.base import Claim, Store
from .stores.identity import HOST, gone_from_here, result_meta
from .stores.lease import DEFAULT_LEASE, Heartbeat
from .task import Task

log = logging.getLogger(__name__)

# Look again at the tasks others hold after this many collisions with them.
REFRESH_AFTER_COLLISIONS = 32
# Results this worker made, kept in memory for their only remaining consumer.
HANDOFF_BYTES = 1 << 30
IDLE_FIRST_SLEEP = 0.02
IDLE_MAX_SLEEP = 2.0


class Outcome(enum.Enum):
    FINISHED = "finished"      # every task finished
    FAILED = "failed"          # some task failed; nothing else could run (or not --keep-going)
    REMAINING = "remaining"    # stopped early (limits, STOP, --wait) with work left
    TERMINATED = "terminated"  # SIGTERM: claims released, work left


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM so that `finally` releases the claim."""


class _DependencyGone(Exception):
    def __init__(self, task_hash: str):
        self.task_hash = task_hash


class _InputUnreadable(Exception):
    """An input's result that this installation cannot read (a checksum it cannot compute): the
    environment's fault, not the task's, so it stops the worker instead of failing the task."""

    def __init__(self, error: StoreError):
        self.error = error


@dataclass
class Options:
    keep_going: bool = False
    retry_failed: bool = False
    targets: Sequence[str] = ()
    lease: float = DEFAULT_LEASE
    wait: float | None = None        # seconds to wait for others before giving up; None: forever
    max_tasks: int | None = None
    max_time: float | None = None    # seconds after start: take no new task after this
    rank: int | None = None          # this worker's place among `size`, to spread start points
    size: int | None = None
    verify: bool = False             # check every finished result first (this worker's share of them)
    stop_files: tuple = ()           # more files that, like STOP, make the worker take no new task


class NamedTask(Protocol):
    """What a reporter reads of a failed task: a Task here, its name and hash sent by a --jobs worker."""

    @property
    def name(self) -> str: ...
    @property
    def hash(self) -> str: ...


class Reporter:
    """Receives progress events; the default one says nothing."""

    def begin(self, total: int, finished: int, failed: int) -> None: ...
    def task_started(self, task: Task) -> None: ...
    def task_finished(self, task: Task, seconds: float) -> None: ...
    def task_failed(self, task: NamedTask, message: str) -> None: ...
    def learned(self, finished: int, failed: int) -> None: ...
    def progress(self, done: int, current: str) -> None: ...
    def already_finished(self, total: int) -> None: ...
    def end(self) -> None: ...


@dataclass
class RunSummary:
    outcome: Outcome
    ran: int = 0
    failed: int = 0
    total: int = 0
    failed_hashes: set = field(default_factory=set)
    # Set when the run stops on failures: the failed tasks that keep it from finishing
    # (name, hash), and how many unfinished tasks wait on them.
    blockers: list = field(default_factory=list)
    blocked: int = 0
    already_finished: bool = False   # every task was finished before this worker looked


class Worker:
    def __init__(self, store: Store, options: Options | None = None, reporter: Reporter | None = None,
                 clock: Callable[[], float] = time.time):
        self.store = store
        self.options = options or Options()
        self.reporter = reporter or Reporter()
        self.leases = store.claims(self.options.lease, clock=clock)
        self._started = time.monotonic()
        self._ran_total = 0
        self._stop_checked = 0.0
        self._signals = _Signals()
        self.journal = store.journal()
        self.news = store.news()
        self.verified: set[str] = set()

    # -- graph bookkeeping ----------------------------------------------

    def _prepare(self, tasks: list[Task]) -> None:
        self.index = {t.hash: t for t in tasks}
        self.news.start()  # before listing: what is journaled from now on is news
        self.finished = self.store.finished_hashes() & self.index.keys()
        self._recheck_suspects()
        if self.options.verify:
            self._verify()
        failed = self.store.failed_hashes() & self.index.keys()
        self.retrying = failed if self.options.retry_failed else set()
        self.failed = set() if self.options.retry_failed else failed
        # A failure recorded after this point came from a peer's retry in this run: keep it.
        self.retry_cutoff = self.leases.now() if self.retrying else 0.0
        self.dependents: dict[str, list[str]] = {}
        self.waiting_on: dict[str, int] = {}
        for t in tasks:
            if t.hash in self.finished:
                continue
            n = 0
            for d in t.deps:
                if d.hash not in self.finished:
                    n += 1
                    self.dependents.setdefault(d.hash, []).append(t.hash)
            self.waiting_on[t.hash] = n
        self.ready = deque(h for h, n in self.waiting_on.items() if n == 0 and h not in self.failed)
        # How many tasks of this run still need each result, and results this worker
        # made that are waiting for their consumer (see _lookup).
        self.uses: dict[str, int] = {}
        for t in tasks:
            if t.hash not in self.finished:
                for d in t.deps:
                    self.uses[d.hash] = self.uses.get(d.hash, 0) + 1
        self.handoff: dict[str, tuple[Any, int]] = {}
        self.handoff_bytes = 0
        self.elsewhere: set[str] = set()
        self.suspect: set[str] = set()  # judged stale: take over on the next attempt
        self.collisions = 0
        self.jumped = False
        # Other workers seen at work: vary the order of new batches, look before claiming.
        self.crowded = self._others_at_work()
        # Workers started together must not all go for the same first claim: each
        # starts at its own share of the ready list, or at a random point when
        # others are at work already. A lone worker keeps declaration order; one
        # of many started at once without knowing its place jumps elsewhere after
        # its first collision (a failed claim: one system call).
        if self.ready:
            self.ready.rotate(-self._offset(len(self.ready)))

    def _others_at_work(self) -> bool:
        """Whether another worker's journal or claim is in the store, not counting what workers
        that died on this host left behind.

        Reads no claim when a journal is there (the common case among many workers),
        else claims until one of a worker not known to be gone.
        """
        if self.news.journals_seen(skip=self.journal.ident):
            return True
        for name in self.leases.claimed():
            owner = self.leases.owner(name)
            if owner is not None and not gone_from_here(owner):
                return True
        return False

    def _verify(self) -> None:
        """Check finished results not checked before; damaged ones are removed and run again.

        Workers that know their place among the others (--jobs, array jobs)
        share the work; a damaged result another worker removes is met as
        missing and run again.
        """
        todo = sorted(self.finished - self.verified)
        self.verified.update(todo)
        if self.options.rank is not None and self.options.size:
            todo = todo[self.options.rank::self.options.size]
        for h, reason in self.store.damaged(todo):
            self._damaged(h, reason)

    def _damaged(self, h: str, reason: str) -> None:
        """Result h failed its check: move it aside and count it as missing, unless it reads
        intact from a fresh open (this client's cache was stale)."""
        moved = damage.move_aside(self.store, h)
        if moved is not None:
            log.warning("%s; moved to %s; computing %s again", reason, moved, self.index[h].name)
            self.finished.discard(h)

    def _recheck_suspects(self) -> None:
        """Results of this graph some command marked damaged: read them again from a fresh open."""
        for h in sorted(self.store.suspect_hashes() & self.index.keys()):
            try:
                reason = damage.recheck(self.store, h)
            except FileNotFoundError:
                damage.unmark(self.store, h)
                self.finished.discard(h)
                continue
            if reason is None:
                log.info("the result of %s (%s) marked damaged reads intact from a fresh open; keeping it",
                         self.index[h].name, h[:12])
                damage.unmark(self.store, h)
                self.finished.add(h)
            else:
                self._damaged(h, f"corrupt result {self.store.location('result', h)}: {reason}")

    def _all_in_store(self) -> bool:
        """Before saying every task finished: are their results all in the store?

        One listing of the results and one of suspect/, plus an open for each
        result the listing lacks (a stale listing is no reason to run a task
        again). Results that vanished (removed by hand, moved aside as
        damaged) are queued to run again; False then.
        """
        self.journal.flush()
        listed = self.store.finished_hashes()
        self._recheck_suspects()
        lacking = [h for h in self.index if h not in listed and h in self.finished]
        gone = set(lacking) - confirm.present(self.store, lacking)
        gone.update(h for h in self.index if h not in self.finished)
        if not gone:
            confirm.record_complete(self.store, list(self.index), self.leases.worker)
            return True
        log.warning("%d result(s) vanished from the store while this worker ran; computing them again",
                    len(gone))
        for h in gone:
            self.finished.discard(h)
        for h, task in self.index.items():  # declaration order: inputs first
            if h not in gone:
                continue
            waiting = 0
            for d in task.deps:
                self.uses[d.hash] = self.uses.get(d.hash, 0) + 1
                if d.hash not in self.finished:
                    waiting += 1
                    self.dependents.setdefault(d.hash, []).append(h)
            self.waiting_on[h] = waiting
            if waiting == 0:
                self.ready.append(h)
        self.reporter.learned(len(self.finished), len(self.failed))
        return False

    def _mark_finished(self, h: str) -> None:
        if h in self.finished:
            return
        self.finished.add(h)
        self.elsewhere.discard(h)
        newly = []
        for d in self.dependents.pop(h, ()):
            self.waiting_on[d] -= 1
            if self.waiting_on[d] == 0 and d not in self.finished and d not in self.failed:
                newly.append(d)
        if newly:
            # Every worker learns of the same batch in the same order: start each at its
            # own point in it, or they would walk it in lockstep, colliding at every task.
            k = self._offset(len(newly))
            # Depth first: consume results while they are fresh.
            self.ready.extendleft(reversed(newly[k:] + newly[:k]))

    def _offset(self, n: int) -> int:
        if self.options.rank is not None and self.options.size:
            return n * self.options.rank // self.options.size
        return random.randrange(n) if self.crowded else 0

    def _unfinish(self, h: str, waiter: str) -> None:
        """A dependency's result vanished or was corrupt: run it again before `waiter`."""
        self.finished.discard(h)
        self.dependents.setdefault(h, []).append(waiter)
        self.waiting_on[waiter] = self.waiting_on.get(waiter, 0) + 1
        self.waiting_on.setdefault(h, 0)
        self.ready.appendleft(h)

    def _refresh(self) -> bool:
        """Learn from the store what became of the tasks others hold; True if anything changed.

        What others finished comes from their journals (`Store.news`); a
        task held by another worker gets a look at its result too, since that
        worker may not have written its journal yet. Anything else others
        finished this worker learns when it meets the task (see _attempt), at
        one system call each. Never a listing of the store: five calls per
        shard, 1,280 in all, from every worker.
        """
        changed = False
        self.journal.flush()
        done = self.news.news(skip=self.journal.ident) & self.index.keys()
        done.update(h for h in self.elsewhere if h not in done and self.store.has_result(h))
        for h in done:
            if h not in self.finished:
                self._mark_finished(h)
                changed = True
        for h in list(self.elsewhere):
            if h in self.finished:
                continue
            if self._failed_elsewhere(h):
                self.elsewhere.discard(h)
                self.failed.add(h)
                changed = True
                continue
            info = self.leases.inspect(h)
            if info is None or info.stale:
                self.elsewhere.discard(h)
                if info is not None:
                    self.suspect.add(h)
                self.ready.append(h)
                changed = True
        self.collisions = 0
        self.jumped = False
        if changed:
            self.reporter.learned(len(self.finished), len(self.failed))
        return changed

    def _lost(self, h: str) -> None:
        # The task is now another worker's: wait for its outcome like for any
        # task run elsewhere, rather than conclude that nothing is left to wait for.
        self.elsewhere.add(h)

    def _failed_elsewhere(self, h: str) -> bool:
        recorded = self.store.failure_time(h)
        if recorded is None:
            return False
        return h not in self.retrying or recorded >= self.retry_cutoff

    def _remaining(self) -> int:
        return len(self.index) - len(self.finished)

    # -- limits -----------------------------------------------------------

    def _limit_reached(self) -> str | None:
        o = self.options
        if o.max_tasks is not None and self._ran_total >= o.max_tasks:
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

    # -- running ------------------------------------------------------------

    def _lookup(self, task: Task) -> Any:
        held = self.handoff.get(task.hash)
        if held is not None and self.uses.get(task.hash) == 1:
            # Its last consumer: hand over the object this worker made instead of
            # reading it back. Only the last one, so no task ever sees what
            # another task did to its input.
            del self.handoff[task.hash]
            self.handoff_bytes -= held[1]
            return held[0]
        try:
            result = self.store.load_value(task.hash)
        except FileNotFoundError:
            raise _DependencyGone(task.hash) from None
        except StoreError as e:
            raise _InputUnreadable(e) from None
        except CorruptResultError as e:
            try:
                # This client's cache may hold pages of a file another client replaced.
                return self.store.load_value(task.hash, fresh=True)
            except FileNotFoundError:
                raise _DependencyGone(task.hash) from None
            except CorruptResultError:
                pass
            self._damaged(task.hash, str(e))
            raise _DependencyGone(task.hash) from None
        return result

    def _attempt(self, h: str, heartbeat: Heartbeat, summary: RunSummary) -> bool:
        """Try to claim and run task h; returns False when the run must stop (a failure)."""
        if self.crowded and h not in self.suspect and self.store.has_result(h):
            # Among other workers a ready task is often done already: one look
            # is cheaper than claiming it (three calls) and giving it back.
            self._met_finished(h)
            return True
        claim = self.leases.claim(h, take_over=h in self.suspect)
        self.suspect.discard(h)
        if claim is None:
            self.elsewhere.add(h)
            self.collisions += 1
            self.crowded = True
            self._jump()
            return True
        try:
            if self.store.has_result(h):
                self._met_finished(h)
                return True
            if self._failed_elsewhere(h):
                self.failed.add(h)
                return True
            return self._run(self.index[h], claim, heartbeat, summary)
        finally:
            self.leases.release(claim)

    def _met_finished(self, h: str) -> None:
        """Task h turned out to be finished by someone else."""
        self.collisions += 1
        self.crowded = True
        self._mark_finished(h)
        self._jump()

    def _jump(self) -> None:
        # Probably at the same point as another worker: go elsewhere (once between
        # two looks at the store, since a rotation costs O(n)).
        if not self.jumped and self.ready:
            self.jumped = True
            self.ready.rotate(random.randrange(len(self.ready)))

    def _run(self, task: Task, claim: Claim, heartbeat: Heartbeat, summary: RunSummary) -> bool:
        self.reporter.task_started(task)
        started = time.time()
        t0 = time.monotonic()
        heartbeat.watch(claim)
        try:
            try:
                self._signals.allow()
                try:
                    loaded: dict[str, Any] = {}  # each input once, however often the arguments name it
                    result = task.run(lambda dep: loaded[dep.hash] if dep.hash in loaded
                                      else loaded.setdefault(dep.hash, self._lookup(dep)))
                finally:
                    self._signals.interruptible = False  # first thing: no call may come before it
                seconds = time.monotonic() - t0
                # Encoded here: a result that cannot be pickled is the task's failure,
                # while a failing write (see below) is the store's and stops the worker.
                payload = Payload(result, result_meta(task, started, seconds, self.leases.worker,
                                                      {"max_rss_bytes": task_peak_bytes()}))
            except _DependencyGone as e:
                self._unfinish(e.task_hash, task.hash)
                return True
            except _InputUnreadable as e:
                raise e.error from None
            except (KeyboardInterrupt, Terminated):
                raise
            except BaseException as e:  # a task's SystemExit is the task failing
                return self._record_failure(task, claim, e, started, summary)
            if not self.leases.holds(claim):
                log.warning("lost the claim on %s (%s) while running it: %s; discarding this result",
                            task.name, task.hash[:12], claim.why or "another worker took it over")
                self._lost(task.hash)
                return True
            size = self.store.save_payload(task.hash, payload)
        finally:
            heartbeat.watch(None)
        del payload
        self._consumed(task)
        if self.uses.get(task.hash) and self.handoff_bytes + size <= HANDOFF_BYTES:
            self.handoff[task.hash] = (result, size)
            self.handoff_bytes += size
        del result
        if task.hash in self.retrying:
            self.store.remove_failure(task.hash)
            self.retrying.discard(task.hash)
        self._ran_total += 1
        summary.ran += 1
        self.journal.add(task.hash)
        self._mark_finished(task.hash)
        self.reporter.task_finished(task, seconds)
        return True

    def _consumed(self, task: Task) -> None:
        """`task` will not run again in this run: it no longer needs its inputs."""
        for d in task.deps:
            left = self.uses.get(d.hash, 0) - 1
            self.uses[d.hash] = left
            if left <= 0 and d.hash in self.handoff:
                self.handoff_bytes -= self.handoff.pop(d.hash)[1]

    def _record_failure(self, task: Task, claim: Claim, e: BaseException, started: float,
                        summary: RunSummary) -> bool:
        message = str(e) or type(e).__name__
        if not self.leases.holds(claim):
            log.warning("lost the claim on %s (%s) while running it: %s; discarding this failure (%s: %s)",
                        task.name, task.hash[:12], claim.why or "another worker took it over",
                        type(e).__name__, message)
            self._lost(task.hash)
            return True
        self.store.save_failure(task.hash, {
            "name": task.name, "hash": task.hash, "type": type(e).__name__, "message": message,
            "traceback": "".join(traceback.format_exception(type(e), e, e.__traceback__)),
            "host": HOST, "pid": os.getpid(), "worker": self.leases.worker,
            "started": started, "time": time.time()})
        self.failed.add(task.hash)
        self.retrying.discard(task.hash)
        self._consumed(task)
        summary.failed += 1
        summary.failed_hashes.add(task.hash)
        self.reporter.task_failed(task, f"{type(e).__name__}: {message}")
        return self.options.keep_going

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
                raise StoreAccessError(f"{what} {folder}: {e.strerror} (a worker must read and write "
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
        task_peak_bytes()  # so that the first task's peak is its own, not the taskfile's
        self.reporter.begin(len(tasks), len(self.finished), len(self.failed))
        heartbeat = Heartbeat(self.leases)
        self._signals = _Signals()
        restore = self._signals.install()
        try:
            summary.outcome = self._loop(heartbeat, summary)
            self._signals.deliver()  # one that came while the last claim was given back
        except Terminated:
            summary.outcome = Outcome.TERMINATED
        finally:
            heartbeat.stop()
            restore()
            self.journal.close()
            self.leases.close()
            self.reporter.end()
        return summary

    def _loop(self, heartbeat: Heartbeat, summary: RunSummary) -> Outcome:
        sleep = IDLE_FIRST_SLEEP
        idle_since: float | None = None
        while True:
            self._signals.deliver()
            if self._remaining() == 0:
                if summary.failed:
                    return Outcome.FAILED
                if self._all_in_store():
                    return Outcome.FINISHED
                continue
            if self.ready:
                h = self.ready.popleft()
                if h in self.finished or h in self.failed:
                    continue
                reason = self._limit_reached()
                if reason:
                    log.info("taking no new task: %s", reason)
                    return Outcome.REMAINING
                if not self._attempt(h, heartbeat, summary):
                    return Outcome.FAILED
                if self.collisions >= REFRESH_AFTER_COLLISIONS:
                    self._refresh()
                sleep, idle_since = IDLE_FIRST_SLEEP, None
                continue
            # Nothing we can start: others are running tasks, or failures block the rest.
            if self._refresh():
                continue
            if not self.elsewhere:
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
                time.sleep(sleep * random.uniform(0.5, 1.0))
            finally:
                self._signals.interruptible = False
            sleep = min(IDLE_MAX_SLEEP, sleep * 2)


class _Signals:
    """SIGINT and SIGTERM in the main thread while a worker runs.

    They raise KeyboardInterrupt or Terminated at once while a task runs or the
    worker sleeps; anywhere else they wait for the next pass of the loop. Raised
    while a claim is being taken or given back, they would leave a lock file
    nobody releases, which workers on other hosts respect for a whole lease;
    and Ctrl-C under --jobs often arrives twice (from the terminal and from
    the parent), the second while the first is being handled.
    """

    def __init__(self) -> None:
        self.interruptible = False
        self.pending: int | None = None

    def install(self) -> Callable[[], None]:
        """Take over the signals; returns the undo."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            current = signal.getsignal(signum)
            if signum == signal.SIGINT and current is not signal.default_int_handler:
                continue  # ignored (a background job) or someone else's: leave it so
            previous[signum] = signal.signal(signum, self._on_signal)

        def restore() -> None:
            for signum, handler in previous.items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        return restore

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.interruptible:
            raise _exception_for(signum)
        if self.pending is None:
            self.pending = signum

    def allow(self) -> None:
        """Let signals raise from now on (until `interruptible` is reset), starting with a held one."""
        self.interruptible = True
        self.deliver()

    def deliver(self) -> None:
        if self.pending is not None:
            signum, self.pending = self.pending, None
            raise _exception_for(signum)


def _exception_for(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated()
