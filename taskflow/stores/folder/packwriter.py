"""This process's own pack: records appended with O_APPEND, its index written in batches.

Every writer has a pack of its own, numbered (packfile.py) and opened by a
record naming its host and pid, so no two writers ever append to one file
and no lock is needed: each record goes in with one write. A write that fails (a full
disk) may leave part of a record; the writer then gives that pack up and
starts another, so nothing ever follows a torn record. Its index entries are
appended when FLUSH_EVERY are waiting or FLUSH_AFTER after the last, and
when the writer seals its pack (the worker stops, or the process exits):
a seal says the pack is whole, so `taskflow pack` may merge it.
"""
from __future__ import annotations

import atexit
import os
import threading
import time

from ..identity import HOST, process
from ..journals import FLUSH_AFTER, FLUSH_EVERY
from ..modes import PRIVATE, Modes
from . import packfile
from ..localfiles import fsync_dir
from .packfile import INDEX, OPENING, PACK, SEAL, Record
from .packindex import PackIndex


class PackWriter:
    """Appends records to this process's pack in `folder` and tells `index` of each."""

    def __init__(self, folder: str, index: PackIndex, fsync: bool = False, modes: Modes | None = None):
        self.folder = folder
        self.modes = modes or Modes()
        self.index = index
        self.fsync = fsync
        self._lock = threading.Lock()
        self._pid = process.pid
        self._fd: int | None = None
        self._idx_fd: int | None = None
        self._name = ""
        self._size = 0
        self._entries: list[bytes] = []
        self._since = time.monotonic()
        self._made = 0.0  # when this pack was made (monotonic), for the grace (grace.py)
        atexit.register(self.seal)

    @property
    def name(self) -> str:
        return self._name

    def ready(self, grace: float) -> bool:
        """Whether this process's pack is at least `grace` seconds old, making it first if there is
        none: results go into it only then (grace.py). OSError when it cannot be made."""
        with self._lock:
            self._own()
            return time.monotonic() - self._made >= grace

    def append(self, kind: int, task_hash: str, body: bytes = b"", aux: int = 0) -> Record:
        """Write one record; the record as readers will see it. OSError when it cannot be written."""
        return self.append_many([(kind, task_hash, body, aux)])[0]

    def append_many(self, items: list[tuple[int, str, bytes, int]]) -> list[Record]:
        """Write records (kind, task hash, body, aux) with one write: a batch's results. Each is
        self-checking as ever: a write cut short leaves whole records, then at most one torn."""
        datas = [packfile.record(kind, task_hash, body, aux) for kind, task_hash, body, aux in items]
        data = datas[0] if len(datas) == 1 else b"".join(datas)
        with self._lock:
            self._own()
            assert self._fd is not None
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view):]
                if self.fsync:
                    os.fsync(self._fd)
            except BaseException:
                self._give_up()
                raise
            recs = []
            for (kind, task_hash, body, aux), one in zip(items, datas, strict=True):
                target = body.decode("utf-8", "replace") if kind == packfile.TOMBSTONE else ""
                rec = Record(kind, task_hash, self._size, len(body), aux, target)
                self._size += len(one)
                self.index.wrote(self._name, rec, self._size)
                self._entries.append(packfile.entry(rec))
                recs.append(rec)
            if len(self._entries) >= FLUSH_EVERY or time.monotonic() - self._since >= FLUSH_AFTER:
                self._flush()
        return recs

    def _own(self) -> None:
        """Make sure this process has a pack open."""
        if self._pid != process.pid:  # a forked child: the parent's pack is the parent's
            self._pid, self._fd, self._idx_fd, self._entries = process.pid, None, None, []
            self.index.own = None
        if self._fd is None:
            self._open()

    def _open(self) -> None:
        self._name, self._fd = allocate(self.index, self.modes)
        self._made = time.monotonic()
        self.index.own = self._name
        if self.fsync:
            fsync_dir(self.folder)
        opening = packfile.record(OPENING, "0" * packfile.HASH_SIZE, f"{HOST} {process.pid}".encode())
        try:
            os.write(self._fd, opening)
        except BaseException:
            self._give_up()
            raise
        self._size = len(opening)
        rec = Record(OPENING, "0" * packfile.HASH_SIZE, 0, len(opening) - packfile.HEAD_SIZE,
                     target=f"{HOST} {process.pid}")
        self.index.wrote(self._name, rec, self._size)
        self._entries.append(packfile.entry(rec))

    def _flush(self) -> None:
        self._since = time.monotonic()
        if not self._entries:
            return
        data, self._entries = b"".join(self._entries), []
        try:
            if self._idx_fd is None:
                self._idx_fd = os.open(self.index.path(self._name[:-len(PACK)] + INDEX),
                                       os.O_WRONLY | os.O_CREAT | os.O_APPEND, self.modes.file)
                self.modes.made(self._idx_fd)
            view = memoryview(data)
            while view:
                view = view[os.write(self._idx_fd, view):]
        except OSError:
            # The index only spares readers reading the pack through: without it they still find
            # every record. Entries after a torn one would be misread, so none follow it.
            self._close_index()

    def _close_index(self) -> None:
        if self._idx_fd is not None:
            os.close(self._idx_fd)
        self._idx_fd = None

    def _give_up(self) -> None:
        """After a failed write: this pack may end in a torn record; the next record starts a new one."""
        self._entries = []
        self._close_index()
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self.index.own = None  # read like any other pack from now on
        self._name = ""

    def flush(self) -> None:
        with self._lock:
            if self._pid == process.pid and self._fd is not None:
                self._flush()

    def seal(self) -> None:
        """Mark the pack whole and close it; the next record starts a new pack."""
        with self._lock:
            if self._pid != process.pid or self._fd is None:
                return
            try:
                data = packfile.record(SEAL, "0" * packfile.HASH_SIZE)
                os.write(self._fd, data)
                rec = Record(SEAL, "0" * packfile.HASH_SIZE, self._size, 0)
                self._entries.append(packfile.entry(rec))
                self._size += len(data)
                self.index.wrote(self._name, rec, self._size)
                self._flush()
                if self.fsync:
                    os.fsync(self._fd)
            except OSError:
                pass  # unsealed, the pack is merged once its writer is known to be gone
            finally:
                self._give_up()


def allocate(index: PackIndex, modes: Modes = PRIVATE) -> tuple[str, int]:
    """(name, fd open for appending) of a new pack of this process's, numbered above every pack
    `index` knows: O_EXCL, so no two writers ever get one number."""
    modes.make_folders(index.folder)
    index.refresh()
    number = index.top + 1
    while True:
        name = packfile.pack_name(number)
        try:
            fd = os.open(index.path(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, modes.file)
        except FileExistsError:
            # Another writer's, made since the refresh: known from now on. Numbers above `top`
            # are looked up one by one, and this pack would fall below the one we make.
            index.met(name)
            number += 1
            continue
        index.taken(name, number)
        try:
            modes.made(fd)
        except BaseException:
            os.close(fd)
            raise
        return name, fd
