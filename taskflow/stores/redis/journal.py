"""The journal of a Redis store: one stream, P:done, of the hashes of finished tasks.

The commit script of a result (see results.py) appends its hash in the same
atomic step that makes the result visible, so a line is never early. A
reader remembers the last entry it read and asks only for newer ones: one
XRANGE per look, whatever the number of workers. As in a folder store, a
line is a hint, never the truth (results may be removed later, and the
stream keeps only its last JOURNAL_LENGTH entries); the finished set is.
"""
from __future__ import annotations

from .connection import Connection
from .keys import Keys

_BATCH = 10_000


class StreamReader:
    """What others finished since this reader started, read incrementally."""

    def __init__(self, connection: Connection, keys: Keys):
        self.connection = connection
        self.keys = keys
        self._last = b"0-0"

    def start(self) -> None:
        """Skip everything journaled so far (call before listing the store's results)."""
        with self.connection.guard("reading the journal") as r:
            newest = r.xrevrange(self.keys.done, count=1)
        self._last = newest[0][0] if newest else b"0-0"

    def news(self) -> set[str]:
        """Hashes journaled since the last call."""
        found: set[str] = set()
        with self.connection.guard("reading the journal") as r:
            while True:
                entries = r.xrange(self.keys.done, min=b"(" + self._last, count=_BATCH)
                for entry_id, fields in entries:
                    task_hash = fields.get(b"h")
                    if task_hash is not None:
                        found.add(task_hash.decode("ascii", "replace"))
                    self._last = entry_id
                if len(entries) < _BATCH:
                    return found

    def others_at_work(self) -> bool:
        """Whether anything was journaled before this reader started."""
        return self._last != b"0-0"
