"""What `taskflow status` says of the workers: how many run, per resource class (what each was
given), and which ready tasks no running worker can take.

From the records workers publish in the store (`Store.worker_records`, worker/presence.py): a
worker counts as running while its record is fresh and, on this host, while its process lives.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from .capacity import Capacity
from .resources import NONE, Resources, effective, format_memory, project_defaults
from .stores.base import Store, WorkerRecord
from .stores.identity import gone_from_here
from .task import Task


def running_workers(store: Store) -> list[WorkerRecord]:
    """The records of the workers running now."""
    return [w for w in store.worker_records() if w.live and not gone_from_here(w.record)]


def _given(record: dict) -> Resources | None:
    c = record.get("capacity")
    if not isinstance(c, dict) or not isinstance(c.get("cpus"), int):
        return None
    memory = c.get("memory")
    return Resources(cpus=c["cpus"], memory=memory if isinstance(memory, int) else None,
                     gpus=c.get("gpus") if isinstance(c.get("gpus"), int) else 0)


def _fits(given: Resources, needs: Resources) -> bool:
    capacity = Capacity(cpus=given.cpus or 1, memory=given.memory, gpus=tuple(map(str, range(given.gpus or 0))))
    return capacity.fits(dataclasses.replace(needs, time=None))


def _describe(given: Resources) -> str:
    memory = "mem=?" if given.memory is None else f"mem={format_memory(given.memory)}"
    return f"cpus={given.cpus} {memory} gpus={given.gpus}"


def worker_lines(workers: Sequence[WorkerRecord]) -> list[str]:
    """"workers: 3 running: 2 with cpus=4 mem=16G gpus=0, 1 with cpus=1 mem=2G gpus=0"."""
    if not workers:
        return []
    classes: dict[str, int] = {}
    for w in workers:
        given = _given(w.record)
        key = "unknown resources" if given is None else _describe(given)
        classes[key] = classes.get(key, 0) + 1
    shown = ", ".join(f"{n} with {key}" for key, n in sorted(classes.items(), key=lambda kv: -kv[1]))
    return [f"workers: {len(workers)} running: {shown}"]


def unplaced_lines(tasks: Sequence[Task], ready: set[str], workers: Sequence[WorkerRecord],
                   defaults: Resources = NONE) -> list[str]:
    """One line per kind of need among the `ready` hashes of `tasks` that no running worker can
    meet: "3 ready, need mem=64G: no running worker has it". Nothing when no worker runs (any may
    come), and then no pass over the tasks."""
    given = [g for g in (_given(w.record) for w in workers) if g is not None]
    if not given:
        return []
    needs_count: dict[Resources, int] = {}
    for t in tasks:
        if t.hash not in ready:
            continue
        needs = dataclasses.replace(effective(t, defaults), time=None)
        if needs:
            needs_count[needs] = needs_count.get(needs, 0) + 1
    lines = []
    for needs, n in needs_count.items():
        if not any(_fits(g, needs) for g in given):
            lines.append(f"{n} ready, need {needs.describe()}: no running worker has it "
                         f"(they have {' or '.join(sorted({_describe(g) for g in given}))})")
    return lines


def status_lines(store: Store, tasks: Sequence[Task], ready: set[str]) -> list[str]:
    """The lines `taskflow status` prints about workers, after the table."""
    workers = running_workers(store)
    defaults = project_defaults(store.taskfile) if store.taskfile else NONE
    return worker_lines(workers) + unplaced_lines(tasks, ready, workers, defaults)
