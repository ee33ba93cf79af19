"""The graph of one pass on Dask as the driver sees it: what is finished, failed, blocked, left."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .. import confirm, damage
from ..task import Task
from ..worker import Outcome, RunSummary
from . import engine

if TYPE_CHECKING:
    from ..stores.base import Store
    from ..worker import Options, Reporter
    from .executor import DaskExecutor

log = logging.getLogger(__name__)


class PassGraph:
    """The state of one pass: found in the store first (`_prepare`), then kept up to date by the pass."""

    def __init__(self, store: Store, options: Options, reporter: Reporter, worker: str, tasks: list[Task]):
        self.store = store
        self.options = options
        self.reporter = reporter
        self.worker = worker  # who the completion records name
        self.index = {t.hash: t for t in tasks}
        self.summary = RunSummary(Outcome.FINISHED, total=len(tasks))
        self.finished: set[str] = set()
        self.failed: set[str] = set()     # failed, here or before (unless retried)
        self.blocked: set[str] = set()    # wait on a failed task: not run
        self.retrying: set[str] = set()
        self.dependents: dict[str, list[str]] = {}
        self.uses: dict[str, int] = {}
        self.attempts: dict[str, int] = {}
        self.stopping: Outcome | None = None  # why no new task is taken
        self.executor: DaskExecutor | None = None

    def _prepare(self) -> None:
        store, index = self.store, self.index
        self.finished = store.finished_hashes() & index.keys()
        for h in sorted(store.suspect_hashes() & index.keys()):
            try:
                reason = damage.recheck(store, h)
            except FileNotFoundError:
                damage.unmark(store, h)
                self.finished.discard(h)
                continue
            if reason is None:
                damage.unmark(store, h)
                self.finished.add(h)
            else:
                self._damaged(h, f"corrupt result {store.location('result', h)}: {reason}")
        if self.options.verify:
            for h, reason in store.damaged(sorted(self.finished)):
                self._damaged(h, reason)
        failed = store.failed_hashes() & index.keys()
        if self.options.retry_failed:
            self.retrying = failed - self.finished
        else:
            self.failed = failed - self.finished
        for t in index.values():
            if t.hash in self.finished:
                continue
            for d in t.deps:
                self.dependents.setdefault(d.hash, []).append(t.hash)
                if d.hash not in self.finished:
                    self.uses[d.hash] = self.uses.get(d.hash, 0) + 1

    def _damaged(self, h: str, reason: str) -> None:
        moved = damage.move_aside(self.store, h)
        if moved is not None:
            log.warning("%s; moved to %s; computing %s again", reason, moved, self.index[h].name)
            self.finished.discard(h)

    # -- the run ---------------------------------------------------------------

    def _remaining(self) -> bool:
        return any(h not in self.finished for h in self.index)

    def _block(self, h: str) -> None:
        """h waits on a failed task: it and everything downstream of it will not run."""
        todo = [h]
        executor = self.executor
        assert executor is not None
        while todo:
            x = todo.pop()
            if x in self.blocked or x in self.finished or x in self.failed:
                continue
            self.blocked.add(x)
            executor.causes[x] = engine.Stopped(x)
            todo.extend(self.dependents.get(x, ()))

    def _all_in_store(self) -> bool:
        """Every result in the store? Queues those that vanished (False then), as a worker does."""
        listed = self.store.finished_hashes()
        lacking = [h for h in self.index if h not in listed]
        gone = set(lacking) - confirm.present(self.store, lacking)
        if not gone:
            confirm.record_complete(self.store, list(self.index), self.worker)
            return True
        log.warning("%d result(s) vanished from the store during the run; computing them again", len(gone))
        self.finished -= gone
        return False

    def _outcome(self) -> Outcome:
        summary = self.summary
        if self.stopping in (Outcome.REMAINING, Outcome.TERMINATED):
            return self.stopping
        if not self._remaining():
            return Outcome.FINISHED
        if self.failed or self.blocked:
            summary.blockers = sorted((self.index[h].name, h) for h in self.failed if h in self.index)
            summary.blocked = sum(1 for h in self.index if h not in self.finished and h not in self.failed)
            return Outcome.FAILED
        return Outcome.REMAINING


class Named:
    """A failed task outside this pass's selection, for the reporter."""

    def __init__(self, h: str):
        self.name = "?"
        self.hash = h
