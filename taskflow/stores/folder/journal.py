"""Journals of finished tasks: how workers learn of each other's work cheaply.

Each worker appends the hash of every task it finishes to its own file in
STORE/done/ (named host.pid.random like its clock file), a few dozen hashes
per write. Another worker learns what everybody finished since it started by
reading what was added to those files: one look per worker, where listing the
store costs five system calls per shard, 1,280 in all, and looking at each
result one call per task.

A journal line is a hint, never the truth: the result file is. A hash is
journaled only after its result is in place, so a hint is never early; a
result removed later (invalidate, or found damaged) is noticed when it is
loaded and recomputed, as for any result that vanished. Lines written before
a reader started are not read at all: that reader listed the store when it
started, and older lines may name results removed since. A worker removes its
journal when it stops; `cleanup` removes those of workers that died.
"""
from __future__ import annotations

import os


from ...hashing import DIGEST_SIZE
from ...stale import gone, reread
from ..base import NewsReader
from ..journals import BatchedJournal
from ..identity import HOST, process, writer_gone_from_here
from .layout import Folder


_LINE = 2 * DIGEST_SIZE + 1  # a hash in hex and a newline


class FolderJournal(BatchedJournal):
    """This worker's journal: finished hashes, written in batches."""

    def __init__(self, store: Folder):
        super().__init__()
        self.store = store
        self.path: str | None = None
        self._fd: int | None = None

    @property
    def ident(self) -> str | None:
        return self.path

    def _write(self, hashes: list[str]) -> None:
        data = ("\n".join(hashes) + "\n").encode() if hashes else b""  # a join, not a generator: a batch is large
        if self._fd is None:
            modes = self.store.modes
            modes.make_folders(self.store.done_dir)
            self.path = os.path.join(self.store.done_dir, f"{HOST}.{process.pid}.{process.unique()}")
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, modes.file)
            modes.made(self._fd)
        # O_APPEND: lines land whole and in order; a reader leaves a partial last one for later.
        while data:
            data = data[os.write(self._fd, data):]

    def close(self) -> None:
        """Stop journaling and remove the journal: readers that still need it look at results instead."""
        self._pending.clear()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            try:
                if self.path is not None:
                    os.unlink(self.path)
            except FileNotFoundError:
                pass


class JournalReader(NewsReader):
    """What other workers finished since this reader started, read incrementally."""

    def __init__(self, store: Folder):
        self.store = store
        self._read_to: dict[str, int] = {}

    def start(self) -> None:
        """Skip everything journaled so far (call before listing the store's results)."""
        self._read_to = {name: size for name, size in self._sizes()}

    def journals_seen(self, skip: str | None = None) -> bool:
        """Whether journals other than the one at path `skip` (one's own) were there at start,
        leaving out those of workers on this host that are gone (a kill -9 leaves its journal)."""
        own = os.path.basename(skip) if skip else None
        for name in self._read_to:
            if name == own:
                continue
            parts = name.rsplit(".", 2)
            if len(parts) == 3 and writer_gone_from_here(parts[0], parts[1]):
                continue
            return True
        return False

    def _sizes(self):
        try:
            entries = list(os.scandir(self.store.done_dir))
        except FileNotFoundError:
            return
        for entry in entries:
            try:
                yield entry.name, entry.stat().st_size
            except OSError as e:
                if not gone(e):
                    raise

    def news(self, skip: str | None = None) -> set[str]:
        """Hashes journaled since the last call, except in the journal at path `skip` (one's own)."""
        found: set[str] = set()
        seen = set()
        own = os.path.basename(skip) if skip else None
        for name, size in self._sizes():
            seen.add(name)
            if name == own:
                continue
            start = self._read_to.get(name, 0)
            if size < start + _LINE:
                continue
            try:
                data = _read_from(os.path.join(self.store.done_dir, name), start, size - start)
            except FileNotFoundError:
                continue
            whole = len(data) - len(data) % _LINE
            for i in range(0, whole, _LINE):
                if data[i + _LINE - 1] != 0x0A:  # not a journal of ours, or damaged: read no further
                    whole = size - start
                    break
                found.add(data[i:i + _LINE - 1].decode("ascii", "replace"))
            self._read_to[name] = start + whole
        for vanished in self._read_to.keys() - seen:
            del self._read_to[vanished]
        return found


@reread  # a journal removed through another client answers ESTALE
def _read_from(path: str, start: int, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, size, start)
    finally:
        os.close(fd)


def journaled(store: Folder) -> set[str]:
    """Every hash named in the journals now in done/ (of running workers, or of dead ones not cleaned up)."""
    found: set[str] = set()
    try:
        names = os.listdir(store.done_dir)
    except (FileNotFoundError, NotADirectoryError):
        return found
    for name in names:
        try:
            with open(os.path.join(store.done_dir, name), "rb") as f:
                data = f.read()
        except OSError:
            continue
        for i in range(0, len(data) - len(data) % _LINE, _LINE):
            if data[i + _LINE - 1] != 0x0A:
                break  # not a journal of ours, or damaged: read no further
            found.add(data[i:i + _LINE - 1].decode("ascii", "replace"))
    return found
