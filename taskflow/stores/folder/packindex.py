"""Where each packed result is: an index of every pack in packs/, kept in memory and read on.

A reader reads a pack's `.idx` once, when it first meets the pack, then the
pack itself from the last indexed record on; later refreshes read only what
was appended since. A result's newest live record is the one it loads; a
tombstone removes exactly the record it names (pack, offset), so a result
saved again after a removal is never removed by it.

A refresh is cheap when nothing changed: one look up by name of the pack
numbered next after the highest known (packfile.py: packs are numbered, and
a look up by name revalidates a client's caches where a listing may not),
and one stat per pack still written to. packs/ is listed on the first
refresh and when asked (`full`). With `fresh`, each pack is opened again
instead of stat'ed: on NFS an open revalidates what this client holds of a
file (close-to-open), a stat may answer from its attribute cache.
"""
from __future__ import annotations

import os

from ...stale import drop_cache
from ...stale import gone
from . import packfile
from .claimfiles import synced_size
from .packfile import INDEX, OPENING, PACK, RESULT, SEAL, TOMBSTONE, Record

Place = tuple[str, int, int]  # pack name, offset of the record, body length


class _Pack:
    __slots__ = ("read_to", "sealed", "stuck_at")

    def __init__(self) -> None:
        self.read_to = -1  # -1: not read yet (its index first)
        self.sealed = False
        self.stuck_at = -1  # the size at which what follows read_to was read fresh and did not parse


class PackIndex:
    """The live packed results of one store, as far as this process has read."""

    def __init__(self, folder: str):
        self.folder = folder
        self.own: str | None = None   # this process's own pack: its records are noted, not read
        self._packs: dict[str, _Pack] = {}
        self._at: dict[str, Place] = {}
        self._more: dict[str, list[Place]] = {}  # older live copies, rare
        self._dead: dict[tuple[str, int], str] = {}  # tombstoned records: the task of each
        self.writers: dict[str, tuple[str, str]] = {}  # pack -> (host, pid) of its writer, from its opening
        self.top = -1  # the highest pack number known; -1 before the first listing
        self._next = (-2, "", "")  # (top, name, path) of the pack numbered next after top

    # -- asking -------------------------------------------------------------

    def lookup(self, task_hash: str) -> Place | None:
        return self._at.get(task_hash)

    def hashes(self) -> set[str]:
        return set(self._at)

    def places(self, task_hash: str) -> list[Place]:
        """Every live record of the task, newest first."""
        first = self._at.get(task_hash)
        return [] if first is None else [first, *reversed(self._more.get(task_hash, []))]

    def tombstones(self) -> dict[tuple[str, int], str]:
        """(pack, offset) -> task hash of every record read as removed."""
        return dict(self._dead)

    def pack_names(self) -> list[str]:
        return list(self._packs)

    def sealed(self, name: str) -> bool:
        return name in self._packs and self._packs[name].sealed

    def path(self, name: str) -> str:
        return f"{self.folder}{os.sep}{name}"

    # -- learning -----------------------------------------------------------

    def wrote(self, pack: str, rec: Record, end: int) -> None:
        """A record this process appended to its own pack, which now ends at `end`."""
        self._packs.setdefault(pack, _Pack()).read_to = end
        self.note(pack, rec)

    def note(self, pack: str, rec: Record) -> None:
        """A record read from `pack`."""
        if rec.kind == RESULT:
            if (pack, rec.offset) in self._dead:
                return
            place = (pack, rec.offset, rec.length)
            old = self._at.get(rec.task_hash)
            if old == place:
                return
            if old is not None:
                self._more.setdefault(rec.task_hash, []).append(old)
            self._at[rec.task_hash] = place
        elif rec.kind == TOMBSTONE:
            self._kill(rec.task_hash, rec.target, rec.aux)
        elif rec.kind == SEAL and pack in self._packs:
            self._packs[pack].sealed = True
        elif rec.kind == OPENING:
            host, _, pid = rec.target.partition(" ")
            self.writers[pack] = (host, pid)

    def _kill(self, task_hash: str, pack: str, offset: int) -> None:
        self._dead[(pack, offset)] = task_hash
        more = self._more.get(task_hash)
        if more:
            more[:] = [p for p in more if (p[0], p[1]) != (pack, offset)]
        current = self._at.get(task_hash)
        if current is not None and (current[0], current[1]) == (pack, offset):
            if more:
                self._at[task_hash] = more.pop()
            else:
                del self._at[task_hash]
        if not more:
            self._more.pop(task_hash, None)

    def refresh(self, full: bool = False, fresh: bool = False) -> None:
        """Read what was appended to the packs since the last refresh, and packs made since;
        `full` lists packs/ again; `fresh` opens every pack again (see the module's docstring)."""
        if full or fresh or self.top < 0:
            self._list()
        self._probe(fresh)
        for name, pack in list(self._packs.items()):
            if name != self.own and not pack.sealed:
                self._read(name, pack, fresh)

    def _list(self) -> None:
        try:
            names = {n for n in os.listdir(self.folder) if packfile.number_of(n) is not None}
        except FileNotFoundError:
            names = set()
        # A listing may come from a cache older than what this reader found by name: only a pack
        # that is not there by name either is gone.
        vanished = {n for n in set(self._packs) - names - {self.own} if not _there(self.path(n))}
        if vanished:
            self._forget(vanished)
        for name in names:
            self._packs.setdefault(name, _Pack())
        self.top = max([self.top, 0, *(packfile.number_of(n) or 0 for n in names)])

    def _probe(self, fresh: bool) -> None:
        """Packs numbered above the highest known, each looked up by name."""
        while True:
            if self._next[0] != self.top:  # asked after every claim: the name is made once per number
                name = packfile.pack_name(self.top + 1)
                self._next = (self.top, name, self.path(name))
            _, name, path = self._next
            try:
                if fresh:
                    os.close(os.open(path, os.O_RDONLY))
                else:
                    os.stat(path)
            except OSError as e:
                if not gone(e):
                    raise
                return
            self._packs.setdefault(name, _Pack())
            self.top += 1

    def met(self, name: str) -> None:
        """A pack another writer made, found by name (`packwriter.allocate`): read on the next refresh."""
        self._packs.setdefault(name, _Pack())

    def taken(self, name: str, number: int) -> None:
        """A pack this process just made (`packwriter.allocate`)."""
        self.top = max(self.top, number)
        self._packs.setdefault(name, _Pack()).read_to = 0

    def _forget(self, names: set[str]) -> None:
        """Packs removed: their records go."""
        for name in names:
            self._packs.pop(name, None)
        self._drop(names)

    def _drop(self, names: set[str]) -> None:
        """The records of packs merged into another (read anew where they went)."""
        for name in names:
            self.writers.pop(name, None)
        for task_hash, more in list(self._more.items()):
            more[:] = [p for p in more if p[0] not in names]
            if not more:
                del self._more[task_hash]
        for task_hash in [h for h, p in self._at.items() if p[0] in names]:
            rest = self._more.get(task_hash)
            if rest:
                self._at[task_hash] = rest.pop()
                if not rest:
                    del self._more[task_hash]
            else:
                del self._at[task_hash]
        self._dead = {d: h for d, h in self._dead.items() if d[0] not in names}

    def _read(self, name: str, pack: _Pack, fresh: bool) -> None:
        path = self.path(name)
        try:
            first = pack.read_to < 0
            if first:
                pack.read_to = self._read_index(name, path)
            data, size = _tail(path, pack.read_to, drop=fresh, unless=None if fresh or first else pack)
            if data is None:
                return  # not grown since the last read
            if size < pack.read_to:
                # Merged into another pack and replaced by a marker (packfile.py): read anew.
                self._drop({name})
                pack.read_to, pack.stuck_at = 0, -1
                data, size = _tail(path, 0, drop=True)
            records, end = packfile.scan(data or b"", pack.read_to)
            if end < size:
                # A record being written, a torn tail, or pages this client cached before the
                # pack grew (sshfs with kernel_cache, NFS): read again past the cache, once.
                data, size = _tail(path, pack.read_to, drop=True)
                records, end = packfile.scan(data or b"", pack.read_to)
                pack.stuck_at = size if end < size else -1
        except OSError as e:
            if not gone(e):
                raise
            self._forget({name})
            return
        pack.read_to = end
        for rec in records:
            self.note(name, rec)

    def _read_index(self, name: str, path: str) -> int:
        """Note what the pack's index holds; the offset in the pack after its last entry."""
        try:
            with open(path[:-len(PACK)] + INDEX, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return 0
        end = 0
        for kind, task_hash, offset, length in packfile.entries(data):
            target, aux = "", 0
            if kind in (TOMBSTONE, OPENING):
                target, aux = _target(path, offset, kind)
                if not target:
                    break  # the pack does not hold what its index says: read it through from here
            self.note(name, Record(kind, task_hash, offset, length, aux, target))
            end = offset + packfile.HEAD_SIZE + length
        return end


def _tail(path: str, start: int, drop: bool, unless: _Pack | None = None) -> tuple[bytes | None, int]:
    """(what the pack holds from `start` on, its size), opened again (close-to-open) and its size
    asked of the filesystem: a caching client may hold a size from before another client
    appended, and a result finished there would be missed. None instead of the bytes when the
    size is `unless`'s last read or stuck one."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = synced_size(fd)
        if unless is not None and size in (unless.read_to, unless.stuck_at):
            return None, size
        if drop:
            drop_cache(fd)
        return (os.pread(fd, size - start, start) if size > start else b""), size
    finally:
        os.close(fd)


def _target(path: str, offset: int, kind: int) -> tuple[str, int]:
    """What the tombstone or opening record at `offset` names."""
    fd = os.open(path, os.O_RDONLY)
    try:
        head = os.pread(fd, packfile.HEAD_SIZE + 4096, offset)
    finally:
        os.close(fd)
    records, _ = packfile.scan(head, offset)
    return (records[0].target, records[0].aux) if records and records[0].kind == kind else ("", 0)


def _there(path: str) -> bool:
    try:
        os.stat(path)
        return True
    except OSError as e:
        if not gone(e):
            raise
        return False
