"""Damaged results: marked suspect when found, checked again, moved aside.

A result that fails its check when read is either damaged on disk or only
looks so through this client's cache (a client of NFS or FUSE can keep pages
of a file that another client has replaced). So whoever finds one:

- reads it again from a fresh open with the cache dropped; intact, it is used;
- otherwise marks it suspect, `suspect/<hash>` (a small JSON record: what was
  wrong, who found it, when). `status`, `check` and `wait` count a suspect
  result as missing, with one listing of `suspect/`, never a look per result;
- only `execute` and `check --verify` move a damaged result aside (the folder
  store: to `damaged/<hash>.<host>.<pid>.<random>`), where a human can look at
  it; it is then missing, and the next `execute` computes it again.

The next `execute` checks every suspect result of its graph again from a
fresh open: intact (the reader saw stale pages), the mark is dropped;
damaged, the result is moved aside and computed again. A command that cannot
write says so in one line and goes on. The result file stays the truth: a
mark at worst costs one more check.
"""
from __future__ import annotations

import logging
import time

from .errors import CorruptResultError
from .stores.base import Store
from .stores.identity import HOST, process

log = logging.getLogger(__name__)


def execute_hint(store: Store) -> str:
    return f"run `taskflow execute {store.taskfile or 'FILE'}`"


def recheck(store: Store, task_hash: str) -> str | None:
    """Why the result is damaged after a fresh read, or None if it reads intact.

    FileNotFoundError when it is absent.
    """
    try:
        store.verify_result(task_hash, fresh=True)
    except CorruptResultError as e:
        return e.reason
    return None


def mark(store: Store, task_hash: str, name: str, reason: str) -> bool:
    """Record that the result of `task_hash` was found damaged; False (and one warning) if the store
    cannot be written."""
    record = {"name": name, "hash": task_hash, "reason": reason, "host": HOST, "pid": process.pid,
              "time": time.time()}
    try:
        store.mark_suspect(task_hash, record)
    except OSError as e:
        log.warning("cannot mark the damaged result of %s (%s) for recomputation (%s: %s); it counts as "
                    "finished until `taskflow execute %s --verify` runs where the store can be written",
                    name, task_hash[:12], e.filename or store.location("suspect", task_hash),
                    e.strerror or e, store.taskfile or "FILE")
        return False
    return True


def unmark(store: Store, task_hash: str) -> None:
    store.unmark_suspect(task_hash)


def found(store: Store, task_hash: str, name: str, error: CorruptResultError) -> CorruptResultError:
    """A reader that does not repair (value(), report, show) found a damaged result: mark it.

    Returns the error to raise or show, saying what happens next.
    """
    if mark(store, task_hash, name, error.reason):
        advice = f"marked for recomputation: {execute_hint(store)}"
    else:
        advice = f"not marked (the store cannot be written): run `taskflow execute {store.taskfile or 'FILE'} --verify`"
    return type(error)(error.path, error.reason, advice)  # an unsigned result stays one


def move_aside(store: Store, task_hash: str) -> str | None:
    """Move a damaged result aside (see `Store.move_aside`); where it went, or None if it reads
    intact from a fresh open or was not there."""
    return store.move_aside(task_hash)
