"""Attempts made where the task runs: for an executor that claims, saves and releases on its engines.

With `Executor.claims` set (the ipyparallel executor), the worker takes no
claim: it hands the ready task to the executor, whose job claims it on the
engine through the store interface, runs it, saves its result or failure and
releases the claim there (`taskflow.engine.attempt`). What comes back
(`Done.settled`) says what that attempt did, and the worker does the rest of
what it does for a task it ran itself: the ready set, the journal, the counts,
the progress display.
"""
from __future__ import annotations

import logging

from ..executors import Done, Job
from ..executors.base import FAILED_BEFORE, FINISHED, LOST, RECORDED, RELEASED, SAVED, TAKEN
from .batching import BatchAttempts
from .options import RunSummary

log = logging.getLogger(__name__)


class RemoteAttempts(BatchAttempts):
    """Hands tasks to an executor that claims where it runs them, and takes in what it settled."""

    def _attempt(self, h: str) -> None:
        if not self.flight.executor.claims:
            super()._attempt(h)
            return
        if self.crowded and h not in self.suspect and self.store.has_result(h):
            self._met_finished(h)  # one look here is cheaper than a round trip to an engine
            return
        take_over = h in self.suspect
        self.suspect.discard(h)
        task = self.index[h]
        self.reporter.task_started(task)
        self.flight.claims[h] = (None, None)
        cutoff = self.retry_cutoff if h in self.retrying else None
        self.flight.executor.submit(Job(task, {}, take_over=take_over, retry_cutoff=cutoff))

    def _finish(self, done: Done, summary: RunSummary) -> bool:
        if done.settled is None:
            return super()._finish(done, summary)
        task = done.task
        h = task.hash
        del self.flight.claims[h]
        settled = done.settled
        if settled == TAKEN:
            self.elsewhere.add(h)
            self.collisions += 1
            self.crowded = True
            self._jump()
        elif settled == FINISHED:
            self._met_finished(h)
        elif settled == FAILED_BEFORE:
            self.failed.add(h)
        elif settled == LOST:
            log.warning("lost the claim on %s (%s) while running it; its engine discarded the outcome",
                        task.name, h[:12])
            self._lost(h)
        elif settled == RELEASED:
            if done.gone is not None:
                self._unfinish(done.gone, h)
        elif settled == RECORDED:
            assert done.failure is not None
            e = done.failure.exception
            self.failed.add(h)
            self.retrying.discard(h)
            self._consumed(task)
            summary.failed += 1
            summary.failed_hashes.add(h)
            kind = getattr(e, "type_name", type(e).__name__)  # the engine's exception, by name
            self.reporter.task_failed(task, f"{kind}: {str(e) or kind}")
            return self.options.keep_going
        elif settled == SAVED:
            self._consumed(task)
            if h in self.retrying:  # the new result supersedes the failure this run retried
                self.store.remove_failure(h)
                self.retrying.discard(h)
            self._ran_total += 1
            summary.ran += 1
            self.journal.add(h)
            self._mark_finished(h)
            self.reporter.task_finished(task, done.seconds)
        else:
            raise AssertionError(f"unknown outcome {settled!r} of {task.name}")
        return True
