"""One attempt at a task: claim it, have the executor run it, save what came of it, give the claim back."""
from __future__ import annotations

import logging

from ..encoding import Payload
from ..executors import Done, Executor, Failure, Job
from ..signals import Terminated
from ..stores.base import Claim
from ..stores.identity import failure_record, result_meta
from ..stores.lease import Heartbeat
from ..task import Task
from . import died, retries
from .handoff import HANDOFF_BYTES, Handoff
from .options import RunSummary

log = logging.getLogger(__name__)


class InFlight:
    """The executor of one pass over the graph, and the tasks handed to it and not yet back."""

    __slots__ = ("executor", "heartbeats", "claims", "idle", "tries")

    def __init__(self, executor: Executor, heartbeats: list[Heartbeat]):
        self.executor = executor
        self.heartbeats = heartbeats  # one per slot of the executor
        self.idle = list(heartbeats)  # those watching no claim
        # Task hash: its claim and the heartbeat renewing it; (None, None) for a task the executor
        # claims where it runs it (Executor.claims).
        self.claims: dict[str, tuple[Claim | None, Heartbeat | None]] = {}
        # Task hash: its failed attempts so far, while `retries=` runs it again (see retries.py).
        self.tries: dict[str, list[dict]] = {}


class Attempts(Handoff):
    """Claims, hands tasks to the executor, and saves and releases what comes back."""

    flight: InFlight
    _ran_total: int

    def _attempt(self, h: str) -> None:
        """Try to claim task h and hand it to the executor."""
        if self.crowded and h not in self.suspect and self.store.has_result(h):
            # Among other workers a ready task is often done already: one look
            # is cheaper than claiming it (three calls) and giving it back.
            self._met_finished(h)
            return
        claim = self.leases.claim(h, take_over=h in self.suspect)
        self.suspect.discard(h)
        if claim is None:
            self.elsewhere.add(h)
            self.collisions += 1
            self.crowded = True
            self._jump()
            return
        try:
            if self.store.has_result(h):
                self._met_finished(h)
                return
            if self._failed_elsewhere(h):
                self.failed.add(h)
                return
            if claim.died >= self.options.max_attempts:
                self._died_too_often(self.index[h], claim)
                return
            self._submit(self.index[h], claim)
        finally:
            if h not in self.flight.claims:  # once there, given back by _finish or _give_back
                self.leases.release(claim)

    def _submit(self, task: Task, claim: Claim) -> None:
        self.reporter.task_started(task)
        heartbeat = self.flight.idle.pop()
        heartbeat.watch(claim)
        self.flight.claims[task.hash] = (claim, heartbeat)
        self.flight.executor.submit(Job(task, self._lookup))

    def _complete(self, summary: RunSummary) -> bool:
        """Wait for the executor to return tasks and deal with each; False when the run must stop (a failure)."""
        go_on = True
        for done in self.flight.executor.complete():
            go_on = self._finish(done, summary) and go_on
        return go_on

    def _finish(self, done: Done, summary: RunSummary) -> bool:
        task = done.task
        if done.failure is not None and retries.again(done, self.flight.tries):
            self.flight.executor.submit(Job(task, self._lookup))  # in the claim it holds
            return True
        earlier = retries.recorded(self.flight.tries.pop(task.hash, None)) if self.flight.tries else {}
        claim, heartbeat = self.flight.claims.pop(task.hash)
        assert claim is not None and heartbeat is not None, "a task claimed where it ran comes back settled"
        try:
            try:
                if done.gone is not None:
                    self._unfinish(done.gone, task.hash)
                    return True
                if done.failure is not None:
                    return self._record_failure(task, claim, done.failure, done.started, summary, earlier)
                try:
                    # Encoded here: a result that cannot be pickled is the task's failure,
                    # while a failing write (see below) is the store's and stops the worker.
                    payload = self._payload(done, earlier)
                except (KeyboardInterrupt, Terminated):
                    raise
                except BaseException as e:
                    return self._record_failure(task, claim, Failure.of(e), done.started, summary, earlier)
                if not self.leases.holds(claim):
                    log.warning("lost the claim on %s (%s) while running it: %s; discarding this result",
                                task.name, task.hash[:12], claim.why or "another worker took it over")
                    self._lost(task.hash)
                    return True
                size = self.store.save_payload(task.hash, payload)
            finally:
                self._unwatch(heartbeat)
            del payload
            self._saved(task, done, claim, size, summary)
            return True
        finally:
            self.leases.release(claim)

    def _payload(self, done: Done, earlier: dict | None = None) -> Payload:
        """The result as it is stored: its value and metadata. Raises what pickling the value raises."""
        return Payload(done.value, result_meta(done.task, done.started, done.seconds, self.leases.worker,
                                               {"max_rss_bytes": done.peak_bytes, **(earlier or {})}))

    def _saved(self, task: Task, done: Done, claim: Claim, size: int, summary: RunSummary) -> None:
        """The task's result (`size` bytes) is in the store: what follows for the graph and the counts."""
        self._consumed(task)
        if self.uses.get(task.hash) and self.handoff_bytes + size <= HANDOFF_BYTES:
            self.handoff[task.hash] = (done.value, size)
            self.handoff_bytes += size
        done.value = None
        if task.hash in self.retrying:
            self.store.remove_failure(task.hash)
            self.retrying.discard(task.hash)
        if claim.died:  # finished at last: earlier deaths count no more
            self.store.forget_deaths(task.hash)
        self._ran_total += 1
        summary.ran += 1
        self.journal.add(task.hash)
        self._mark_finished(task.hash)
        self.reporter.task_finished(task, done.seconds)

    def _unwatch(self, heartbeat: Heartbeat) -> None:
        """The task this heartbeat renewed is back: it is free for the next one."""
        heartbeat.watch(None)
        self.flight.idle.append(heartbeat)

    def _record_failure(self, task: Task, claim: Claim, failure: Failure, started: float,
                        summary: RunSummary, earlier: dict | None = None) -> bool:
        e = failure.exception
        message = str(e) or type(e).__name__
        if not self.leases.holds(claim):
            log.warning("lost the claim on %s (%s) while running it: %s; discarding this failure (%s: %s)",
                        task.name, task.hash[:12], claim.why or "another worker took it over",
                        type(e).__name__, message)
            self._lost(task.hash)
            return True
        self.store.save_failure(task.hash, {**failure_record(task, e, failure.traceback, started, self.leases.worker),
                                            **(earlier or {})})
        self.failed.add(task.hash)
        self.retrying.discard(task.hash)
        self._consumed(task)
        summary.failed += 1
        summary.failed_hashes.add(task.hash)
        self.reporter.task_failed(task, f"{type(e).__name__}: {message}")
        return self.options.keep_going

    def _died_too_often(self, task: Task, claim: Claim) -> None:
        """Workers died running the task `--max-attempts` times: record that as its failure."""
        record = died.failure_record(task, self.store.deaths(task.hash), claim.died, self.leases.worker)
        self.store.save_failure(task.hash, record)
        self.store.forget_deaths(task.hash)
        self.failed.add(task.hash)
        self.retrying.discard(task.hash)
        self._consumed(task)
        self.reporter.task_failed(task, record["message"])

    def _give_back(self) -> None:
        """The pass ends with tasks still at the executor (Ctrl-C, SIGTERM, an error): release their claims."""
        while self.flight.claims:
            _, (claim, heartbeat) = self.flight.claims.popitem()
            if claim is None or heartbeat is None:  # held where the executor runs it (Executor.claims)
                continue  # that process lets go of it
            heartbeat.watch(None)
            self.flight.idle.append(heartbeat)
            self.leases.release(claim)
