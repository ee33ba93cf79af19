"""What a worker learns from the store about the tasks it does not run: others' news, and the final count."""
from __future__ import annotations

import logging
import time

from .. import confirm
from ..stores.identity import gone_from_here
from .graph import Graph

log = logging.getLogger(__name__)


class Refresh(Graph):
    """Corrects the worker's view of the graph from the store."""

    def _refresh(self) -> bool:
        """Learn from the store what became of the tasks others hold; True if anything changed.

        What others finished comes from their journals (`Store.news`). A task
        held by another worker costs one look while its claim, judged live,
        cannot have gone stale yet (`Claims.present`): its holder saves a
        result or records a failure before it gives the claim back, so while
        the claim is there there is nothing else to learn. Once the claim is
        gone, or could be stale, the task gets a look at its result (its
        holder may not have written its journal yet), its failure and its
        claim. Anything else others finished this worker learns when it meets
        the task (see _attempt), at one system call each. Never a listing of
        the store: five calls per shard, 1,280 in all, from every worker.
        """
        changed = False
        self.journal.flush()
        done = self.news.news(skip=self.journal.ident) & self.index.keys()
        now = time.monotonic()
        held = {h for h in self.elsewhere if h not in done and self._live_until(h) > now and self.leases.present(h)}
        done.update(h for h in self.elsewhere if h not in done and h not in held and self.store.has_result(h))
        for h in done:
            if h not in self.finished:
                self._mark_finished(h)
                changed = True
        for h in list(self.elsewhere):
            if h in self.finished or h in held:
                continue
            if self._failed_elsewhere(h):
                self.elsewhere.discard(h)
                self.failed.add(h)
                changed = True
                continue
            info = self.leases.inspect(h)
            if info is not None and not info.stale:
                self.stale_from[h] = (now + info.left, info.owner)  # renewed or not, live until then
                continue
            self.elsewhere.discard(h)
            if info is not None:
                self.suspect.add(h)
            self.ready.append(h)
            changed = True
        for h in [h for h in self.stale_from if h not in self.elsewhere]:
            del self.stale_from[h]
        self.collisions = 0
        self.jumped = False
        if changed:
            self.reporter.learned(len(self.finished), len(self.failed))
        return changed

    def _live_until(self, h: str) -> float:
        """Until when (monotonic) the claim on `h` judged last is live for sure; 0 when unknown or
        when its owner, on this host, is gone."""
        until, owner = self.stale_from.get(h, (0.0, {}))
        return 0.0 if until and gone_from_here(owner) else until

    def _lost(self, h: str) -> None:
        # The task is now another worker's: wait for its outcome like for any
        # task run elsewhere, rather than conclude that nothing is left to wait for.
        self.elsewhere.add(h)

    def _failed_elsewhere(self, h: str) -> bool:
        recorded = self.store.failure_time(h)
        if recorded is None:
            return False
        return h not in self.retrying or recorded >= self.retry_cutoff

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
        self._requeue(gone)
        self.reporter.learned(len(self.finished), len(self.failed))
        return False
