"""Cleanup: remove stale claims, leftover temp files, and results no task produces.

Nothing here ever removes a live claim: a claim is removed only after it was
judged stale and only if it is still exactly what was judged (see
`Claims.remove_stale`). What dead writers left is the store's to judge
(`Store.leftovers`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from . import confirm
from .errors import UsageError
from .stores.base import Store
from .stores.identity import gone_from_here
from .task import Task

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
    workers: list[str] = field(default_factory=list)  # records of workers that died running (workers/)
    kept_live: list[str] = field(default_factory=list)

    def count(self) -> int:
        return sum(len(x) for x in (self.stale_locks, self.leftovers, self.results, self.failures, self.tmp,
                                    self.clock_files, self.journals, self.doctor, self.suspects, self.records,
                                    self.workers))

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
                 (self.records, "completion record(s) of other graphs"),
                 (self.workers, "record(s) of workers that died"))
        return [f"{verb} {len(found)} {what}" for found, what in kinds if found]


def remove_stale_locks(store: Store, dry_run: bool = False) -> Removed:
    removed = Removed()
    claims = store.claims()
    try:
        for h in sorted(claims.claimed()):
            info = claims.inspect(h)
            if info is None:
                continue
            if not info.stale:
                removed.kept_live.append(h)
                continue
            if dry_run or claims.remove_stale(info):
                removed.stale_locks.append(f"{h} ({info.owner.get('worker', 'unknown owner')}: {info.reason})")
    finally:
        claims.close()
    # What takeovers and releases cut short left beside the claims.
    _remove_leftovers(store, "claim", removed.leftovers, dry_run)
    return removed


def _remove_leftovers(store: Store, kind: str, found: list[str], dry_run: bool) -> None:
    for leftover in store.leftovers(kind):
        if dry_run or store.remove_leftover(leftover):
            found.append(leftover.label)


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
        if dry_run or store.unmark_suspect(h):
            removed.suspects.append(h)
    if removed.results:
        # A record of another graph may name results removed above: a sign that lies would make
        # check and wait open every result of that graph, and status say its counts may lag.
        # Records name graphs by a digest only, so every other one goes (those of the parts of
        # this graph above a barrier too: the next execute writes them again).
        ours = confirm.digest(t.hash for t in tasks)
        for name in sorted(store.complete_digests() - {ours}):
            if dry_run or store.forget_complete(name):
                removed.records.append(name)
    # Temp files, clock files and journals of writers that died (a worker removes its own when it
    # stops), and scratch folders of doctors killed with kill -9.
    for kind, found in (("tmp", removed.tmp), ("clock", removed.clock_files), ("journal", removed.journals),
                        ("doctor", removed.doctor)):
        _remove_leftovers(store, kind, found, dry_run)
    _remove_dead_worker_records(store, removed.workers, dry_run)
    return removed


def _remove_dead_worker_records(store: Store, found: list[str], dry_run: bool) -> None:
    """Records of workers killed while running (kill -9, a node lost): gone from this host, or
    not published for three of their intervals. An exited worker's last record, and any that
    counts tasks skipped for lack of walltime, stay: `taskflow report` sums those."""
    for worker in store.worker_records():
        record = worker.record
        if not record.get("running") or record.get("walltime_skips"):
            continue
        if worker.live and not gone_from_here(record):
            continue
        if not dry_run:
            store.withdraw_worker(worker.ident)
        found.append(worker.ident)
