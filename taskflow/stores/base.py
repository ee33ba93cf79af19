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

Store objects pickle (they are opened again from `url`), and so do `Claim`
objects: a claim may be taken in one process and renewed, checked and
released in another, on another host, through a `Claims` of the same store.
"""
from __future__ import annotations

import errno
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .. import encoding
from ..errors import CorruptResultError

# What a write into a store on a filesystem answers when it cannot be written at all, or no more.
UNWRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT}

# Kinds of leftovers `Store.leftovers` lists, in the order cleanup reports them.
LEFTOVER_KINDS = ("claim", "tmp", "clock", "journal", "doctor")


@dataclass
class Claim:
    """A claim this process (or another, which pickled it) holds on one task.

    Made only by `Claims.claim`; everything but `lost`, `why` and `renewals`
    is the backend's to interpret. A claim names one task; a claim covering
    a batch of tasks would be a subclass naming several, and every method
    taking a `Claim` would act on all of them at once.
    """

    task_hash: str
    token: str            # random, unique among every claim ever made on this store
    made: float = 0.0     # `elapsed_clock()` on the claiming host just before the claim was made
    boot: str = ""        # boot id of the host that made it: `made` means nothing elsewhere
    lost: bool = False    # taken over by another worker, or released: never ours again
    renewals: int = 0     # how often it was renewed
    why: str = ""         # why it was lost, for messages


@dataclass
class ClaimInfo:
    """A claim as judged by one reader at one moment."""

    task_hash: str
    owner: dict           # what the claim records of its owner: host, boot, pid, worker, lease, started...
    age: float            # seconds since its last renewal, on the claims' clock (`Claims.now`)
    stale: bool           # its lease ran out, or its owner is known to be gone: it may be taken over
    reason: str           # why it is stale ("live" otherwise), for messages
    raw: bytes = field(default=b"", repr=False)  # the backend's identity of what was judged


@dataclass
class Leftover:
    """Something a dead writer left in the store, judged removable by `Store.leftovers`."""

    kind: str             # one of LEFTOVER_KINDS
    label: str            # what cleanup prints for it
    key: str = field(default="", repr=False)  # the backend's name for it


class Claims(ABC):
    """Claims of one worker (or one reader) on one store, obtained from `Store.claims`.

    Exactly once: of any number of processes that call `claim` on the same
    hash while no live claim exists, exactly one gets a `Claim`; a live claim
    (renewed within its lease, owner not known to be gone) is never taken.
    Only the owner of a claim renews or releases it: `renew`, `holds` and
    `release` given a claim that was taken over leave the new owner's claim
    alone and answer False.

    Time: a claim's age is judged on one clock every host shares for this
    store (the folder store: its filesystem's clock; a server-backed store:
    the server's), never on the host's wall clock, so hosts whose clocks
    disagree still agree on staleness. `now()` reads that clock.

    A `Claims` pickles as its store, lease, worker and reader flag, and is
    made again on the other side; its `Claim` objects stay valid there.
    """

    lease: float          # seconds a claim stays live without renewal
    worker: str           # recorded in claims as who holds them (see identity.worker_id)
    reader: bool          # judges claims only, and may work on a store it cannot write
    read_only: bool       # a reader that found the store unwritable: `now` is this host's clock

    @abstractmethod
    def claim(self, task_hash: str, take_over: bool = True) -> Claim | None:
        """Claim the task; None if another holds it.

        Without `take_over` a claim held by anyone, stale or not, answers
        None at the cost of one round trip. With it, a stale claim is taken
        over: of several racers exactly one succeeds, and a claim renewed
        meanwhile is left to its owner.
        """

    @abstractmethod
    def holds(self, claim: Claim) -> bool:
        """Whether the claim is still ours, checked before saving a result or a failure.

        False once `lost`, or when another worker took it over (then `why`
        says so). May answer True without a round trip while the claim is
        younger than half a lease (nobody can have judged it stale), which
        is what keeps short tasks cheap. A claim whose record vanished
        without a takeover is made again (unless the task's result is in
        place), and work goes on.
        """

    @abstractmethod
    def still_ours(self, claim: Claim) -> bool:
        """Whether the store holds this very claim now: always a round trip, never inferred."""

    @abstractmethod
    def renew(self, claim: Claim) -> bool:
        """Renew the lease of the claim if it is still ours; False (and `lost` set) otherwise.

        Atomic against a takeover: a renewal racing with one either lands on
        our claim before it is moved, or fails; it never writes into the
        new owner's claim.
        """

    @abstractmethod
    def release(self, claim: Claim) -> bool:
        """Give the claim back so another worker may take the task at once; True if it was ours.

        Never removes another worker's claim, even when this process froze
        for longer than a lease between its check and its removal. After
        release the claim is `lost`.
        """

    @abstractmethod
    def inspect(self, task_hash: str) -> ClaimInfo | None:
        """Read and judge the claim on the task; None if there is none."""

    @abstractmethod
    def claimed(self) -> set[str]:
        """Hashes of every task with a claim (live or stale), judged by nothing: one listing."""

    @abstractmethod
    def owner(self, task_hash: str) -> dict | None:
        """What the claim on the task records of its owner, without judging it; {} when it cannot
        be read (being written, damaged), None when there is no claim."""

    @abstractmethod
    def remove_stale(self, info: ClaimInfo) -> bool:
        """Remove the claim judged stale in `info` if it is still exactly what was judged
        (not renewed, released or taken over since); True if this call removed it."""

    @abstractmethod
    def now(self, seen: float = 0.0) -> float:
        """The time on the clock claims are judged by (seconds since the epoch).

        `seen` is a time stamp just read from the store: a reader on a store
        it cannot write never answers earlier than that. Raises
        StoreAccessError for a worker whose store cannot be written.
        """

    @abstractmethod
    def close(self) -> None:
        """Let go of what reading the clock needed (a clock file, a connection). Idempotent."""


class Journal(ABC):
    """This worker's journal of finished tasks, obtained from `Store.journal`.

    A hint for other workers, never the truth: a hash is added only after
    its result is saved; the result stays the truth. Entries may be buffered
    and written in batches; `flush` writes them; `close` removes the journal
    (readers that still need it look at the results instead).
    """

    ident: str | None     # this journal's name once written, for `NewsReader.news(skip=...)`

    @abstractmethod
    def add(self, task_hash: str) -> None:
        """Note that the task's result is saved (written now or with a later batch)."""

    @abstractmethod
    def flush(self) -> None:
        """Write what was added and not yet written."""

    @abstractmethod
    def close(self) -> None:
        """Stop journaling and remove the journal."""


class NewsReader(ABC):
    """What other workers journaled since this reader started, obtained from `Store.news`."""

    @abstractmethod
    def start(self) -> None:
        """Skip everything journaled so far (call before listing the finished results)."""

    @abstractmethod
    def journals_seen(self, skip: str | None = None) -> bool:
        """Whether journals other than `skip` (one's own `Journal.ident`) were there at `start`,
        leaving out those of workers on this host that are gone."""

    @abstractmethod
    def news(self, skip: str | None = None) -> set[str]:
        """Hashes journaled since the last call (or `start`), except in the journal `skip`."""


class Store(ABC):
    """A taskflow store. Making the object touches nothing; `ensure` creates the store.

    `taskflow.stores.open_store` makes one from a `--store` value.
    """

    fsync: bool                 # results and records durable before a save returns
    taskfile: str | None = None  # the taskfile last loaded with this store, for messages

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

    def __reduce__(self) -> tuple:
        from . import reopen

        return reopen, (self.url, self.fsync, self.taskfile)

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

    # -- results ----------------------------------------------------------

    @abstractmethod
    def save_payload(self, task_hash: str, payload: encoding.Payload) -> int:
        """Store an encoded result atomically; returns its size in bytes.

        Readers see the whole result or none, also when the writer is killed
        mid-write; a save over an existing result replaces it whole. Records
        the code marker of `payload.meta` (see `code_tags`). StoreAccessError
        when the store cannot be written.
        """

    def save_result(self, task_hash: str, value: Any, meta: dict) -> int:
        """`save_payload` of `value` with `meta`; what pickle raises for a value it cannot encode."""
        return self.save_payload(task_hash, encoding.Payload(value, meta))

    @abstractmethod
    def load_value(self, task_hash: str, mmap: bool = False, fresh: bool = False) -> Any:
        """The stored value, checked against its length and checksum.

        FileNotFoundError when absent; CorruptResultError when damaged.
        `fresh` bypasses this client's caches. `mmap` maps arrays instead of
        reading them (checked by header and length only); a backend that
        cannot raises UsageError saying so.
        """

    @abstractmethod
    def result_meta(self, task_hash: str) -> dict:
        """The metadata saved with the result (reads no data). FileNotFoundError, CorruptResultError."""

    def metas(self, tasks: Iterable[Any], finished: set[str] | None = None,
              on_damaged: Callable[[Any, CorruptResultError], None] | None = None) -> Iterator[tuple[Any, dict]]:
        """(task, metadata) of each finished task among `tasks` (objects with `.hash`); absent
        ones are left out, damaged ones too (and passed to `on_damaged`)."""
        finished = self.finished_hashes() if finished is None else finished
        for task in tasks:
            if task.hash in finished:
                try:
                    yield task, self.result_meta(task.hash)
                except FileNotFoundError:
                    continue
                except CorruptResultError as e:
                    if on_damaged is not None:
                        on_damaged(task, e)

    @abstractmethod
    def has_result(self, task_hash: str) -> bool:
        """Whether a result is stored for the task (one round trip; not checked)."""

    @abstractmethod
    def present(self, hashes: Iterable[str]) -> set[str]:
        """Those of `hashes` whose result is there, each looked up by name so that a client's
        stale listing cache does not hide it (see confirm.py)."""

    @abstractmethod
    def finished_hashes(self) -> set[str]:
        """Hashes of every stored result, damaged or not; the cost grows with the store, not with
        a round trip per result. May lag behind other clients' saves (see `present`)."""

    @abstractmethod
    def remove_result(self, task_hash: str) -> bool:
        """Remove the result; False if it was not there. Safe while workers run."""

    @abstractmethod
    def verify_result(self, task_hash: str, fresh: bool = False) -> None:
        """Read the whole result and check it: CorruptResultError when damaged, FileNotFoundError when
        absent. `fresh` bypasses this client's caches."""

    def damaged(self, hashes: Iterable[str]) -> Iterator[tuple[str, str]]:
        """(hash, why) of each stored result among `hashes` that fails its full check; absent ones
        are passed over."""
        for task_hash in hashes:
            try:
                self.verify_result(task_hash)
            except FileNotFoundError:
                continue
            except CorruptResultError as e:
                yield task_hash, str(e)

    @abstractmethod
    def move_aside(self, task_hash: str) -> str | None:
        """Move a damaged result where a human can look at it, so that it counts as missing.

        Checked again (fresh) first: a result that reads intact stays, and
        None is returned; so is None when there was nothing to move. Racing
        movers move it once; a result saved again meanwhile is kept. Drops
        the suspect mark. Returns where it went, for messages. OSError or
        StoreAccessError when the store cannot be written.
        """

    @abstractmethod
    def moved_aside(self) -> set[str]:
        """Hashes of results moved aside as damaged (one listing)."""

    # -- suspect marks ----------------------------------------------------

    @abstractmethod
    def mark_suspect(self, task_hash: str, record: dict) -> None:
        """Mark the result as found damaged (`record`: what was wrong, who, when), so it counts as
        missing until execute checks it. OSError naming what could not be written."""

    @abstractmethod
    def unmark_suspect(self, task_hash: str) -> bool:
        """Drop the mark; False if there was none."""

    @abstractmethod
    def suspect_hashes(self) -> set[str]:
        """Hashes of results marked suspect (one listing)."""

    @abstractmethod
    def is_suspect(self, task_hash: str) -> bool:
        """Whether the result is marked suspect (one round trip)."""

    # -- failure records --------------------------------------------------

    @abstractmethod
    def save_failure(self, task_hash: str, record: dict) -> None:
        """Store the failure record (JSON-able) atomically, replacing any. StoreAccessError."""

    @abstractmethod
    def load_failure(self, task_hash: str) -> dict | None:
        """The failure record; None when there is none; a placeholder record when unreadable."""

    @abstractmethod
    def failure_time(self, task_hash: str) -> float | None:
        """When the failure record was written, on the claims' clock (`Claims.now`); None if none."""

    @abstractmethod
    def remove_failure(self, task_hash: str) -> bool:
        """Remove the failure record; False if there was none."""

    @abstractmethod
    def failed_hashes(self) -> set[str]:
        """Hashes of every task with a failure record (one listing)."""

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

    # -- completion records -----------------------------------------------

    @abstractmethod
    def record_complete(self, digest: str, record: dict) -> None:
        """Note that every task of the graph `digest` was seen finished (a hint: a failing write
        is only logged). Written once: an existing record is kept."""

    @abstractmethod
    def complete_recorded(self, digest: str) -> bool:
        """Whether the graph is recorded complete, looked up by name (revalidating caches)."""

    @abstractmethod
    def complete_digests(self) -> set[str]:
        """Digests of every completion record (one listing)."""

    @abstractmethod
    def forget_complete(self, digest: str) -> bool:
        """Remove one completion record; False if it was not there."""

    # -- code markers -----------------------------------------------------

    @staticmethod
    def code_tag(code: str | None, version: str | None) -> str:
        return f"{code}-v{version}" if version is not None else str(code)

    @abstractmethod
    def code_tags(self, name: str) -> set[str]:
        """`code_tag`s of every code version that saved results of the task name."""

    @abstractmethod
    def forget_code(self, name: str, tag: str) -> None:
        """Drop a code marker (no error when absent, or when the store cannot be written)."""

    # -- job records, STOP, leftovers -------------------------------------

    @abstractmethod
    def jobs_folder(self) -> str:
        """A local folder for the job scripts, logs and records of array jobs run on this store."""

    @abstractmethod
    def stop_requested(self) -> bool:
        """Whether STOP is requested: workers take no new task (one round trip)."""

    @abstractmethod
    def request_stop(self, on: bool = True) -> None:
        """Request STOP, or with `on=False` withdraw it (no error when there was none)."""

    @abstractmethod
    def leftovers(self, kind: str) -> list[Leftover]:
        """What writers that died left behind, of one of LEFTOVER_KINDS, that no running
        process needs any more: never what a live process may still use."""

    @abstractmethod
    def remove_leftover(self, leftover: Leftover) -> bool:
        """Remove what `leftovers` listed; False if it was gone already."""
