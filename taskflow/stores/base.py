"""The store interface: what every kind of store promises the rest of taskflow.

A store keeps four things for a graph: results (an `encoding.Payload` per
task, keyed by the task's hash), failure records, claims (which worker runs
which task, with leases), and the small records workers leave each other
(journals of finished work, completion records, code markers, suspect marks,
STOP). Every worker, on every host, talks to the others through it alone.

These docstrings are the contract. An implementation keeps every promise
under concurrency: any number of processes on any number of hosts call these
methods at once, and any of them may be killed (kill -9), frozen past its
lease, or run with a clock that disagrees with the others'. What a method
may raise is said with it; in general:

- `FileNotFoundError` means "not there" for a result (every caller handles
  it), whatever the backend: it is the one "absent" answer.
- `StoreAccessError` (exit 4) means the store cannot be written or read at
  all (full, read-only, permissions, connection lost), with one line naming
  the store or the part of it.
- `StoreError` (exit 2) means the value given is not a store of a format we
  read.
- `CorruptResultError` means a result failed its integrity check.
- An `OSError` that escapes a folder store's method is a filesystem error
  the caller reports (with its filename) as a store error.

Nothing here promises one file per result, or exposes where a thing lies:
`location()` is text for people, never something to open. Results may one
day be packed many to a file, and one claim may cover a batch of tiny tasks;
callers only ever ask by task hash.

The interface is `Store` here, with its parts `results.ResultStore`,
`records.RecordStore`, `claims.Claims`, `journals.Journal`/`NewsReader` and
`workers.WorkerRecords`.

Store objects pickle (they are opened again from `url`), and so do `Claim`
objects: a claim may be taken in one process and renewed, checked and
released in another, on another host, through a `Claims` of the same store.
"""
from __future__ import annotations

import errno
import time
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .claims import Claim, ClaimInfo, Claims
from .journals import Journal, NewsReader
from ..errors import UsageError
from .modes import PRIVATE, Modes
from .records import RecordStore
from .results import ResultStore
from .workers import WorkerRecord, WorkerRecords

if TYPE_CHECKING:
    from ..signing import Key, Seal

__all__ = ["UNWRITABLE", "LEFTOVER_KINDS", "Claim", "ClaimInfo", "Claims", "Journal", "Leftover", "NewsReader",
           "RecordStore", "ResultStore", "Store", "WorkerRecord",
           "WorkerRecords"]

# What a write into a store on a filesystem answers when it cannot be written at all, or no more.
UNWRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT}

# Kinds of leftovers `Store.leftovers` lists, in the order cleanup reports them.
LEFTOVER_KINDS = ("claim", "tmp", "clock", "journal", "doctor")


@dataclass
class Leftover:
    """Something a dead writer left in the store, judged removable by `Store.leftovers`."""

    kind: str             # one of LEFTOVER_KINDS
    label: str            # what cleanup prints for it
    key: str = field(default="", repr=False)  # the backend's name for it


class Store(ResultStore, RecordStore, WorkerRecords):
    """A taskflow store. Making the object touches nothing; `ensure` creates the store.

    `taskflow.stores.open_store` makes one from a `--store` value.
    """

    fsync: bool                 # results and records durable before a save returns
    taskfile: str | None = None  # the taskfile last loaded with this store, for messages
    # Load pickled results without asking who could have written them (--trust-store,
    # TASKFLOW_TRUST=1, init(trust=True)); a folder store asks (stores/folder/trust.py).
    trusted: bool = False
    _key: Key | None | bool = False  # not looked up yet; never pickled: other processes read its file
    _key_taskfile: str | None = None  # the taskfile whose settings `_key` was looked up in
    _key_pinned = False  # set by `use_key`: not looked up again

    @property
    def key(self) -> Key | None:
        """The key every result, failure record and claim is signed with and checked against
        (signing.py): TASKFLOW_KEY_FILE or `key_file` of the taskfile's [tool.taskflow.store]; None
        when unsigned. KeyFileError when the key's file is unusable."""
        if self._key is False or self._key is None and self._key_taskfile != self.taskfile and not self._key_pinned:
            from ..config import key_file_setting

            path = key_file_setting(self.taskfile)  # looked up again once a taskfile is loaded
            self._key_taskfile = self.taskfile
            if path is None:
                self._key = None
            else:
                from ..signing import read_key  # only here: hashlib and threads cost every worker's start

                self._key = read_key(path)
        return self._key  # type: ignore[return-value]

    def use_key(self, key: Key | None) -> None:
        """Sign and check with `key` from now on (None: neither), whatever the settings say."""
        self._key, self._key_taskfile = key, self.taskfile
        self._key_pinned = True

    def seal(self, task_hash: str) -> Seal | None:
        """What the task's result must be signed with, or None in a store without a key."""
        key = self.key
        return None if key is None else key.seal(task_hash)

    def share_with_group(self, group: str) -> dict[str, int]:
        """Let the members of `group` work in the store (`taskflow store share`): counts of "folders"
        and "files" set, of entries owned by "others" (left alone) and of "claims" held meanwhile.
        UsageError where the store's access is not a filesystem's."""
        raise UsageError(f"--store {self}: only a folder store is shared through a group; this store's access "
                         "is its server's (a password, ACLs)")

    @property
    def modes(self) -> Modes:
        """The modes of the files and folders taskflow makes in the store's folders on this host
        (its jobs folder; all of a folder store): a private store's unless shared with a group."""
        return PRIVATE

    # -- identity ---------------------------------------------------------

    @classmethod
    @abstractmethod
    def from_value(cls, value: str, *, fsync: bool = False) -> Store:
        """The store `value` names (a URL of this backend's scheme, or for folders a path);
        UsageError naming the value when it is malformed. Touches nothing."""

    @property
    @abstractmethod
    def url(self) -> str:
        """The `--store` value that opens this store again (a plain path for a folder store);
        never holds a password."""

    def __str__(self) -> str:
        """How messages name the store."""
        return self.url

    def worker_environment(self) -> dict[str, str]:
        """What a worker started from `url` in another process (--jobs, `taskflow web`, an array
        job) needs in its environment to open this store: secrets `url` leaves out, and where its
        key is (the key file's path: engines on other hosts read the same file, never its bytes)."""
        key = self.key
        return {} if key is None else {"TASKFLOW_KEY_FILE": key.path}

    def __reduce__(self) -> tuple:
        # Opened again from its url on the other side; fsync and taskfile set as they were.
        return type(self).from_value, (self.url,), {"fsync": self.fsync, "taskfile": self.taskfile,
                                                     "trusted": self.trusted}

    def __setstate__(self, state: dict) -> None:
        self.fsync = state["fsync"]
        self.taskfile = state["taskfile"]
        self.trusted = state.get("trusted", False)

    @abstractmethod
    def location(self, kind: str, task_hash: str = "") -> str:
        """Where a part of the store is, in words for messages (never to be opened).

        `kind`: "store", "result", "failure", "suspect", "damaged", "stop", "jobs".
        """

    # -- format -----------------------------------------------------------

    @abstractmethod
    def exists(self) -> bool:
        """Whether a store was created here (its format marker is there)."""

    @abstractmethod
    def check_format(self) -> None:
        """StoreError when the value names something that is not a taskflow store of a format
        we read; a store not created yet passes. Cheap after the first success."""

    @abstractmethod
    def ensure(self) -> None:
        """Create the store if need be: idempotent, safe when workers race. StoreAccessError when
        it cannot be created; StoreError when it is not a store (see `check_format`)."""

    def lease_advice(self, lease: float) -> str | None:
        """One line saying why claims of `lease` seconds are too short for this store, None when
        they are long enough. A store whose claims its server's clock judges needs none (this
        default); one whose claims are files judged by their time stamps may."""
        return None

    # -- claims -----------------------------------------------------------

    @abstractmethod
    def claims(self, lease: float | None = None, worker: str | None = None, reader: bool = False,
               clock: Callable[[], float] = time.time) -> Claims:
        """Claims of one worker on this store. `lease` defaults to DEFAULT_LEASE (UsageError below
        MIN_LEASE); `worker` to `identity.worker_id()`; `clock` is the wall clock claims record as
        their start time, for people. A `reader` only judges claims and works on a store it
        cannot write."""

    # -- journals of finished work ----------------------------------------

    @abstractmethod
    def journal(self) -> Journal:
        """A new journal for this worker (written on first flush)."""

    @abstractmethod
    def news(self) -> NewsReader:
        """A reader of what other workers journal."""

    @abstractmethod
    def journaled(self) -> set[str]:
        """Every hash named in the journals there now (of running workers, or dead ones)."""

    # -- leftovers -------------------------------------------------------

    @abstractmethod
    def leftovers(self, kind: str) -> list[Leftover]:
        """What writers that died left behind, of one of LEFTOVER_KINDS, that no running
        process needs any more: never what a live process may still use."""

    @abstractmethod
    def remove_leftover(self, leftover: Leftover) -> bool:
        """Remove what `leftovers` listed; False if it was gone already."""
