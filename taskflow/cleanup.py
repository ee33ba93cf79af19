"""Cleanup: remove stale claims, leftover temp files, and results no task produces.

Nothing here ever removes a live claim: a claim is removed only after it was
judged stale and only if it is still the very file that was judged (see
`Leases.remove_stale`).
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field

from . import confirm
from .errors import UsageError
from .lease import (Leases, gone_from_here, on_this_host, read_owner, writer_gone_from_here,
                    writer_of_this_host)
from .store import HOST, Store, remove_file
from .task import Task

# Temp files of writers on other hosts are removed only when this old: a write
# in progress on a slow filesystem must never lose its file.
FOREIGN_TMP_AGE = 24 * 3600.0


@dataclass
class Removed:
    stale_locks: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)  # of takeovers and releases cut short
    results: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    tmp: list[str] = field(default_factory=list)
    clock_files: list[str] = field(default_factory=list)  # of dead workers
    journals: list[str] = field(default_factory=list)  # of dead workers
    doctor: list[str] = field(default_factory=list)  # scratch folders of doctors killed with kill -9
    suspects: list[str] = field(default_factory=list)  # marks of damaged results no task produces
    records: list[str] = field(default_factory=list)  # complete/ records of other graphs, once results went
    kept_live: list[str] = field(default_factory=list)

    def count(self) -> int:
        return sum(len(x) for x in (self.stale_locks, self.leftovers, self.results, self.failures, self.tmp,
                                    self.clock_files, self.journals, self.doctor, self.suspects, self.records))

    def summary(self, verb: str = "removed") -> list[str]:
        """One line per kind of file removed, with its count."""
        kinds = ((self.stale_locks, "stale claim(s)"),
                 (self.leftovers, "leftover(s) of takeovers and releases cut short in locks/"),
                 (self.results, "result(s) no task produces"),
                 (self.failures, "failure record(s) of tasks no longer declared"),
                 (self.tmp, "temp file(s)"),
                 (self.clock_files, "clock file(s) of dead workers"),
                 (self.journals, "journal(s) of dead workers"),
                 (self.doctor, "scratch folder(s) of doctors that died"),
                 (self.suspects, "suspect mark(s) of tasks no longer declared"),
                 (self.records, "completion record(s) of other graphs"))
        return [f"{verb} {len(found)} {what}" for found, what in kinds if found]


def _leftover_is_dead(leases: Leases, path: str) -> str | None:
    """Why `path` (locks/<hash>.<kind>.<token>) may go, or None while it may still be in use.

    It holds a claim's record: the moved claim itself (.released., .stale.) or the
    taker's (.takeover.). Its process gone from this host, nobody can still act on
    it; still running here, it may (a worker frozen mid-release puts a moved claim
    back); from other hosts, or unreadable, only age tells.
    """
    owner = read_owner(path)
    if owner is None:
        return None
    if gone_from_here(owner):
        return f"process {owner['pid']} on {HOST} is gone"
    if on_this_host(owner):
        return None
    try:
        age = leases.fs_now() - os.stat(path).st_mtime
    except FileNotFoundError:
        return None
    return f"untouched for {age / 3600:.0f}h" if age > FOREIGN_TMP_AGE else None


def remove_stale_locks(store: Store, dry_run: bool = False) -> Removed:
    removed = Removed()
    leases = Leases(store)
    try:
        for name in store.lock_names():
            if "." in name:  # a takeover or a release in progress, or the leftover of one cut short
                path = os.path.join(store.locks_dir, name)
                why = _leftover_is_dead(leases, path)
                if why is not None:
                    if dry_run or remove_file(path):
                        removed.leftovers.append(f"{name} ({why})")
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
        host = HOST if head.endswith("." + HOST) else head  # the label before it may hold dots
        if writer_of_this_host(host, pid):
            return writer_gone_from_here(host, pid)
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
    for h in sorted(store.suspect_hashes() - known - live):
        if dry_run or remove_file(os.path.join(store.suspect_dir, h)):
            removed.suspects.append(h)
    if removed.results:
        # A record of another graph may name results removed above: a sign that lies would make
        # check and wait open every result of that graph, and status say its counts may lag.
        # Records name graphs by a digest only, so every other one goes (those of the parts of
        # this graph above a barrier too: the next execute writes them again).
        ours = confirm.digest(t.hash for t in tasks)
        for name in sorted(_names(store.complete_dir) - {ours}):
            if dry_run or remove_file(os.path.join(store.complete_dir, name)):
                removed.records.append(name)
    leases = Leases(store)
    try:
        fs_now = leases.fs_now()
    finally:
        leases.close()
    for entry in list(store.tmp_files()):
        if _tmp_is_dead(store, entry, fs_now) and (dry_run or remove_file(entry.path)):
            removed.tmp.append(entry.path)
    # Clock files and journals of workers that died (a worker removes its own when it stops).
    for folder, found in ((store.clock_dir, removed.clock_files), (store.done_dir, removed.journals)):
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            if _tmp_is_dead(store, entry, fs_now) and (dry_run or remove_file(entry.path)):
                found.append(entry.path)
    # A doctor removes its scratch folder on its way out, unless killed with kill -9.
    doctor_dir = os.path.join(store.path, "doctor")
    try:
        entries = list(os.scandir(doctor_dir))
    except (FileNotFoundError, NotADirectoryError):
        entries = []
    for entry in entries:
        if entry.is_dir(follow_symlinks=False) and _tmp_is_dead(store, entry, fs_now):
            if not dry_run:
                shutil.rmtree(entry.path, ignore_errors=True)
            removed.doctor.append(entry.path)
    if removed.doctor and not dry_run:
        try:
            os.rmdir(doctor_dir)
        except OSError:
            pass  # a running doctor's folder is in it
    return removed


def _names(folder: str) -> set[str]:
    try:
        return set(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return set()
