"""`taskflow import-jug`: copy finished results from a jugdata folder into the taskflow store.

For each task of the taskfile declared through jug's API, jug's key is
computed (taskflow.jugkey); where it can be computed exactly and jug has a
result under it, the result is read (taskflow.jugdata), stored under the
task's taskflow hash, and read back to check it. A task whose key cannot be
computed is reported and left to compute; nothing is guessed. Past a
barrier the taskfile is loaded again, as `execute` does, once the results
above it are in.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from .jugdata import JugData, Unreadable
from .jugkey import NotComputable, task_key
from .stores.base import Store
from .stores.identity import result_meta
from .taskfile import load


@dataclass
class ImportReport:
    imported: list = field(default_factory=list)        # (name, taskflow hash, jug key)
    already: int = 0                                     # finished in the taskflow store before
    missing: list = field(default_factory=list)         # (name, taskflow hash, jug key): jug had no result
    not_importable: list = field(default_factory=list)  # (name, taskflow hash, reason)
    stopped_at: str | None = None                        # a barrier that kept tasks below it undeclared

    def summary(self, dry_run: bool = False) -> str:
        verb = "would import" if dry_run else "imported"
        text = (f"{verb} {len(self.imported)}, already in the store {self.already}, "
                f"not finished under jug {len(self.missing)}, not importable {len(self.not_importable)}")
        if self.stopped_at:
            text += (f"; stopped at the barrier at {self.stopped_at} (tasks above it are not all finished"
                     + (", and a dry run imports nothing to pass it)" if dry_run else
                        "): run `taskflow execute`, then import-jug again"))
        return text


def import_jug(jugdir: str, taskfile: str, store: Store, argv: Sequence[str] = (),
               dry_run: bool = False) -> ImportReport:
    """Import what can be imported exactly; see the module's docstring."""
    data = JugData(jugdir)
    report = ImportReport()
    memo: dict = {}
    seen: set[str] = set()
    try:
        return _import_all(data, taskfile, store, argv, dry_run, report, memo, seen)
    finally:
        store.close_results()


def _import_all(data: JugData, taskfile: str, store: Store, argv: Sequence[str], dry_run: bool,
                report: ImportReport, memo: dict, seen: set[str]) -> ImportReport:
    while True:
        loaded = load(taskfile, store, argv)
        store.expect_results(len(loaded.tasks))  # a large graph's small results go into packs
        fresh = [t for t in loaded.tasks if t.hash not in seen]
        seen.update(t.hash for t in fresh)
        finished = store.finished_hashes()
        by_key: dict[str, list] = {}
        for t in fresh:
            if t.hash in finished:
                report.already += 1
                continue
            try:
                by_key.setdefault(task_key(t, memo), []).append(t)
            except NotComputable as e:
                report.not_importable.append((t.name, t.hash, str(e)))
        imported_now = 0
        for key, tasks in by_key.items():
            if len(tasks) > 1:
                names = ", ".join(sorted({t.name for t in tasks}))
                for t in tasks:
                    report.not_importable.append((t.name, t.hash, f"jug's key {key} is shared by {len(tasks)} "
                                                  f"tasks here ({names})"))
                continue
            t = tasks[0]
            if _import_one(data, key, t, store, report, dry_run):
                imported_now += 1
        if loaded.complete:
            return report
        if dry_run or not imported_now:
            report.stopped_at = loaded.barrier_at
            return report


def _import_one(data: JugData, key: str, t, store: Store, report: ImportReport, dry_run: bool) -> bool:
    if not data.has(key):
        report.missing.append((t.name, t.hash, key))
        return False
    try:
        result = data.load(key)
    except (Unreadable, FileNotFoundError) as e:
        report.not_importable.append((t.name, t.hash, str(e)))
        return False
    if not dry_run:
        path = data.file_of(key)
        try:
            finished_at = os.stat(path).st_mtime
        except FileNotFoundError:  # from the pack
            finished_at = os.stat(os.path.join(data.path, "packs", "jugpack")).st_mtime
        try:
            store.save_result(t.hash, result, result_meta(t, finished_at, 0.0, "import-jug",
                                                          {"imported_from": path}))
        except (TypeError, AttributeError, ValueError) as e:  # pickle refused the value
            report.not_importable.append((t.name, t.hash, f"cannot store its result: {type(e).__name__}: {e}"))
            return False
        store.load_value(t.hash)  # read back: length and checksum
    report.imported.append((t.name, t.hash, key))
    return True
