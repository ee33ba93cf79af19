"""`taskflow pack`: small result files and finished packs merged into one new pack, while workers run.

1. Read every pack through, fresh. Packs whose writer sealed them, or whose
   writer is known gone (a process of this host that is not running), are
   merged; a pack still written to is left alone (the next `pack` after its
   worker stops merges it). Small result files are merged too.
2. Take a number for the new pack (an empty file, O_EXCL), write the pack
   and its index in tmp/, each result checked first, then rename them over
   it: readers see the merged pack whole or empty, and until the old packs
   go every result is in both.
3. Read the packs again: a result removed meanwhile (a tombstone written in
   any pack, or its file removed) is removed from the new pack too. A
   remover that comes later finds the new pack when it looks again after
   its tombstone (`Packs.remove`), so no removal is lost either way.
4. Replace each merged pack by a marker (a pack holding a seal only, so
   that its number is never given again) and remove the merged files. A
   reader that knew a result in a merged pack finds it gone and looks
   again, in the new pack (`Packs.read`). This waits until the new pack's
   number is a pack's grace old (grace.py), so that no reader still trusts
   a cached "not found" for it. Markers older than MARKER_AGE,
   but the highest, are removed: a writer that takes a number has listed
   packs/ more recently than that.

Tombstones of records in packs not merged are carried into the new pack. A
damaged result (it fails its check) is not merged: a file stays where it is,
a record is copied to damaged/ for a human, and the task counts as missing.
"""
from __future__ import annotations

import os
import time

from ... import encoding
from ...errors import CorruptResultError
from ...stale import gone
from ..identity import HOST, process, writer_gone_from_here, writer_of_this_host
from . import packfile
from ..localfiles import fsync_dir, unique_name
from .files import listing, opens, remove_file
from .layout import Folder
from .packed import PACK_BELOW
from .packwriter import allocate
from .packfile import INDEX, OPENING, PACK, RESULT, SEAL, TOMBSTONE, Record

MARKER_AGE = 3600.0  # seconds on the filesystem's clock
_MARKER = packfile.record(SEAL, "0" * packfile.HASH_SIZE)


def _mergeable(store: Folder, name: str) -> bool:
    index = store.packs.index
    if name == index.own:
        return False
    writer = index.writers.get(name)
    if writer is None:
        return False  # a marker, or a pack being made
    return index.sealed(name) or (writer_of_this_host(*writer) and writer_gone_from_here(*writer))


def _small_files(store: Folder, live: set[str]) -> list[tuple[str, str]]:
    """(hash, path) of each small result file whose task has no packed result."""
    found = []
    for shard in listing(store.results_dir):
        folder = os.path.join(store.results_dir, shard)
        for name in listing(folder):
            if name in live or not packfile.packable(name):
                continue
            path = os.path.join(folder, name)
            try:
                if os.stat(path).st_size < PACK_BELOW:
                    found.append((name, path))
            except OSError as e:
                if not gone(e):
                    raise
    return found


def _read_file(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            data = f.read()
        encoding.check(path, memoryview(data))
    except CorruptResultError:
        return None
    except OSError as e:
        if not gone(e):
            raise
        return None
    return data


class _NewPack:
    """The merged pack, written in tmp/ then renamed into packs/."""

    def __init__(self, store: Folder):
        self.store = store
        self.name, fd = allocate(store.packs.index, store.modes)
        self.made = time.monotonic()
        os.close(fd)
        self.tmp = unique_name(store.tmp_dir, "pack")
        self.tmp_index = unique_name(store.tmp_dir, "packindex")
        self.size = 0
        self.entries: list[bytes] = []
        self.offsets: dict[str, int] = {}
        store.modes.make_folders(store.tmp_dir)
        self.f = open(store.modes.create(self.tmp), "wb")
        self.add(OPENING, "0" * packfile.HASH_SIZE, f"{HOST} {process.pid}".encode())

    def add(self, kind: int, task_hash: str, body: bytes, aux: int = 0) -> None:
        data = packfile.record(kind, task_hash, body, aux)
        self.f.write(data)
        self.entries.append(packfile.entry(Record(kind, task_hash, self.size, len(body), aux)))
        if kind == RESULT:
            self.offsets[task_hash] = self.size
        self.size += len(data)

    def place(self) -> None:
        self.f.close()
        with open(self.store.modes.create(self.tmp_index), "wb") as f:
            f.write(b"".join(self.entries))
        self.entries = []
        if self.store.fsync:
            for path in (self.tmp, self.tmp_index):
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        folder = self.store.packs_dir
        self.store.modes.make_folders(folder)
        os.replace(self.tmp_index, os.path.join(folder, self.name[:-len(PACK)] + INDEX))
        os.replace(self.tmp, os.path.join(folder, self.name))
        if self.store.fsync:
            fsync_dir(folder)

    def append(self, kind: int, task_hash: str, body: bytes = b"", aux: int = 0) -> None:
        """A record after the pack is in place: appended like any writer's, index entry included."""
        data = packfile.record(kind, task_hash, body, aux)
        path = os.path.join(self.store.packs_dir, self.name)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        fd = os.open(path[:-len(PACK)] + INDEX, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, packfile.entry(Record(kind, task_hash, self.size, len(body), aux)))
        finally:
            os.close(fd)
        self.size += len(data)


def compact(store: Folder) -> dict[str, int]:
    """Merge what may be merged (see the module's docstring); counts of what was done."""
    store.ensure()
    packs = store.packs
    index = packs.index
    index.refresh(full=True, fresh=True)
    merged = {name for name in index.pack_names() if _mergeable(store, name)}
    counts = {"packs_merged": len(merged), "files_merged": 0, "results": 0, "damaged": 0, "packs_kept": 0}
    counts["packs_kept"] = len(index.pack_names()) - len(merged)
    files = _small_files(store, index.hashes())
    dead_inside = any(pack in merged for pack, _ in index.tombstones())
    if not files and len(merged) < 2 and not dead_inside:
        counts["packs_merged"] = 0
        return counts
    new = _NewPack(store)
    copied: dict[str, tuple[str, int] | str] = {}  # hash -> the record or the file it was copied from
    try:
        for task_hash in sorted(index.hashes()):
            places = index.places(task_hash)
            if places[0][0] not in merged:
                continue  # its newest record stays where it is
            for place in places:
                if place[0] not in merged:
                    break
                try:
                    body = bytes(packs.body(task_hash, place, fresh=True))
                    encoding.check(packs.name(place), memoryview(body))
                except (OSError, CorruptResultError):
                    counts["damaged"] += 1
                    packs.move_aside(task_hash, store.damaged_dir)
                    continue
                new.add(RESULT, task_hash, body)
                copied[task_hash] = (place[0], place[1])
                break
        for task_hash, path in files:
            data = _read_file(path)
            if data is None:
                counts["damaged"] += data is None and os.path.exists(path)
                continue
            new.add(RESULT, task_hash, data)
            copied[task_hash] = path
            counts["files_merged"] += 1
        for (pack, offset), task_hash in index.tombstones().items():
            if pack not in merged:
                new.add(TOMBSTONE, task_hash, pack.encode(), offset)
        new.place()
    except BaseException:
        new.f.close()
        for path in (new.tmp, new.tmp_index):
            remove_file(path)
        _mark_merged(store, new.name)
        raise
    counts["results"] = len(new.offsets)
    # Removals made while the new pack was written: made in it too.
    index.refresh(full=True, fresh=True)
    dead = set(index.tombstones())
    for task_hash, origin in copied.items():
        removed = (tuple(origin) in dead) if isinstance(origin, tuple) else not opens(origin)
        if removed:
            new.append(TOMBSTONE, task_hash, new.name.encode(), new.offsets[task_hash])
    new.append(SEAL, "0" * packfile.HASH_SIZE)
    # Until its grace is over, a reader may still trust a cached "not found" for the new pack's
    # name (grace.py): the results it holds stay where they were until then.
    time.sleep(max(0.0, new.made + packs.grace - time.monotonic()))
    for name in merged:
        _mark_merged(store, name)
    for origin in copied.values():
        if isinstance(origin, str):
            remove_file(origin)
    _remove_old_markers(store, os.stat(index.path(new.name)).st_mtime)
    index.refresh(full=True)
    return counts


def _mark_merged(store: Folder, name: str) -> None:
    """Replace a pack by a marker: readers drop what they read of it, its number stays taken."""
    index = store.packs.index
    remove_file(index.path(name[:-len(PACK)] + INDEX))
    tmp = unique_name(store.tmp_dir, "marker")
    with open(store.modes.create(tmp), "wb") as f:
        f.write(_MARKER)
    os.replace(tmp, index.path(name))


def _remove_old_markers(store: Folder, fs_now: float) -> None:
    index = store.packs.index
    for name in index.pack_names():
        if name in index.writers or packfile.number_of(name) == index.top:
            continue
        path = index.path(name)
        try:
            st = os.stat(path)
        except OSError as e:
            if not gone(e):
                raise
            continue
        if st.st_size == len(_MARKER) and fs_now - st.st_mtime > MARKER_AGE:
            remove_file(path)
