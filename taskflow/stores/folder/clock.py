"""The filesystem's clock: the time claims in a folder store are judged by.

A worker touches a file of its own in STORE/clock/ (at most once a second)
and reads its mtime: the time the filesystem set, the same for every client,
whatever the hosts' clocks say. Between touches the reading is carried on by
the monotonic clock.

Commands that only read (status, check, show, report, wait) may run where the
store cannot be written: a read-only mount or snapshot, a filesystem that went
read-only, another user's store. Their clock file then cannot be written, and
they measure ages against this host's clock instead, never earlier than the
newest time stamp they read in the store (the claims judged, and the folders
locks/, clock/ and done/, which change whenever claims, clock files and
journals come and go). A host clock behind the filesystem's is thus corrected
up to the newest renewal seen; one ahead of it by more than a lease shows live
claims as stale. Such a reader only reports what it judged and takes nothing
over; a worker never uses this clock, since it cannot work on a store it
cannot write.
"""
from __future__ import annotations

import logging
import os
import time

from ...errors import StoreError
from ..identity import HOST, process
from .layout import Folder


log = logging.getLogger(__name__)

_noted_read_only = False  # said once per process


class FsClock:
    """One process's reading of a folder store's clock."""

    def __init__(self, store: Folder, reader: bool):
        self.store = store
        self.reader = reader
        self.read_only = False  # a reader whose clock file could not be written
        self._newest_seen = 0.0  # newest time stamp read from the store, once read_only
        self._file: str | None = None
        self._ref: tuple[float, float] | None = None  # (fs time, monotonic) when read

    def now(self, seen: float = 0.0) -> float:
        """Current time as the store's filesystem sees it.

        `seen` is a time stamp just read from the store: the clock of a reader
        that cannot write never shows an earlier time (see `_unwritten_now`).
        """
        if self.read_only:
            return self._unwritten_now(seen)
        now = time.monotonic()
        if self._ref is None or now - self._ref[1] > 1.0:
            try:
                self._ref = (self._touch(), time.monotonic())
            except (OSError, StoreError) as e:
                if not self.reader:
                    raise
                self._go_read_only(e)
                return self._unwritten_now(seen)
        return self._ref[0] + (time.monotonic() - self._ref[1])

    def _touch(self) -> float:
        self.store.ensure()
        clock_dir = self.store.clock_dir
        if self._file is None:
            self._file = os.path.join(clock_dir, f"{HOST}.{process.pid}.{process.unique()}")
        modes = self.store.modes
        try:
            fd = os.open(self._file, os.O_WRONLY | os.O_CREAT, modes.file)
        except FileNotFoundError:
            modes.make_folders(clock_dir)
            log.warning("%s vanished from the store; made it again", clock_dir)
            fd = os.open(self._file, os.O_WRONLY | os.O_CREAT, modes.file)
        try:
            modes.made(fd)  # made here, or made again after a cleanup removed it
            os.pwrite(fd, b"t", 0)
        finally:
            os.close(fd)
        return os.stat(self._file).st_mtime

    def _go_read_only(self, why: BaseException) -> None:
        global _noted_read_only
        self.read_only = True
        self._file = None  # never made
        # Folders change when claims, clock files and journals come and go.
        for folder in (self.store.locks_dir, self.store.clock_dir, self.store.done_dir):
            try:
                self._newest_seen = max(self._newest_seen, os.stat(folder).st_mtime)
            except OSError:
                continue
        if not _noted_read_only:
            _noted_read_only = True
            reason = getattr(why, "strerror", None) or str(why)
            log.info("cannot write in %s (%s): judging claims by this host's clock", self.store.path, reason)

    def _unwritten_now(self, seen: float) -> float:
        """The time for a reader on a store it cannot write: this host's clock, or the
        newest time stamp read from the store when that is later (a clock behind the
        filesystem's must not make claims look younger than their own last renewal)."""
        if seen > self._newest_seen:
            self._newest_seen = seen
        return max(time.time(), self._newest_seen)

    def close(self) -> None:
        if self._file:
            try:
                os.unlink(self._file)
            except OSError:
                pass
