"""Results in the store that a worker checks again: suspect, damaged, or all of them (--verify)."""
from __future__ import annotations

import logging

from .. import damage
from ..stores.base import Store
from ..stores.claims import Claims
from ..stores.journals import Journal, NewsReader
from ..task import Task
from .options import Options
from .reporter import Reporter

log = logging.getLogger(__name__)


class ResultChecks:
    """The first part of a Worker (see loop.py for how the parts stack)."""

    # Set by Worker.__init__ and Graph._prepare, read by every part.
    store: Store
    options: Options
    reporter: Reporter
    leases: Claims
    journal: Journal
    news: NewsReader
    verified: set[str]
    index: dict[str, Task]
    finished: set[str]

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
