"""The worker's view of the graph: what is finished, failed, ready, and what waits on what.

Each worker keeps its own view and corrects it from the store when it meets
evidence that others moved on (see refresh.py).
"""
from __future__ import annotations

import random
from collections import deque
from typing import Any

from ..stores.identity import gone_from_here
from ..task import Task
from .checks import ResultChecks


class Graph(ResultChecks):
    """The ready set and the counts behind it."""

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
        # made that are waiting for their consumer (see handoff.py).
        self.uses: dict[str, int] = {}
        for t in tasks:
            if t.hash not in self.finished:
                for d in t.deps:
                    self.uses[d.hash] = self.uses.get(d.hash, 0) + 1
        self.handoff: dict[str, tuple[Any, int]] = {}
        self.handoff_bytes = 0
        self.elsewhere: set[str] = set()
        # For a task another worker holds: when its claim, judged live, could first be stale, and
        # its owner (on this host, a process that is gone makes the claim stale at once).
        self.stale_from: dict[str, tuple[float, dict]] = {}
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

    def _requeue(self, gone: set[str]) -> None:
        """Results of `gone` vanished from the store: queue them to run again, inputs first."""
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

    def _remaining(self) -> int:
        return len(self.index) - len(self.finished)
