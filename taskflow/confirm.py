"""Results a listing may lack: the signs that they exist, and confirming them.

On a shared filesystem each client caches directory listings for a while
(NFS for up to `acdirmax`, sshfs for its cache timeout), so right after a run
a listing through another client can lack results that are in place. Opening
a file by name revalidates what the client knows of it, so what a sign says
exists is confirmed by opening it, one open per such result. The signs:

- a listed result whose input is not listed: an input is in place before
  anything is computed from it;
- a journal of finished work (`Store.journaled`) naming it;
- a record `complete/<digest>` that a worker wrote after it saw, by one
  listing and an open per result that listing lacked, every task of this
  graph finished (the digest names the graph: the hashes of its tasks).

A graph that has not run yet has no such sign, so looking costs no open per
missing result: one open of the record (absent) and a listing of `done/`.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from .hashing import blake2b
from .stores.base import Store
from .stores.identity import HOST, process
from .task import Task


def digest(hashes: Iterable[str]) -> str:
    """A name for one graph: its task hashes in declaration order."""
    return blake2b("".join(hashes).encode("ascii"), digest_size=16).hexdigest()


def record_complete(store: Store, hashes: Sequence[str], worker: str) -> None:
    """Note that every task of this graph was seen finished; a hint, so a failing write is only logged."""
    store.record_complete(digest(hashes), {"tasks": len(hashes), "host": HOST, "pid": process.pid,
                                           "worker": worker, "time": time.time()})


def complete_recorded(store: Store, hashes: Iterable[str]) -> bool:
    """Whether a worker recorded this graph as finished (looked up by name, which revalidates this
    client's cache of it)."""
    return store.complete_recorded(digest(hashes))


def forget_complete(store: Store) -> None:
    """Drop every completion record: results were removed on purpose."""
    for name in store.complete_digests():
        store.forget_complete(name)


def hinted(store: Store, tasks: Sequence[Task], finished: set[str], confirm: bool = True) -> set[str]:
    """Hashes of `tasks` that a sign says exist but the listing `finished` lacks.

    `confirm` (check, wait): also read the journals, and open the record by name; otherwise
    (status) look the record up in one listing of complete/, and look no further when neither
    the listing nor complete/ holds anything.
    """
    names: set[str] = set()
    if not confirm:
        try:
            names = store.complete_digests()
        except OSError:
            pass
        if not finished and not names:
            return set()  # nothing of this graph in place or recorded: no sign to look for
    lacking = {t.hash for t in tasks} - finished
    if not lacking:
        return set()
    signs: set[str] = set()
    if len(lacking) < len(tasks):
        for t in tasks:
            if t.deps and t.hash in finished:
                signs.update(d.hash for d in t.deps if d.hash in lacking)
    if confirm:
        signs |= store.journaled() & lacking
    if len(signs) < len(lacking):
        if confirm:
            recorded = complete_recorded(store, (t.hash for t in tasks))
        else:
            recorded = bool(names) and digest(t.hash for t in tasks) in names
        if recorded:
            signs = lacking
    return signs


def present(store: Store, hashes: Iterable[str]) -> set[str]:
    """Those of `hashes` whose result is there, each looked up by name (which revalidates this
    client's cache of it)."""
    return store.present(hashes)
