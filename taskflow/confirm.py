"""Results a listing may lack: the signs that they exist, and confirming them.

On a shared filesystem each client caches directory listings for a while
(NFS for up to `acdirmax`, sshfs for its cache timeout), so right after a run
a listing through another client can lack results that are in place. Opening
a file by name revalidates what the client knows of it, so what a sign says
exists is confirmed by opening it, one open per such result. The signs:

- a listed result whose input is not listed: an input is in place before
  anything is computed from it;
- a journal of finished work (see journal.py) naming it;
- a record `complete/<digest>` that a worker wrote after it saw, by one
  listing and an open per result that listing lacked, every task of this
  graph finished (the digest names the graph: the hashes of its tasks).

A graph that has not run yet has no such sign, so looking costs no open per
missing result: one open of the record (absent) and a listing of `done/`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Sequence

from .journal import journaled
from .stale import reread
from .store import HOST, Store, process, remove_file
from .task import Task

log = logging.getLogger(__name__)


def digest(hashes: Iterable[str]) -> str:
    """A name for one graph: its task hashes in declaration order."""
    return hashlib.blake2b("".join(hashes).encode("ascii"), digest_size=16).hexdigest()


def record_path(store: Store, hashes: Iterable[str]) -> str:
    return os.path.join(store.complete_dir, digest(hashes))


def record_complete(store: Store, hashes: Sequence[str], worker: str) -> None:
    """Note that every task of this graph was seen finished; a hint, so a failing write is only logged."""
    path = record_path(store, hashes)
    try:
        if os.path.exists(path):
            return
        os.makedirs(store.complete_dir, exist_ok=True)
        store.write_atomic(path, json.dumps({"tasks": len(hashes), "host": HOST, "pid": process.pid,
                                             "worker": worker, "time": time.time()}).encode())
    except OSError as e:
        log.debug("cannot write %s: %s", path, e)


def complete_recorded(store: Store, hashes: Iterable[str]) -> bool:
    """Whether a worker recorded this graph as finished (opened by name, which revalidates this
    client's cache of it)."""
    try:
        _open(record_path(store, hashes))
        return True
    except OSError:
        return False


def forget_complete(store: Store) -> None:
    """Drop every completion record: results were removed on purpose."""
    try:
        names = os.listdir(store.complete_dir)
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in names:
        remove_file(os.path.join(store.complete_dir, name))


def hinted(store: Store, tasks: Sequence[Task], finished: set[str], confirm: bool = True) -> set[str]:
    """Hashes of `tasks` that a sign says exist but the listing `finished` lacks.

    `confirm` (check, wait): also read the journals, and open the record by name; otherwise
    (status) look the record up in one listing of complete/, and look no further when neither
    the listing nor complete/ holds anything.
    """
    names: list[str] = []
    if not confirm:
        try:
            names = os.listdir(store.complete_dir)
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
        signs |= journaled(store) & lacking
    if len(signs) < len(lacking):
        if confirm:
            recorded = complete_recorded(store, (t.hash for t in tasks))
        else:
            recorded = bool(names) and digest(t.hash for t in tasks) in names
        if recorded:
            signs = lacking
    return signs


def present(store: Store, hashes: Iterable[str]) -> set[str]:
    """Those of `hashes` whose result opens: an open revalidates this client's cache of the name."""
    found = set()
    for task_hash in hashes:
        try:
            _open(store.result_path(task_hash))
        except OSError:
            continue
        found.add(task_hash)
    return found


@reread  # a result replaced through another client may answer ESTALE: it is there all the same
def _open(path: str) -> None:
    os.close(os.open(path, os.O_RDONLY))
