"""Journals in a Redis store: one stream per worker of the hashes it finished.

A worker appends to its stream P:done:<host.pid.random> in batches, after the
results are saved, and names the stream in the hash P:journals with its
writer (host, boot id, pid) and the server's time of its last write. Another
worker learns what everybody finished since it started by reading what was
added to those streams: one HKEYS and one pipelined XRANGE per look, however
many workers. As in a folder store a line is a hint, never the truth (results
may be removed later): the finished set is. A worker removes its journal
when it stops; `cleanup` removes those of workers that died.
"""
from __future__ import annotations

import json
from typing import Any

from ..identity import BOOT_ID, HOST, gone_from_here, process
from ..journals import BatchedJournal, NewsReader
from .connection import Connection
from .keys import Keys



def _text(raw: Any) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


class RedisJournal(BatchedJournal):
    def __init__(self, connection: Connection, keys: Keys):
        super().__init__()
        self.connection = connection
        self.keys = keys
        self._ident: str | None = None

    @property
    def ident(self) -> str | None:
        return self._ident

    def _write(self, hashes: list[str]) -> None:
        if self._ident is None:
            self._ident = f"{HOST}.{process.pid}.{process.unique()}"
        writer = json.dumps({"host": HOST, "boot": BOOT_ID, "pid": process.pid,
                             "time": self.connection.server_now()})
        with self.connection.guard("writing the journal") as r:
            pipe = r.pipeline(transaction=False)
            pipe.hset(self.keys.journals, self._ident, writer)
            pipe.xadd(self.keys.journal(self._ident), {"h": " ".join(hashes)})
            pipe.execute()

    def close(self) -> None:
        self._pending.clear()
        if self._ident is not None:
            with self.connection.guard("removing the journal") as r:
                pipe = r.pipeline(transaction=False)
                pipe.hdel(self.keys.journals, self._ident)
                pipe.delete(self.keys.journal(self._ident))
                pipe.execute()
            self._ident = None


def writers(connection: Connection, keys: Keys) -> dict[str, dict]:
    """Every journal there now: its name and what it records of its writer."""
    with connection.guard("listing journals") as r:
        raw = r.hgetall(keys.journals)
    found = {}
    for name, record in raw.items():
        try:
            writer = json.loads(record)
        except ValueError:
            writer = {}
        found[_text(name)] = writer if isinstance(writer, dict) else {}
    return found


class RedisNews(NewsReader):
    def __init__(self, connection: Connection, keys: Keys):
        self.connection = connection
        self.keys = keys
        self._read_to: dict[str, str] = {}
        self._seen_at_start: dict[str, dict] = {}

    def start(self) -> None:
        self._seen_at_start = writers(self.connection, self.keys)
        names = list(self._seen_at_start)
        with self.connection.guard("reading journals") as r:
            pipe = r.pipeline(transaction=False)
            for name in names:
                pipe.xrevrange(self.keys.journal(name), count=1)
            newest = pipe.execute() if names else []
        self._read_to = {name: _text(entries[0][0]) if entries else "0-0"
                         for name, entries in zip(names, newest, strict=True)}

    def journals_seen(self, skip: str | None = None) -> bool:
        return any(name != skip and not gone_from_here(writer) for name, writer in self._seen_at_start.items())

    def news(self, skip: str | None = None) -> set[str]:
        names = [name for name in writers(self.connection, self.keys) if name != skip]
        found: set[str] = set()
        if not names:
            self._read_to.clear()
            return found
        with self.connection.guard("reading journals") as r:
            pipe = r.pipeline(transaction=False)
            for name in names:
                pipe.xrange(self.keys.journal(name), min="(" + self._read_to.get(name, "0-0"))
            answers = pipe.execute()
        read_to = {}
        for name, entries in zip(names, answers, strict=True):
            last = self._read_to.get(name, "0-0")
            for entry_id, fields in entries:
                found.update(_text(fields.get(b"h", b"")).split())
                last = _text(entry_id)
            read_to[name] = last
        self._read_to = read_to
        return found


def journaled(connection: Connection, keys: Keys) -> set[str]:
    """Every hash named in the journals there now."""
    names = list(writers(connection, keys))
    found: set[str] = set()
    if not names:
        return found
    with connection.guard("reading journals") as r:
        pipe = r.pipeline(transaction=False)
        for name in names:
            pipe.xrange(keys.journal(name))
        for entries in pipe.execute():
            for _, fields in entries:
                found.update(_text(fields.get(b"h", b"")).split())
    return found
