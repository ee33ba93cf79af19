"""A store on a Redis server: `--store redis://[USER[:PASSWORD]@]HOST:PORT/DB?prefix=NAME`.

For sites whose nodes share no filesystem, or whose shared filesystem is too
slow for many small files. Everything a folder store keeps lives in keys
under the prefix (keys.py): results in chunks made visible atomically
(results.py), claims expired by the server (claims.py), journals as streams
(journal.py), and the small records (records.py). Every promise of
`stores.base.Store` holds; what differs:

- Durability is the server's: with `appendonly yes` results survive a
  restart of the server (up to the last second of writes with the default
  `appendfsync everysec`); without persistence a server that stops loses the
  whole store, and the next run computes everything again. `--fsync` changes
  nothing here.
- The server must keep every key: a `maxmemory-policy` that evicts keys is
  refused when the store is created, since an evicted claim or result would
  silently be lost. A server out of memory refuses new results (exit 4), and
  nothing half-written counts.
- `value(..., mmap=True)` is refused: results are read into memory.
- Job scripts and logs of `taskflow submit` stay in a local folder,
  `<stem>.taskflow-jobs/` beside the taskfile (see `jobs_folder`).
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from ... import encoding
from ...errors import CorruptResultError, StoreServerError, UsageError
from ..base import Claims, Journal, Leftover, NewsReader, Store
from .claims import RedisClaims
from .connection import Connection
from .journal import RedisJournal, RedisNews, journaled
from .keys import Keys
from . import leftovers
from .deaths import Deaths
from .recordmethods import RecordMethods
from .records import Records
from .results import Results
from .url import RedisAddress, parse
from .workers import WorkerFields


# maxmemory-policy values that never drop a key to make room.
_KEEPS_KEYS = {"noeviction"}


class RedisStore(Deaths, RecordMethods, WorkerFields, Store):
    """A taskflow store under one prefix of one Redis database. Making the object connects nowhere."""

    def __init__(self, address: RedisAddress, fsync: bool = False):
        self.address = address
        self.fsync = fsync
        self.taskfile: str | None = None
        self.connection = Connection(address)
        self.keys = Keys(address.prefix)
        self.results = Results(self.connection, self.keys)
        self.records = Records(self.connection, self.keys)
        self._format_ok = False
        self._ready = False
        self._noted_code: set[tuple] = set()

    @classmethod
    def from_value(cls, value: str, *, fsync: bool = False) -> RedisStore:
        return cls(parse(value), fsync=fsync)

    @property
    def url(self) -> str:
        return self.address.display

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r})"

    def worker_environment(self) -> dict[str, str]:
        from .url import PASSWORD_VARIABLE

        password = {PASSWORD_VARIABLE: self.address.password} if self.address.password else {}
        return {**super().worker_environment(), **password}

    def __reduce__(self) -> tuple:
        # The password travels with the object (to --jobs workers), never in its url.
        return _reopen, (self.address, self.fsync, self.taskfile)

    def location(self, kind: str, task_hash: str = "") -> str:
        keys = {"result": self.keys.result(task_hash), "failure": f"{self.keys.failed} {task_hash}",
                "suspect": f"{self.keys.suspect} {task_hash}", "damaged": f"{self.keys.prefix}:damaged:{task_hash}:*",
                "stop": self.keys.stop}
        if kind == "jobs":
            return self.jobs_folder()
        if kind in keys:
            return f"{self.url} key {keys[kind]}"
        return self.url

    # -- format -----------------------------------------------------------

    def exists(self) -> bool:
        return self.records.exists()

    def check_format(self) -> None:
        if self._format_ok:
            return
        self.records.check_format()
        self._format_ok = True

    def ensure(self) -> None:
        if self._ready:
            return
        self.check_format()
        self._check_eviction()
        self.records.ensure()
        self._ready = True

    def _check_eviction(self) -> None:
        from redis.exceptions import ResponseError

        try:
            with self.connection.guard("reading the server's settings") as r:
                policy = r.config_get("maxmemory-policy").get("maxmemory-policy")
        except StoreServerError as e:
            if not isinstance(e.__context__, ResponseError):
                raise
            policy = None
        except ResponseError:  # CONFIG is disabled on some hosted servers: trust their setup
            policy = None
        if policy is not None and policy not in _KEEPS_KEYS:
            raise StoreServerError(f"Redis server {self.address.server} drops keys when its memory is full "
                                   f"(maxmemory-policy {policy}): claims and results would vanish; set "
                                   "maxmemory-policy noeviction for a taskflow store", path=self.url)

    # -- results ----------------------------------------------------------

    def save_payload(self, task_hash: str, payload: encoding.Payload) -> int:
        self.ensure()
        payload.sign(self.seal(task_hash))
        size = self.results.save(task_hash, payload)
        assert size is not None  # unconditional saves always land
        self._note_code(payload.meta)
        return size

    def _note_code(self, meta: dict) -> None:
        key = (meta.get("name"), meta.get("code"), meta.get("version"))
        if key in self._noted_code or key[0] is None or key[1] is None:
            return
        self.records.note_code(str(key[0]), self.code_tag(key[1], key[2]))
        self._noted_code.add(key)

    def load_value(self, task_hash: str, mmap: bool = False, fresh: bool = False) -> Any:
        if mmap:
            raise UsageError(f"mmap=True needs a folder store: results in {self.url} are read into memory "
                             "(call value() without mmap)")
        return self.results.load(task_hash, self.seal(task_hash))[0]

    def raw_result(self, task_hash: str) -> memoryview:
        return self.results.read(task_hash)

    def result_meta(self, task_hash: str) -> dict:
        return self.results.meta(task_hash)

    def has_result(self, task_hash: str) -> bool:
        return self.results.exists(task_hash)

    def present(self, hashes: Iterable[str]) -> set[str]:
        return self.results.present(list(hashes))

    def finished_hashes(self) -> set[str]:
        return self.results.finished()

    def remove_result(self, task_hash: str) -> bool:
        return self.results.remove(task_hash)

    def verify_result(self, task_hash: str, fresh: bool = False) -> None:
        self.results.verify(task_hash, self.seal(task_hash))

    def move_aside(self, task_hash: str) -> str | None:
        judged = self.results.header(task_hash)
        if judged is None:
            self.unmark_suspect(task_hash)
            return None
        try:
            self.results.verify(task_hash, self.seal(task_hash))
            self.unmark_suspect(task_hash)
            return None  # intact
        except FileNotFoundError:
            self.unmark_suspect(task_hash)
            return None
        except CorruptResultError:
            pass
        where = self.results.move_aside(task_hash, judged)
        self.unmark_suspect(task_hash)
        return f"{self.url} key {where}" if where else None

    def moved_aside(self) -> set[str]:
        # SCAN: only asked for when results a listing lacks are looked for, which is rare.
        with self.connection.guard("listing damaged results") as r:
            start = len(self.keys.prefix) + len(":damaged:")
            return {key.decode("utf-8", "replace")[start:].split(":", 1)[0]
                    for key in r.scan_iter(match=self.keys.damaged_pattern(), count=10_000)}

    # -- claims and journals ----------------------------------------------

    def claims(self, lease: float | None = None, worker: str | None = None, reader: bool = False,
               clock: Callable[[], float] = time.time) -> Claims:
        return RedisClaims(self, self.connection, self.keys, lease, worker, reader, clock)

    def journal(self) -> Journal:
        return RedisJournal(self.connection, self.keys)

    def news(self) -> NewsReader:
        return RedisNews(self.connection, self.keys)

    def journaled(self) -> set[str]:
        return journaled(self.connection, self.keys)

    # -- job records, STOP, leftovers -------------------------------------

    def jobs_folder(self) -> str:
        """`<stem>.taskflow-jobs/` beside the taskfile (the working folder when none is loaded):
        job scripts and logs are files on the submitting host, not keys."""
        if self.taskfile:
            folder, name = os.path.split(os.path.abspath(self.taskfile))
            return os.path.join(folder, f"{os.path.splitext(name)[0]}.taskflow-jobs")
        return os.path.abspath(f"{self.keys.prefix.replace('/', '_')}.taskflow-jobs")

    def leftovers(self, kind: str) -> list[Leftover]:
        """Large results whose writer died on this host midway, and journals of dead workers
        (on this host at once, elsewhere after 24 h without a write). Claims, clock files and
        doctor folders leave nothing behind in a Redis store."""
        return leftovers.find(self.connection, self.keys, kind)

    def remove_leftover(self, leftover: Leftover) -> bool:
        return leftovers.remove(self.connection, self.keys, leftover)


def _reopen(address: RedisAddress, fsync: bool, taskfile: str | None) -> RedisStore:
    store = RedisStore(address, fsync=fsync)
    store.taskfile = taskfile
    return store
