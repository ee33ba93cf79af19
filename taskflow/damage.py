"""Damaged results: marked suspect when found, checked again, moved aside.

A result that fails its check when read is either damaged on disk or only
looks so through this client's cache (a client of NFS or FUSE can keep pages
of a file that another client has replaced). So whoever finds one:

- reads it again from a fresh open with the cache dropped; intact, it is used;
- otherwise marks it suspect, `suspect/<hash>` (a small JSON record: what was
  wrong, who found it, when). `status`, `check` and `wait` count a suspect
  result as missing, with one listing of `suspect/`, never a look per result;
- only `execute` and `check --verify` move a damaged result aside, to
  `damaged/<hash>.<host>.<pid>.<random>`, where a human can look at it; it is
  then missing, and the next `execute` computes it again.

The next `execute` checks every suspect result of its graph again from a
fresh open: intact (the reader saw stale pages), the mark is dropped;
damaged, the result is moved aside and computed again. A command that cannot
write says so in one line and goes on. The result file stays the truth: a
mark at worst costs one more check.
"""
from __future__ import annotations

import json
import logging
import os
import time

from . import encoding
from .errors import CorruptResultError
from .store import HOST, Store, process, remove_file

log = logging.getLogger(__name__)


def execute_hint(store: Store) -> str:
    return f"run `taskflow execute {store.taskfile or 'FILE'}`"


def recheck(store: Store, task_hash: str, path: str | None = None) -> str | None:
    """Why the result is damaged after a fresh read, or None if it reads intact.

    FileNotFoundError when it is absent.
    """
    try:
        encoding.verify(path or store.result_path(task_hash), fresh=True)
    except CorruptResultError as e:
        return e.reason
    return None


def mark(store: Store, task_hash: str, name: str, reason: str) -> bool:
    """Record that the result of `task_hash` was found damaged; False (and one warning) if the store
    cannot be written."""
    record = {"name": name, "hash": task_hash, "reason": reason, "host": HOST, "pid": process.pid,
              "time": time.time()}
    path = os.path.join(store.suspect_dir, task_hash)
    try:
        # Made on first use, so that writing the mark does not report it as a vanished folder.
        os.makedirs(store.suspect_dir, exist_ok=True)
        store.write_atomic(path, json.dumps(record).encode())
    except OSError as e:
        log.warning("cannot mark the damaged result of %s (%s) for recomputation (%s: %s); it counts as "
                    "finished until `taskflow execute %s --verify` runs where the store can be written",
                    name, task_hash[:12], e.filename or path, e.strerror or e, store.taskfile or "FILE")
        return False
    return True


def unmark(store: Store, task_hash: str) -> None:
    remove_file(os.path.join(store.suspect_dir, task_hash))


def found(store: Store, task_hash: str, name: str, error: CorruptResultError) -> CorruptResultError:
    """A reader that does not repair (value(), report, show) found a damaged result: mark it.

    Returns the error to raise or show, saying what happens next.
    """
    if mark(store, task_hash, name, error.reason):
        advice = f"marked for recomputation: {execute_hint(store)}"
    else:
        advice = f"not marked (the store cannot be written): run `taskflow execute {store.taskfile or 'FILE'} --verify`"
    return CorruptResultError(error.path, error.reason, advice)


def move_aside(store: Store, task_hash: str) -> str | None:
    """Move a damaged result to damaged/; the path it went to, or None if there was nothing to move.

    Checked again from a fresh open first, so a result that only looked
    damaged through this client's cache stays. Racing movers each move what
    is at the result's path; one that moved a result computed again meanwhile
    (intact) puts it back. The suspect mark, if any, is dropped once the
    result is gone. OSError when the store cannot be written.
    """
    final = store.result_path(task_hash)
    try:
        if recheck(store, task_hash) is None:
            unmark(store, task_hash)
            return None
    except FileNotFoundError:
        unmark(store, task_hash)
        return None
    moved = os.path.join(store.damaged_dir, f"{task_hash}.{HOST}.{process.pid}.{process.unique()}")
    try:
        try:
            os.rename(final, moved)
        except FileNotFoundError:
            if os.path.isdir(store.damaged_dir):
                unmark(store, task_hash)
                return None  # another worker moved it first
            os.makedirs(store.damaged_dir, exist_ok=True)
            os.rename(final, moved)
    except FileNotFoundError:
        unmark(store, task_hash)
        return None
    try:
        intact = recheck(store, task_hash, moved) is None
    except FileNotFoundError:
        intact = False
    if intact:
        # Computed again by someone else between the check and the rename: give it back.
        try:
            os.link(moved, final)
            os.unlink(moved)
        except FileExistsError:
            os.unlink(moved)  # a newer result is in place already
        except OSError:
            # No hard links here (some FUSE filesystems): a rename may replace a newer result,
            # which is as intact as this one and of the same task.
            os.rename(moved, final)
        unmark(store, task_hash)
        return None
    unmark(store, task_hash)
    return moved
