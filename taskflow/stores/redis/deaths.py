"""Attempts whose worker died, in a Redis store: the hash P:died.

Each field is "<task hash>:<token of the dead claim>", written by the claim
script that replaced that claim (a takeover, or a new claim in place of one
the server dropped unreleased; see scripts.py), with what was known of it:
the dead claim's value (its owner), why it counted, the server's time. A
worker that comes back to find its claim taken over removes its own field in
the renewal script that tells it so.
"""
from __future__ import annotations

import json

from .claims import owner_of
from .connection import Connection
from .keys import Keys


class Deaths:
    """The `RecordStore.deaths` part of a RedisStore."""

    connection: Connection
    keys: Keys

    def _death_fields(self, task_hash: str) -> dict[bytes, bytes]:
        with self.connection.guard(f"reading the dead attempts at {task_hash[:12]}") as r:
            return dict(r.hscan_iter(self.keys.died, match=f"{task_hash}:*"))

    def deaths(self, task_hash: str) -> list[dict]:
        found = []
        for raw in self._death_fields(task_hash).values():
            try:
                record = json.loads(raw)
            except ValueError:
                record = {}
            if not isinstance(record, dict):
                record = {}
            claim = record.pop("claim", None)
            record["owner"] = owner_of(claim.encode() if isinstance(claim, str) else None) or {}
            found.append(record)
        return sorted(found, key=lambda r: r.get("time") or 0)

    def forget_deaths(self, task_hash: str) -> int:
        fields = list(self._death_fields(task_hash))
        if not fields:
            return 0
        with self.connection.guard(f"forgetting the dead attempts at {task_hash[:12]}") as r:
            return int(r.hdel(self.keys.died, *fields))

    def died_hashes(self) -> set[str]:
        with self.connection.guard("listing dead attempts") as r:
            return {f.decode("ascii", "replace").split(":", 1)[0] for f in r.hkeys(self.keys.died)}
