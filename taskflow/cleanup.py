"""Cleanup: remove stale claims, leftover temp files, and results no task produces.

Nothing here ever removes a live claim: a claim is removed only after it was
judged stale and only if it is still the very file that was judged (see
`Leases.remove_stale`).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Sequence

from .errors import UsageError
from .lease import Leases, pid_alive
from .store import HOST, Store
from .task import Task

log = logging.getLogger(__name__)

# Temp files of writers on other hosts are removed only when this old: a write
# in progress on a slow filesystem must never lose its file.
FOREIGN_TMP_AGE = 24 * 3600.0


@dataclass
class Removed:
    stale_locks: list[str] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    tmp: list[str] = field(default_factory=list)
    kept_live: list[str] = field(default_factory=list)

    def count(self) -> int:
        return len(self.stale_locks) + len(self.results) + len(self.failures) + len(self.tmp)


def remove_stale_locks(store: Store, dry_run: bool = False) -> Removed:
    removed = Removed()
    leases = Leases(store)
    try:
        for name in store.lock_names():
            if "." in name:  # a takeover in progress (or a crashed one): judged by age below
                path = os.path.join(store.locks_dir, name)
                try:
                    if leases.fs_now() - os.stat(path).st_mtime > FOREIGN_TMP_AGE:
                        if not dry_run:
                            os.unlink(path)
                        removed.tmp.append(path)
                except FileNotFoundError:
                    pass
                continue
            info = leases.inspect(name)
            if info is None:
                continue
            if not info.stale:
                removed.kept_live.append(name)
                continue
            if dry_run or leases.remove_stale(info):
                removed.stale_locks.append(f"{name} ({info.owner.get('worker', 'unknown owner')}: {info.reason})")
    finally:
        leases.close()
    return removed


def _tmp_is_dead(store: Store, entry: os.DirEntry, fs_now: float) -> bool:
    # Temp names are <label>.<host>.<pid>.<random>; host names may contain dots.
    parts = entry.name.rsplit(".", 2)
    if len(parts) == 3:
        head, pid, _ = parts
        if (head == HOST or head.endswith("." + HOST)) and pid.isdigit():
            return not pid_alive(int(pid))
    try:
        return fs_now - entry.stat().st_mtime > FOREIGN_TMP_AGE
    except FileNotFoundError:
        return False


def cleanup(store: Store, tasks: Sequence[Task], complete: bool, dry_run: bool = False,
            locks_only: bool = False) -> Removed:
    """Remove stale claims; unless `locks_only`, also dead temp files and results,
    failure records and stale claims of tasks the taskfile no longer declares."""
    removed = remove_stale_locks(store, dry_run)
    if locks_only or not store.exists():
        return removed
    if not complete:
        raise UsageError("the taskfile stops at a barrier whose tasks are not all finished, so the tasks "
                         "below it are unknown and their results cannot be told from leftovers; "
                         "run `taskflow execute` first, or use `cleanup --locks`")
    known = {t.hash for t in tasks}
    live = set(removed.kept_live)
    for h in sorted(store.finished_hashes() - known - live):
        if dry_run or store.remove_result(h):
            removed.results.append(h)
    for h in sorted(store.failed_hashes() - known - live):
        if dry_run or store.remove_failure(h):
            removed.failures.append(h)
    leases = Leases(store)
    try:
        fs_now = leases.fs_now()
    finally:
        leases.close()
    for entry in list(store.tmp_files()):
        if _tmp_is_dead(store, entry, fs_now):
            if not dry_run:
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:
                    continue
            removed.tmp.append(entry.path)
    # Clock files and journals of workers that died (a worker removes its own when it stops).
    for folder in (store.clock_dir, store.done_dir):
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            if _tmp_is_dead(store, entry, fs_now) and not dry_run:
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:
                    pass
    return removed
