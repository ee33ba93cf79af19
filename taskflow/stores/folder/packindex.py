"""Where each packed result is: an index of every pack in packs/, kept in memory and read on.

A reader reads a pack's `.idx` once, when it first meets the pack, then the
pack itself from the last indexed record on; later refreshes read only what
was appended since. A result's newest live record is the one it loads; a
tombstone removes exactly the record it names (pack, offset), so a result
saved again after a removal is never removed by it.

A refresh is cheap when nothing changed: one stat of packs/ (listed again
only when its mtime moved, and once more a second after, so that a pack made
within the same tick of the filesystem's clock is not missed) and one stat
per pack still written to. With `fresh`, each pack is opened again instead:
on NFS an open revalidates what this client holds of a file (close-to-open),
a stat may answer from its attribute cache.
"""
from __future__ import annotations

import os
import time

from ...stale import gone
from . import packfile
from .packfile import INDEX, PACK, RESULT, SEAL, TOMBSTONE, Record

# A listing made this long after packs/'s mtime was first seen holds every pack made by then.
_SETTLE = 1.0

Place = tuple[str, int, int]  # pack name, offset of the record, body length


class _Pack:
    __slots__ = ("read_to", "sealed")

    def __init__(self) -> None:
        self.read_to = -1  # -1: not read yet (its index first)
        self.sealed = False


class PackIndex:
    """The live packed results of one store, as far as this process has read."""

    def __init__(self, folder: str):
        self.folder = folder
        self.own: str | None = None   # this process's own pack: its records are noted, not read
        self._packs: dict[str, _Pack] = {}
        self._at: dict[str, Place] = {}
        self._more: dict[str, list[Place]] = {}  # older live copies, rare
        self._dead: dict[tuple[str, int], str] = {}  # tombstoned records: the task of each
        self._mtime = -1
        self._mtime_seen = 0.0
        self._settled = False

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
        """Read what was appended to the packs since the last refresh; `full` lists packs/ again
        whatever its mtime says; `fresh` opens every pack again (see the module's docstring)."""
        try:
            st = os.stat(self.folder)
        except FileNotFoundError:
            if self._packs:
                self._forget(set(self._packs))
            return
        now = time.monotonic()
        if st.st_mtime_ns != self._mtime:
            self._mtime, self._mtime_seen, self._settled, full = st.st_mtime_ns, now, False, True
        elif not self._settled:
            full = True
            self._settled = now - self._mtime_seen >= _SETTLE
        if full or fresh:
            self._list()
        for name, pack in list(self._packs.items()):
            if name != self.own and not pack.sealed:
                self._read(name, pack, fresh)

    def _list(self) -> None:
        try:
            names = {n for n in os.listdir(self.folder) if n.endswith(PACK)}
        except FileNotFoundError:
            names = set()
        vanished = set(self._packs) - names - {self.own}
        if vanished:
            self._forget(vanished)
        for name in names:
            self._packs.setdefault(name, _Pack())

    def _forget(self, names: set[str]) -> None:
        """Packs merged into another, or removed: their records go (the merged copies are read anew)."""
        for name in names:
            self._packs.pop(name, None)
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
            if pack.read_to < 0:
                pack.read_to = self._read_index(name, path)
            if not fresh and os.stat(path).st_size <= pack.read_to:
                return
            fd = os.open(path, os.O_RDONLY)
            try:
                size = os.fstat(fd).st_size
                data = os.pread(fd, size - pack.read_to, pack.read_to) if size > pack.read_to else b""
            finally:
                os.close(fd)
        except OSError as e:
            if not gone(e):
                raise
            self._forget({name})
            return
        records, pack.read_to = packfile.scan(data, pack.read_to)
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
            if kind == TOMBSTONE:
                target, aux = self._tombstone_target(path, offset)
                if not target:
                    break  # the pack does not hold what its index says: read it through from here
            self.note(name, Record(kind, task_hash, offset, length, aux, target))
            end = offset + packfile.HEAD_SIZE + length
        return end

    @staticmethod
    def _tombstone_target(path: str, offset: int) -> tuple[str, int]:
        fd = os.open(path, os.O_RDONLY)
        try:
            head = os.pread(fd, packfile.HEAD_SIZE + 4096, offset)
        finally:
            os.close(fd)
        records, _ = packfile.scan(head, offset)
        return (records[0].target, records[0].aux) if records and records[0].kind == TOMBSTONE else ("", 0)
