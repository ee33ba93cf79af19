"""The small records of a Redis store: failures, code markers, STOP, damage marks, completion records
and the format marker (see keys.py for where each lives).

Each is one command on one key under the store's prefix: a Redis hash for
records named by a task hash or graph digest, a set for code tags, a plain
key for STOP and the marker. Failure records get the server's time as
`recorded`, the clock every worker of the store agrees on.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..._version import __version__
from ...errors import StoreError
from .connection import Connection
from .keys import Keys

if TYPE_CHECKING:
    from ...signing import Key


FORMAT = 1
KIND = "redis"


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _record(raw: bytes | None) -> dict | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return {"type": "?", "message": "(unreadable record)", "traceback": ""}
    return value if isinstance(value, dict) else {"type": "?", "message": "(unreadable record)", "traceback": ""}


class Records:
    def __init__(self, connection: Connection, keys: Keys):
        self.connection = connection
        self.keys = keys

    # -- the format marker -------------------------------------------------

    def check_format(self) -> None:
        """Refuse a prefix holding a store of another format; a missing marker is a new store."""
        with self.connection.guard("reading the store marker") as r:
            raw = r.get(self.keys.marker)
        if raw is None:
            return
        try:
            marker = json.loads(raw)
            fmt, kind = marker.get("format"), marker.get("kind")
        except (ValueError, AttributeError):
            raise StoreError(f"{self.connection.address.display}: unreadable store marker {self.keys.marker}",
                             path=self.connection.address.display) from None
        if kind != KIND or fmt != FORMAT:
            raise StoreError(f"{self.connection.address.display} has store format {fmt!r} ({kind}); this taskflow "
                             f"{__version__} reads format {FORMAT}", path=self.connection.address.display)

    def ensure(self) -> None:
        with self.connection.guard("creating the store") as r:
            r.set(self.keys.marker, json.dumps({"format": FORMAT, "kind": KIND, "created_by": __version__}), nx=True)

    def exists(self) -> bool:
        with self.connection.guard("reading the store marker") as r:
            return bool(r.exists(self.keys.marker))

    # -- failures ---------------------------------------------------------

    def save_failure(self, task_hash: str, record: dict, key: Key | None = None) -> None:
        record = dict(record, recorded=self.connection.server_now())
        if key is not None:
            record = key.sign_record("failure", task_hash, record)
        with self.connection.guard(f"saving the failure of {task_hash[:12]}") as r:
            r.hset(self.keys.failed, task_hash, json.dumps(record, indent=1))

    def load_failure(self, task_hash: str) -> dict | None:
        with self.connection.guard(f"reading the failure of {task_hash[:12]}") as r:
            return _record(r.hget(self.keys.failed, task_hash))

    def failure_time(self, task_hash: str) -> float | None:
        """When the failure of `task_hash` was recorded, on the server's clock; None if none is."""
        record = self.load_failure(task_hash)
        if record is None:
            return None
        recorded = record.get("recorded")
        return float(recorded) if isinstance(recorded, (int, float)) else 0.0

    def remove_failure(self, task_hash: str) -> bool:
        with self.connection.guard(f"removing the failure of {task_hash[:12]}") as r:
            return bool(r.hdel(self.keys.failed, task_hash))

    def failed_hashes(self) -> set[str]:
        with self.connection.guard("listing failures") as r:
            return {_text(h) for h in r.hkeys(self.keys.failed)}

    # -- which code produced results -----------------------------------

    def note_code(self, name: str, tag: str) -> None:
        with self.connection.guard(f"noting the code of {name}") as r:
            r.sadd(self.keys.code(name), tag)

    def code_tags(self, name: str) -> set[str]:
        with self.connection.guard(f"reading the code of {name}") as r:
            return {_text(t) for t in r.smembers(self.keys.code(name))}

    def forget_code(self, name: str, tag: str) -> None:
        with self.connection.guard(f"forgetting the code of {name}") as r:
            r.srem(self.keys.code(name), tag)

    # -- STOP -------------------------------------------------------------

    def stop_requested(self) -> bool:
        with self.connection.guard("looking for STOP") as r:
            return bool(r.exists(self.keys.stop))

    def request_stop(self, record: dict) -> bool:
        """Ask workers to take no new task; False if STOP was requested already."""
        with self.connection.guard("requesting STOP") as r:
            return bool(r.set(self.keys.stop, json.dumps(record), nx=True))

    def undo_stop(self) -> bool:
        with self.connection.guard("removing STOP") as r:
            return bool(r.delete(self.keys.stop))

    # -- damage marks and completion records -----------------------------

    def mark_suspect(self, task_hash: str, record: dict) -> None:
        with self.connection.guard(f"marking the result of {task_hash[:12]} damaged") as r:
            r.hset(self.keys.suspect, task_hash, json.dumps(record))

    def unmark_suspect(self, task_hash: str) -> bool:
        with self.connection.guard(f"unmarking the result of {task_hash[:12]}") as r:
            return bool(r.hdel(self.keys.suspect, task_hash))

    def suspect_hashes(self) -> set[str]:
        with self.connection.guard("listing damaged results") as r:
            return {_text(h) for h in r.hkeys(self.keys.suspect)}

    def record_complete(self, digest: str, record: dict) -> None:
        with self.connection.guard("recording a finished graph") as r:
            r.hsetnx(self.keys.complete, digest, json.dumps(record))

    def complete_recorded(self, digest: str) -> bool:
        with self.connection.guard("reading completion records") as r:
            return bool(r.hexists(self.keys.complete, digest))

    def complete_digests(self) -> set[str]:
        with self.connection.guard("reading completion records") as r:
            return {_text(d) for d in r.hkeys(self.keys.complete)}

    def forget_complete(self, digests: Any = None) -> int:
        """Drop completion records (every one, or those in `digests`); how many were dropped."""
        with self.connection.guard("removing completion records") as r:
            if digests is None:
                return int(r.delete(self.keys.complete))
            digests = list(digests)
            return int(r.hdel(self.keys.complete, *digests)) if digests else 0
