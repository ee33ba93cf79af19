"""The Redis store's failure records, damage marks, completion records, code markers and STOP:
each a call on `Records` (records.py), some made quiet where a record is only a hint."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ...errors import StoreServerError
from ..identity import HOST, process
from .connection import Connection
from .keys import Keys
from .records import Records

if TYPE_CHECKING:
    from ...signing import Key

log = logging.getLogger(__name__)


class RecordMethods:
    """The record-keeping part of `RedisStore` (store.py), which sets these attributes."""

    connection: Connection
    keys: Keys
    records: Records

    if TYPE_CHECKING:
        def ensure(self) -> None: ...
        @property
        def key(self) -> Key | None: ...
        @property
        def url(self) -> str: ...

    # -- suspect marks ----------------------------------------------------

    def mark_suspect(self, task_hash: str, record: dict) -> None:
        self.records.mark_suspect(task_hash, record)

    def unmark_suspect(self, task_hash: str) -> bool:
        return self.records.unmark_suspect(task_hash)

    def suspect_hashes(self) -> set[str]:
        return self.records.suspect_hashes()

    def is_suspect(self, task_hash: str) -> bool:
        with self.connection.guard("reading damage marks") as r:
            return bool(r.hexists(self.keys.suspect, task_hash))

    # -- failure records --------------------------------------------------

    def save_failure(self, task_hash: str, record: dict) -> None:
        self.ensure()
        self.records.save_failure(task_hash, record, self.key)

    def load_failure(self, task_hash: str) -> dict | None:
        record = self.records.load_failure(task_hash)
        if self.key is None:
            return record
        from ...signing import checked_record

        return checked_record(self.key, "failure", task_hash, record, f"{self.url} failure of {task_hash}")

    def failure_time(self, task_hash: str) -> float | None:
        if self.key is not None and self.load_failure(task_hash) is None:
            return None  # none, or one the key did not sign: no failure then
        return self.records.failure_time(task_hash)

    def remove_failure(self, task_hash: str) -> bool:
        return self.records.remove_failure(task_hash)

    def failed_hashes(self) -> set[str]:
        hashes = self.records.failed_hashes()
        if self.key is None:
            return hashes
        # With a key, a failure is one its record proves: one read per failed task, and they are few.
        return {h for h in hashes if self.load_failure(h) is not None}

    # -- completion records and code markers ---------------------------------

    def record_complete(self, digest: str, record: dict) -> None:
        try:
            self.records.record_complete(digest, record)
        except StoreServerError as e:
            log.debug("cannot record graph %s complete: %s", digest, e)

    def complete_recorded(self, digest: str) -> bool:
        return self.records.complete_recorded(digest)

    def complete_digests(self) -> set[str]:
        return self.records.complete_digests()

    def forget_complete(self, digest: str) -> bool:
        return bool(self.records.forget_complete([digest]))

    def code_tags(self, name: str) -> set[str]:
        return self.records.code_tags(name)

    def forget_code(self, name: str, tag: str) -> None:
        try:
            self.records.forget_code(name, tag)
        except StoreServerError as e:
            log.debug("cannot remove code marker %s/%s: %s", name, tag, e)

    def stop_requested(self) -> bool:
        return self.records.stop_requested()

    def request_stop(self, on: bool = True) -> None:
        if on:
            self.ensure()
            self.records.request_stop({"host": HOST, "pid": process.pid, "time": self.connection.server_now()})
        else:
            self.records.undo_stop()
