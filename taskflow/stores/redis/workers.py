"""Worker records of a Redis store: one field per worker in the hash P:workers, its value the
record with the server's time it was published, the clock every worker of the store agrees on."""
from __future__ import annotations

import json
import logging

from ...errors import StoreServerError
from ..workers import WorkerRecord
from .connection import Connection
from .keys import Keys

log = logging.getLogger(__name__)


class WorkerFields:
    """The worker records of a RedisStore (which sets these attributes)."""

    connection: Connection
    keys: Keys

    def publish_worker(self, ident: str, record: dict) -> None:
        try:
            stamped = dict(record, ident=ident, published=self.connection.server_now())
            with self.connection.guard("publishing this worker's record") as r:
                r.hset(self.keys.workers, ident, json.dumps(stamped))
        except StoreServerError as e:
            log.debug("cannot publish the record of worker %s: %s", ident, e)

    def withdraw_worker(self, ident: str) -> None:
        try:
            with self.connection.guard("removing this worker's record") as r:
                r.hdel(self.keys.workers, ident)
        except StoreServerError as e:
            log.debug("cannot remove the record of worker %s: %s", ident, e)

    def worker_records(self) -> list[WorkerRecord]:
        with self.connection.guard("reading worker records") as r:
            raw = r.hgetall(self.keys.workers)
        if not raw:
            return []
        now = self.connection.server_now()
        found = []
        for key, value in raw.items():
            try:
                record = json.loads(value)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            published = record.get("published")
            age = now - published if isinstance(published, (int, float)) else float("inf")
            found.append(WorkerRecord(key.decode("utf-8", "replace"), record, max(0.0, age)))
        return found
