"""Attempts at a task whose worker died while running it, in STORE/attempts/.

One file per dead claim, `attempts/<hash>.<mark>.json`, where `mark` is the
dead claim's own random token: the takeover that moves a stale claim away
writes it (takeover.py), under the takeover token, so of several racers only
one writes it, and a second write of the same dead claim (a retried takeover)
finds the file there and changes nothing. The count is the number of files
for the task, read with one listing of a folder that holds only the tasks
whose workers died. Nothing here is touched while no worker dies: creating,
renewing and releasing a claim cost what they did.

A worker that was frozen past its lease and comes back finds its claim taken
over; it removes the file of its own claim (`forgive`): it did not die, so its
attempt does not count.
"""
from __future__ import annotations

import json
import logging
import os

from ...stale import gone
from ..modes import PRIVATE, Modes
from .claimfiles import write_new
from .files import listing, read_json, remove_file

log = logging.getLogger(__name__)

SUFFIX = ".json"


def _path(folder: str, task_hash: str, mark: str) -> str:
    return f"{folder}{os.sep}{task_hash}.{mark}{SUFFIX}"


def count(folder: str, task_hash: str, mark: str, record: dict, modes: Modes = PRIVATE) -> int:
    """Record that the worker of the claim `mark` on the task died; how many such attempts
    the store holds for the task now (this one included)."""
    modes.make_folders(folder)  # only on this path: a worker died
    write_new(_path(folder, task_hash, mark), json.dumps(record).encode(), modes)
    return len(_names(folder, task_hash))


def counted(folder: str, task_hash: str) -> int:
    """How many attempts at the task the store counts now (one listing)."""
    return len(_names(folder, task_hash))


def _names(folder: str, task_hash: str) -> list[str]:
    prefix = task_hash + "."
    return [n for n in listing(folder) if n.startswith(prefix) and n.endswith(SUFFIX)]


def forgive(folder: str, task_hash: str, mark: str) -> None:
    """The owner of the claim `mark` came back (or renewed it as it was being taken over): its
    attempt does not count."""
    if remove_file(_path(folder, task_hash, mark)):
        log.info("the worker of claim %s on %s was alive: its attempt does not count", mark, task_hash)


def records(folder: str, task_hash: str) -> list[dict]:
    """What each counted attempt recorded (the dead claim's owner, when, why), oldest first."""
    found = []
    for name in _names(folder, task_hash):
        try:
            record = read_json(os.path.join(folder, name))
        except ValueError:
            record = {}  # being written: it counts all the same
        except OSError as e:
            if not gone(e):
                raise
            continue
        found.append(record if isinstance(record, dict) else {})
    return sorted(found, key=lambda r: r.get("time") or 0)


def forget(folder: str, task_hash: str) -> int:
    """Remove every counted attempt of the task; how many were removed."""
    return sum(remove_file(os.path.join(folder, n)) for n in _names(folder, task_hash))


def hashes(folder: str) -> set[str]:
    """Tasks with counted attempts (one listing)."""
    return {n.split(".", 1)[0] for n in listing(folder) if n.endswith(SUFFIX)}
