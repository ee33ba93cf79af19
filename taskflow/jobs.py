"""Records of the array jobs submitted for a store, and how many of their workers are busy.

    STORE/jobs/<scheduler>-<job number>.json   one record per submitted job
    STORE/jobs/<scheduler>-<time>-<random>.*   the job script as submitted
    STORE/jobs/logs/taskflow-<job>.<task>.log  output of each array task

Each record is its own file, written atomically once the scheduler accepted
the job, so concurrent submits never lose one another's records and a
rejected submission leaves none.

A worker in an array task claims tasks under the id `stores.identity.worker_id()` gives
it (`slurm:<job>.<task>`, `sge:<job>.<task>`, `pbs:<job id>.<task>`, written and
read by schedulers/environment.py): the live claims of a store tell which array
tasks are working on a task right now.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import StoreError
from .stores.base import Store
from .stores.localfiles import write_atomic

log = logging.getLogger(__name__)


@dataclass
class JobRecord:
    scheduler: str          # "slurm", "sge", "pbs": also the prefix of its workers' ids
    job_id: str             # as the scheduler printed it
    number: str             # its leading number, as in the workers' ids
    workers: int            # array tasks
    taskfile: str
    store: str
    script: str
    log_dir: str
    command: list[str]
    submitted: float = field(default_factory=time.time)
    cwd: str = ""
    host: str = ""
    resources: dict[str, Any] = field(default_factory=dict)  # what each worker asked for (resources= form)

    @property
    def key(self) -> tuple[str, str]:
        return self.scheduler, self.number

    def describe(self) -> str:
        return f"{self.scheduler} job {self.job_id}"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRecord:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def logs_dir(store: Store) -> str:
    return os.path.join(store.jobs_folder(), "logs")


def record_path(store: Store, scheduler: str, number: str) -> str:
    return os.path.join(store.jobs_folder(), f"{scheduler}-{number}.json")


def prepare_folders(store: Store) -> None:
    """Create the store, its jobs folder and the log folder jobs write into before they start."""
    store.ensure()  # first: a folder inside a store without its marker would make it "not a store"
    try:
        store.modes.make_folders(logs_dir(store))
    except OSError as e:
        raise StoreError(f"cannot create {logs_dir(store)}: {e.strerror}", path=logs_dir(store)) from None


def save(store: Store, record: JobRecord) -> str:
    """Write the record atomically; returns its path."""
    path = record_path(store, record.scheduler, record.number)
    store.ensure()
    try:
        folder = store.jobs_folder()
        store.modes.make_folders(folder)
        # The temp file beside the record: the folder is local to this host, whatever the store.
        write_atomic(path, json.dumps(asdict(record), indent=1).encode(), folder, modes=store.modes)
    except OSError as e:
        raise StoreError(f"cannot record {record.describe()} in {path}: {e.strerror}", path=path) from None
    return path


def load_all(store: Store) -> list[JobRecord]:
    """Every job recorded for the store, oldest first; unreadable records are skipped with a warning."""
    try:
        names = [n for n in os.listdir(store.jobs_folder()) if n.endswith(".json")]
    except FileNotFoundError:
        return []
    records = []
    for name in names:
        path = os.path.join(store.jobs_folder(), name)
        try:
            with open(path) as f:
                records.append(JobRecord.from_json(json.load(f)))
        except FileNotFoundError:
            continue
        except (ValueError, TypeError, OSError) as e:
            log.warning("skipping unreadable job record %s: %s", path, e)
    records.sort(key=lambda r: r.submitted)
    return records


@dataclass
class Activity:
    """How many array tasks of one job hold a claim right now."""

    record: JobRecord
    active: set[str]  # array task ids

    def line(self) -> str:
        return f"{self.record.describe()}: {len(self.active)} of {self.record.workers} workers active"


def activity(records: Iterable[JobRecord], workers: Iterable[str]) -> list[Activity]:
    """Per recorded job, the array tasks among `workers` (ids of live claims' owners)."""
    by_key = {r.key: Activity(r, set()) for r in records}
    if not by_key:
        return []
    # Here, not at the top: `status` imports this module, and only a store with job records needs
    # the schedulers' names for their array tasks.
    from .schedulers.environment import parse_worker
    for w in workers:
        parsed = parse_worker(w)
        if parsed and (parsed[0], parsed[1]) in by_key:
            by_key[parsed[0], parsed[1]].active.add(parsed[2])
    return list(by_key.values())


def live_workers(report: Any) -> list[str]:
    """Owners of the live claims in a status report (`status.StatusReport`)."""
    return [str(r.lock.owner.get("worker", "")) for r in report.running]


def summary(store: Store, workers: Iterable[str]) -> list[Activity]:
    """The jobs worth showing: each with an active worker, and the latest one in any case."""
    found = activity(load_all(store), workers)
    if not found:
        return []
    latest = found[-1]
    return [a for a in found if a.active or a is latest]


def status_lines(store: Store, report: Any) -> list[str]:
    """Lines for `taskflow status`: "slurm job 123: 12 of 20 workers active" per job shown."""
    shown = summary(store, live_workers(report))
    lines = [a.line() for a in shown]
    if len(shown) > 1:
        lines.append(f"in all: {sum(len(a.active) for a in shown)} of {sum(a.record.workers for a in shown)} "
                     "workers active")
    return lines
