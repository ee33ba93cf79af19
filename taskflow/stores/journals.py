"""Journals of finished work in the store interface: how workers learn of each other's results.

Part of the contract of `stores.base`.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod

# A journal writes its hashes when this many are waiting, or this long after its last write.
FLUSH_EVERY = 32  # hashes
FLUSH_AFTER = 0.5  # seconds


class Journal(ABC):
    """This worker's journal of finished tasks, obtained from `Store.journal`.

    A hint for other workers, never the truth: a hash is added only after
    its result is saved; the result stays the truth. Entries may be buffered
    and written in batches; `flush` writes them; `close` removes the journal
    (readers that still need it look at the results instead).
    """

    @property
    @abstractmethod
    def ident(self) -> str | None:
        """This journal's name once written, for `NewsReader.news(skip=...)`; None before."""

    @abstractmethod
    def add(self, task_hash: str) -> None:
        """Note that the task's result is saved (written now or with a later batch)."""

    @abstractmethod
    def flush(self) -> None:
        """Write what was added and not yet written."""

    @abstractmethod
    def close(self) -> None:
        """Stop journaling and remove the journal."""


class BatchedJournal(Journal):
    """A journal that buffers hashes and hands them to `_write` in batches (FLUSH_EVERY, FLUSH_AFTER)."""

    def __init__(self) -> None:
        self._pending: list[str] = []
        self._since = time.monotonic()

    @abstractmethod
    def _write(self, hashes: list[str]) -> None:
        """Append these hashes to the journal, creating it on the first call."""

    def add(self, task_hash: str) -> None:
        self._pending.append(task_hash)
        if len(self._pending) >= FLUSH_EVERY or time.monotonic() - self._since >= FLUSH_AFTER:
            self.flush()

    def flush(self) -> None:
        self._since = time.monotonic()
        if self._pending:
            hashes, self._pending = self._pending, []
            self._write(hashes)


class NewsReader(ABC):
    """What other workers journaled since this reader started, obtained from `Store.news`."""

    @abstractmethod
    def start(self) -> None:
        """Skip everything journaled so far (call before listing the finished results)."""

    @abstractmethod
    def journals_seen(self, skip: str | None = None) -> bool:
        """Whether journals other than `skip` (one's own `Journal.ident`) were there at `start`,
        leaving out those of workers on this host that are gone."""

    @abstractmethod
    def news(self, skip: str | None = None) -> set[str]:
        """Hashes journaled since the last call (or `start`), except in the journal `skip`."""
