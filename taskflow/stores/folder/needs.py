"""What a store's filesystem needs of the lease, as `taskflow doctor` measured it.

A claim's age is judged from the mtime of its file against the filesystem's
clock. A live claim, renewed every lease/4, can look older than it is by the
filesystem's time-stamp granularity (its mtime is truncated) plus the time a
renewal takes to be seen by another client (its cache lag). It is never
judged stale while lease/4 + granularity + lag < lease, that is while the
lease exceeds 4/3 of granularity + lag; the minimum recommended here adds half
as much again for jitter, and is never below a second.

Doctor records its figures in STORE/doctor.json so that `execute` can warn
when a lease is too short for the store. Without that record `execute` learns
the granularity alone, from the mtime of the store's marker file (a stat per
run, none per task): whole-second stamps mean a granularity of a second.

A doctor that measured no cache lag keeps the lag an earlier doctor on two
nodes measured: it reads the record, then replaces it. Doctors on several
nodes may finish at once, so that read and write are one critical section,
under a lease in STORE/doctor.json.lock (filelock's SoftFileLease: exclusive
create; a holder killed inside the section is taken over once its marker
went unrenewed for LOCK_LEASE on the taker's own clock, but only where the
filesystem can exchange two names, renameat2(RENAME_EXCHANGE): elsewhere, as
through sshfs, such a lock stays until removed, and the next doctor says so
after LOCK_WAIT). Readers take no lock: the write is atomic.

These are figures of a filesystem: only a folder store has them. Other kinds
of store judge claims by their server's clock and need no such record.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from typing import Any

from ...errors import StoreAccessError
from .layout import Folder

log = logging.getLogger(__name__)

NEEDS_FILE = "doctor.json"
LOCK_FILE = "doctor.json.lock"
# The section lasts milliseconds: a lease this long is only ever waited out after a holder was killed in it.
LOCK_LEASE = 10.0
LOCK_WAIT = 6 * LOCK_LEASE
# Above the floor of 4/3 (granularity + lag): room for scheduling jitter and hiccups.
MARGIN = 1.5
SMALLEST_LEASE = 1.0


def minimum_lease(granularity: float, lag: float) -> float:
    """The shortest lease, in whole seconds, that a store with these figures should get."""
    floor = 4 / 3 * (max(granularity, 0.0) + max(lag, 0.0))
    return float(max(SMALLEST_LEASE, math.ceil(MARGIN * floor - 1e-9)))


def needs_path(store: Folder) -> str:
    return os.path.join(store.path, NEEDS_FILE)


def read_needs(store: Folder) -> dict | None:
    """The figures doctor recorded for this store, or None (none recorded, or unreadable)."""
    path = needs_path(store)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning("%s: unreadable (%s); run `taskflow doctor` again", path, e)
        return None
    if not isinstance(data, dict) or not isinstance(data.get("min_lease"), (int, float)):
        log.warning("%s: not a doctor record; run `taskflow doctor` again", path)
        return None
    return data


def write_needs(store: Folder, record: dict[str, Any]) -> None:
    """Record doctor's figures (atomically: readers see the old record or the new one)."""
    store.write_atomic(needs_path(store), (json.dumps(record, indent=1, sort_keys=True) + "\n").encode())


def update_needs(store: Folder, change: Callable[[dict | None], dict[str, Any]]) -> dict[str, Any]:
    """Replace the record by `change(previous record or None)`, with no other update in between."""
    import filelock  # here: `execute` reads the record through this module, and needs no lock

    path = os.path.join(store.path, LOCK_FILE)
    lease = filelock.SoftFileLease(path, lease_duration=LOCK_LEASE, poll_interval=0.02)
    deadline = time.monotonic() + LOCK_WAIT
    held_up = StoreAccessError(f"{path}: held by another `taskflow doctor` for over {LOCK_WAIT:g} s, or left by "
                               f"one that was killed; remove it if no doctor runs on this store", path=path)
    while True:
        try:
            lease.acquire(timeout=max(0.0, deadline - time.monotonic()))
            break
        except filelock.Timeout:
            raise held_up from None
        except PermissionError:
            # sshfs answers an exclusive create that lost the race with EPERM (SFTP v3 has no
            # "exists"), which filelock takes for a real error: the lock is held, wait as for any.
            if not os.path.lexists(path):
                raise
            if time.monotonic() > deadline:
                raise held_up from None
            time.sleep(0.02)
    try:
        record = change(read_needs(store))
        write_needs(store, record)
    finally:
        lease.release()
    return record


def _marker_granularity(store: Folder) -> float | None:
    try:
        ns = os.stat(store.marker_file).st_mtime_ns
    except OSError:
        return None
    # Nanosecond stamps land on a whole second once in a billion; whole-second ones always do.
    return 1.0 if ns % 1_000_000_000 == 0 else None


def lease_warning(store: Folder, lease: float) -> str | None:
    """One line saying why `lease` is too short for this store, or None when it is long enough."""
    needs = read_needs(store)
    if needs is not None:
        need = float(needs["min_lease"])
        if lease >= need:
            return None
        return (f"the lease ({lease:g} s) is shorter than this store needs ({need:g} s: time stamps of "
                f"{float(needs.get('granularity', 0)):g} s and changes seen by other clients after up to "
                f"{float(needs.get('lag', 0)):.2g} s, as `taskflow doctor` measured); "
                f"use --lease {need:g} or more")
    granularity = _marker_granularity(store)
    if granularity is None:
        return None
    need = minimum_lease(granularity, 0.0)
    if lease >= need:
        return None
    return (f"the lease ({lease:g} s) is shorter than this store needs (at least {need:g} s: its time stamps "
            f"are whole seconds); use --lease {need:g} or more, and run `taskflow doctor` to measure "
            f"what other clients' caches add")
