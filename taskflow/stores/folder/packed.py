"""Packed results of a folder store: saving small results into this process's pack, finding and
reading them, removing them with tombstones.

A result is looked for in the packs this process has read, then as its own
file, then in the packs again after reading what was appended to them since:
a result another worker just packed is found, and one that is a file costs
no look at the packs. `Packs` is what a `FolderStore` holds of them.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ... import encoding
from ...errors import CorruptResultError
from ...stale import drop_cache, gone
from . import packfile
from .grace import grace_for
from .packfile import RESULT, TOMBSTONE
from .packindex import PackIndex, Place
from .packwriter import PackWriter
from ..modes import Modes

if TYPE_CHECKING:
    from ...signing import Seal

# Results smaller than this are packed by workers of graphs of PACK_FROM tasks or more, and by
# `taskflow pack`; larger ones, and arrays to be memory-mapped, stay one file each.
PACK_BELOW = 64 * 1024
PACK_FROM = 1000
# Packs a reader keeps open at most.
_OPEN_PACKS = 32


class Packs:
    """The packs of one store, as this process reads and writes them."""

    def __init__(self, folder: str, fsync: bool = False, modes: Modes | None = None):
        self.folder = folder
        self.modes = modes or Modes()
        self.index = PackIndex(folder)
        self.writer = PackWriter(folder, self.index, fsync, self.modes)
        self.below = 0  # pack results smaller than this: 0 until a worker of a large graph asks
        self._grace: float | None = None  # seconds a new pack waits for results (grace.py), once asked
        # Packs kept open for reading: a record never changes once written, so a read through an
        # open file is as good as one through a new open (a merged pack's old file too).
        self._open: dict[str, int] = {}

    def __getstate__(self) -> dict:  # pragma: no cover - stores pickle by url
        raise TypeError("Packs are opened again, not pickled")

    # -- saving -----------------------------------------------------------

    @property
    def grace(self) -> float:
        if self._grace is None:
            self._grace = grace_for(self.folder)
        return self._grace

    def wanted(self, task_hash: str, payload: encoding.Payload) -> bool:
        """Whether to pack this result: small, and this process's pack past its grace (a file of
        its own until then; grace.py). OSError when the pack cannot be made."""
        return (self.below > 0 and sum(payload.sizes) < self.below and packfile.packable(task_hash)
                and self.writer.ready(self.grace))

    def save(self, task_hash: str, payload: encoding.Payload) -> int:
        head, chunks, size = payload.pieces()
        body = b"".join([head, *chunks])
        self.writer.append(RESULT, task_hash, body)
        return size

    def save_many(self, items: list[tuple[str, encoding.Payload]]) -> list[int]:
        """`save` each (task hash, payload), all with one write."""
        records, sizes = [], []
        for task_hash, payload in items:
            head, chunks, size = payload.pieces()
            records.append((RESULT, task_hash, b"".join([head, *chunks]), 0))
            sizes.append(size)
        self.writer.append_many(records)
        return sizes

    def add(self, task_hash: str, body: bytes) -> None:
        self.writer.append(RESULT, task_hash, body)

    def remove(self, task_hash: str) -> bool:
        """Tombstone every live record of the task; whether there was one.

        Looked at again afterwards: `taskflow pack` may have copied a record
        into a new pack meanwhile, and its copy goes too.
        """
        removed = False
        self.index.refresh(fresh=True)
        for _ in range(3):
            places = self.index.places(task_hash)
            if not places:
                break
            for pack, offset, _ in places:
                self.writer.append(TOMBSTONE, task_hash, pack.encode(), offset)
            removed = True
            self.index.refresh(full=True, fresh=True)
        return removed

    def bury(self, task_hash: str, place: Place) -> None:
        self.writer.append(TOMBSTONE, task_hash, place[0].encode(), place[1])

    # -- finding and reading ------------------------------------------------

    def find(self, task_hash: str, fresh: bool = False) -> Place | None:
        """Where the task's packed result is, reading the packs on (without `fresh`: only if this
        process knows of none)."""
        place = None if fresh else self.index.lookup(task_hash)
        if place is None:
            self.index.refresh(fresh=fresh)
            place = self.index.lookup(task_hash)
        return place

    def name(self, place: Place) -> str:
        """How messages name a packed result."""
        return f"{self.index.path(place[0])}@{place[1]}"

    def body(self, task_hash: str, place: Place, fresh: bool = False) -> memoryview:
        """The result's bytes as a result file would hold them. FileNotFoundError when the pack
        is gone (merged into another); CorruptResultError when the record is not the task's."""
        path = self.index.path(place[0])
        size = packfile.HEAD_SIZE + place[2]
        buf = memoryview(bytearray(size))
        fd = None if fresh else self._open.get(place[0])
        if fd is not None:
            try:
                got = os.preadv(fd, [buf], place[1])
            except OSError as e:
                if not gone(e):
                    raise
                got = -1
            if got != size:  # a record appended through another client after this open: open again
                self._forget_fd(place[0])
                fd = None
        if fd is None:
            fd = os.open(path, os.O_RDONLY)
            try:
                if fresh:
                    drop_cache(fd)
                got = os.preadv(fd, [buf], place[1])
            except BaseException:
                os.close(fd)
                raise
            self._keep_fd(place[0], fd)
        if got != size:  # the pack ends before the record: merged away, and now a marker (packfile.py)
            raise FileNotFoundError(2, "pack merged into another", path)
        head = packfile.parse_head(buf, 0)
        if head is None or head[0] != RESULT or head[1] != task_hash or head[2] != place[2]:
            raise CorruptResultError(self.name(place), "the pack does not hold this result where its index says")
        return buf[packfile.HEAD_SIZE:]

    def _keep_fd(self, name: str, fd: int) -> None:
        self._forget_fd(name)
        if len(self._open) >= _OPEN_PACKS:
            self._forget_fd(next(iter(self._open)))
        self._open[name] = fd

    def _forget_fd(self, name: str) -> None:
        fd = self._open.pop(name, None)
        if fd is not None:
            os.close(fd)

    def read(self, task_hash: str, fresh: bool, use) -> Any:
        """`use(name, body)` of the task's packed result; FileNotFoundError when there is none.
        A pack merged away under the reader is looked for again, in the pack that replaced it."""
        for attempt in range(3):
            place = self.find(task_hash, fresh=fresh or attempt > 0)
            if place is None:
                break
            try:
                body = self.body(task_hash, place, fresh)
            except OSError as e:
                if not gone(e):
                    raise
                self._forget_fd(place[0])
                self.index.refresh(full=True, fresh=True)
                continue
            return use(self.name(place), body)
        raise FileNotFoundError(2, "no packed result", task_hash)

    def move_aside(self, task_hash: str, damaged_dir: str, seal: Seal | None = None) -> str | None:
        """Copy a damaged packed result to damaged/ and tombstone it; None when it reads intact, is
        gone, or another mover moved it first."""
        place = self.find(task_hash, fresh=True)
        if place is None:
            return None
        try:
            body = self.body(task_hash, place, fresh=True)
            encoding.check(self.name(place), body, seal)
            return None
        except OSError as e:
            if not gone(e):
                raise
            return None
        except CorruptResultError:
            pass
        self.modes.make_folders(damaged_dir)
        # Named after the record: racing movers make it once (O_EXCL), the others back off.
        moved = os.path.join(damaged_dir, f"{task_hash}.{place[0][:-len(packfile.PACK)]}.{place[1]}")
        try:
            data = bytes(self.body(task_hash, place, fresh=True))
        except (OSError, CorruptResultError):
            data = b""
        try:
            fd = self.modes.create(moved)
        except FileExistsError:
            return None
        with open(fd, "wb") as f:
            f.write(data)
        self.bury(task_hash, place)
        return moved
