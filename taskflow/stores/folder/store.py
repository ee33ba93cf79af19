"""The folder store: one folder on a filesystem every worker sees.

    STORE/
      taskflow-store.json     format marker, written once
      results/ab/<hash>       result + metadata of task <hash> (see encoding.py)
      packs/<n>.pack, .idx    small results kept together, numbered, and where each is (see packfile.py)
      failed/<hash>.json      failure record: exception, traceback, host, time
      locks/<hash>            claim of a running task (see claims.py); another name of its batch's for a task of a batch
      locks/<token>.batch     claim of a batch of short tasks (see batchclaims.py)
      attempts/<hash>.<token>.json  an attempt at the task whose worker died (see attempts.py)
      tmp/                    files being written; renamed into place when complete
      clock/                  files touched to read the filesystem's own time (see clock.py)
      done/<host>.<pid>.<n>   journal of one worker: the tasks it finished, for other clients (see journal.py)
      jobs/                   array jobs submitted for this store
      code/<name>/<tag>       which code versions produced results of each task name
      suspect/<hash>          a result some command found damaged: checked again by the next execute
      damaged/<hash>.<host>.<pid>.<random>  damaged results moved aside by execute or check --verify, for a human
      complete/<digest>       a worker saw every task of one graph finished (a hint for other clients)
      workers/<worker>.json   what each worker may run and what it skipped, refreshed while it runs (see workers.py)
      doctor/                 scratch folders of a running `taskflow doctor`
      doctor.json             what `taskflow doctor` measured and recommends (see needs.py)
      doctor.json.lock        a filelock SoftFileLease held while doctor replaces doctor.json (needs.py)
      STOP                    if present, workers take no new task

Writes are atomic: a result is written to an anonymous file (O_TMPFILE) and
linked into place or, where the filesystem cannot, written to a uniquely named
file in tmp/ and renamed into place (see writes.py); readers see a whole file
or none, and a crashed writer leaves at most a temp file, which `taskflow
cleanup` removes. A pack is only ever appended to, by its one writer, in
self-checking records; a removed packed result is a tombstone record, and
`taskflow pack` merges packs into a new one renamed into place (compact.py).
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

from ..._version import __version__
from ...errors import StoreAccessError, StoreError, UsageError
from ..base import UNWRITABLE, Claims, Journal, Leftover, NewsReader, Store
from ..localfiles import write_atomic
from .files import listing
from .packed import Packs
from .records import Records
from . import sharing
from .results import Results
from .sharing import Modes, modes_of
from .trust import Trust
from .workers import WorkerFiles


FORMAT = 1
MARKER = "taskflow-store.json"
_OWN_ENTRIES = {MARKER, "results", "packs", "failed", "locks", "tmp", "clock", "done", "jobs", "code", "suspect",
                "damaged", "complete", "STOP", "doctor", "doctor.json", "attempts", "workers"}


class FolderStore(Results, Records, WorkerFiles, Store):
    """A taskflow store folder. Creating the object touches nothing on disk."""

    def __init__(self, path: str, fsync: bool = False):
        self.path = os.path.abspath(path)
        self.fsync = fsync
        self.results_dir = os.path.join(self.path, "results")
        self.packs_dir = os.path.join(self.path, "packs")
        self._packs: Packs | None = None
        self.failed_dir = os.path.join(self.path, "failed")
        self.locks_dir = os.path.join(self.path, "locks")
        self.tmp_dir = os.path.join(self.path, "tmp")
        self.clock_dir = os.path.join(self.path, "clock")
        self.done_dir = os.path.join(self.path, "done")
        self.jobs_dir = os.path.join(self.path, "jobs")
        self.stop_file = os.path.join(self.path, "STOP")
        self.marker_file = os.path.join(self.path, MARKER)
        self.code_dir = os.path.join(self.path, "code")
        self.suspect_dir = os.path.join(self.path, "suspect")
        self.damaged_dir = os.path.join(self.path, "damaged")
        self.complete_dir = os.path.join(self.path, "complete")
        self.doctor_dir = os.path.join(self.path, "doctor")
        self.attempts_dir = os.path.join(self.path, "attempts")
        self.workers_dir = os.path.join(self.path, "workers")
        self.taskfile: str | None = None
        self._ready = False
        self._format_ok = False
        self._noted_code: set[tuple] = set()
        self._shards_made: set[str] = set()  # shards this process made or saw made after a failed write
        self.trusted = os.environ.get("TASKFLOW_TRUST") == "1"
        self._trust: Trust | None = None
        # The group a store this process makes is shared with (--group); else `group` of the
        # taskfile's [tool.taskflow.store], read when the store is first written.
        self.group: str | None = os.environ.get("TASKFLOW_GROUP") or None
        self._modes: Modes | None = None

    @classmethod
    def from_value(cls, value: str, *, fsync: bool = False) -> FolderStore:
        if not value:
            raise UsageError("--store: an empty value names no store")
        return cls(value, fsync=fsync)

    def __repr__(self) -> str:
        return f"FolderStore({self.path!r})"

    @property
    def url(self) -> str:
        return self.path

    def location(self, kind: str, task_hash: str = "") -> str:
        places: dict[str, Callable[[], str]] = {
            "store": lambda: self.path, "result": lambda: self._result_location(task_hash),
            "failure": lambda: self.failure_path(task_hash),
            "suspect": lambda: os.path.join(self.suspect_dir, task_hash), "damaged": lambda: self.damaged_dir,
            "stop": lambda: self.stop_file, "jobs": lambda: self.jobs_dir}
        return places[kind]()

    def _result_location(self, task_hash: str) -> str:
        packs = self._packs
        place = None if packs is None else packs.index.lookup(task_hash)
        return self.result_path(task_hash) if packs is None or place is None else packs.name(place)

    # -- layout ---------------------------------------------------------

    def exists(self) -> bool:
        return os.path.exists(self.marker_file)

    def check_format(self) -> None:
        """Refuse a folder that is not a taskflow store of a format we read.

        Once the marker was read and found right, later calls cost nothing:
        every path that loads results calls this.
        """
        if self._format_ok:
            return
        marker = self.marker_file
        if os.path.isfile(self.path):
            raise StoreError(f"{self.path} is a file, not a store folder", path=self.path)
        try:
            with open(marker) as f:
                fmt = json.load(f).get("format")
        except FileNotFoundError:
            # A store being created by another worker right now holds only our own folders.
            if os.path.isdir(self.path) and not set(os.listdir(self.path)) <= _OWN_ENTRIES:
                raise StoreError(f"{self.path} exists and is not a taskflow store (no {MARKER})",
                                 path=self.path) from None
            return
        except PermissionError:
            raise sharing.no_access(self.path) from None
        except (ValueError, OSError) as e:
            raise StoreError(f"{marker}: unreadable store marker ({e})", path=marker) from None
        if fmt != FORMAT:
            raise StoreError(f"{self.path} has store format {fmt!r}; this taskflow {__version__} "
                             f"reads format {FORMAT}", path=self.path)
        self._format_ok = True

    @property
    def modes(self) -> Modes:
        """The modes of what this process makes in the store: a private or a group store's (sharing.py)."""
        if self._modes is None:
            self._modes = modes_of(self.path)
        return self._modes

    def ensure(self) -> None:
        """Create the store's folders (idempotent, safe when workers race), shared with `group` if
        set and the store is new. StoreAccessError (exit 4) naming the folder, its owner and group
        when this process cannot write in the store."""
        if self._ready:
            return
        self.check_format()
        try:
            self._join_group()
            sharing.check_writable([self.path, self.tmp_dir, self.results_dir, self.locks_dir, self.failed_dir])
            # The marker first (through tmp/), so that a folder other workers see
            # half-created is already recognisably a store.
            modes = self.modes
            modes.make_folders(self.tmp_dir)
            marker = self.marker_file
            if not os.path.exists(marker):
                self.write_atomic(marker, json.dumps({"format": FORMAT, "created_by": __version__}).encode())
            for d in (self.results_dir, self.failed_dir, self.locks_dir, self.clock_dir):
                modes.make_folders(d)
        except OSError as e:
            kind = StoreAccessError if e.errno in UNWRITABLE else StoreError
            raise kind(f"cannot create store {self.path}: {e.strerror}", path=self.path) from None
        self._ready = True

    def share_with_group(self, group: str) -> dict[str, int]:
        counts = sharing.share_store(self.path, group, self.exists(), self.lock_names)
        self._modes = self._trust = None
        return counts

    def _join_group(self) -> None:
        if sharing.join_group(self.path, self.group, self.taskfile):
            # Judged again, as the group store it now is (a store that was not there has no packs).
            self._modes, self._trust, self._packs = None, None, None

    # Asked for several times per task: plain concatenation, not os.path.join.

    def result_path(self, task_hash: str) -> str:
        return f"{self.results_dir}{os.sep}{task_hash[:2]}{os.sep}{task_hash}"

    def failure_path(self, task_hash: str) -> str:
        return f"{self.failed_dir}{os.sep}{task_hash}.json"

    def lock_path(self, task_hash: str) -> str:
        return f"{self.locks_dir}{os.sep}{task_hash}"

    def lease_advice(self, lease: float) -> str | None:
        """Too short when doctor.json, or else the time stamps' granularity, says so (needs.py):
        one read and one stat per call, none per task."""
        from .needs import lease_warning  # only `execute` asks, once

        return lease_warning(self, lease)

    def write_atomic(self, final: str, data: bytes) -> None:
        write_atomic(final, data, self.tmp_dir, self.fsync, self.modes)

    def move_aside(self, task_hash: str) -> str | None:
        from .damage import move_aside

        if self.packs.find(task_hash, fresh=True) is not None:
            moved = self.packs.move_aside(task_hash, self.damaged_dir, self.seal(task_hash))
            self.unmark_suspect(task_hash)
            return moved
        return move_aside(self, task_hash)

    def compact(self) -> dict[str, int]:
        from .compact import compact

        return compact(self)

    # -- claims, journals, leftovers ---------------------------------------

    def claims(self, lease: float | None = None, worker: str | None = None, reader: bool = False,
               clock: Callable[[], float] = time.time) -> Claims:
        from ..lease import DEFAULT_LEASE
        from .batchclaims import BatchClaims

        return BatchClaims(self, DEFAULT_LEASE if lease is None else lease, worker, clock, reader)

    def lock_names(self) -> list[str]:
        """Every name in locks/: claims, and what takeovers and releases leave for an instant."""
        return listing(self.locks_dir)

    def journal(self) -> Journal:
        from .journal import FolderJournal

        return FolderJournal(self)

    def news(self) -> NewsReader:
        from .journal import JournalReader

        return JournalReader(self)

    def journaled(self) -> set[str]:
        from .journal import journaled

        return journaled(self)

    def leftovers(self, kind: str) -> list[Leftover]:
        from . import leftovers

        return leftovers.find(self, kind)

    def remove_leftover(self, leftover: Leftover) -> bool:
        from . import leftovers

        return leftovers.remove(self, leftover)
