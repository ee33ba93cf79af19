"""Status: how many tasks of each name wait, are ready, run, finished or failed.

One listing per results shard, one of failures and one of claims: the cost
grows with the number of shards and claims, not with a stat per task.
"""
from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass, field
from typing import Sequence

from .lease import Leases, LockInfo
from .store import Store
from .task import Task
from .taskfile import load, store_path

STATES = ("waiting", "ready", "running", "finished", "failed")


@dataclass
class Running:
    task: Task
    lock: LockInfo


@dataclass
class StatusReport:
    counts: dict[str, dict[str, int]]
    total: dict[str, int]
    running: list[Running] = field(default_factory=list)
    stale: list[Running] = field(default_factory=list)
    failed: list[tuple[Task, dict]] = field(default_factory=list)
    complete: bool = True  # False: the taskfile stopped at a barrier
    store: Store | None = None

    @property
    def all_finished(self) -> bool:
        return self.complete and self.total["finished"] == sum(self.total.values())

    def to_json(self) -> dict:
        return {"tasks": self.counts, "total": self.total}

    def table(self) -> str:
        names = list(self.counts)
        width = max([len(n) for n in names] + [len("Task")])
        head = f"{'Task':<{width}}" + "".join(f"{s.capitalize():>10}" for s in STATES)
        rows = [head, "-" * len(head)]
        for name in names:
            rows.append(f"{name:<{width}}" + "".join(f"{self.counts[name][s]:>10}" for s in STATES))
        rows.append("-" * len(head))
        rows.append(f"{'Total':<{width}}" + "".join(f"{self.total[s]:>10}" for s in STATES))
        if self.stale:
            rows.append(f"{len(self.stale)} stale claim(s) of dead or frozen workers "
                        "(their tasks count as ready; `taskflow cleanup --locks` removes them)")
        if not self.complete:
            rows.append("loading stopped at a barrier: tasks below it appear once those above are finished")
        return "\n".join(rows)

    def __repr__(self) -> str:
        return self.table()

    def _repr_html_(self) -> str:
        cells = "".join(f"<th>{s.capitalize()}</th>" for s in STATES)
        rows = [f"<tr><th style='text-align:left'>Task</th>{cells}</tr>"]
        for name, c in list(self.counts.items()) + [("Total", self.total)]:
            rows.append(f"<tr><td style='text-align:left'>{html.escape(name)}</td>"
                        + "".join(f"<td>{c[s]}</td>" for s in STATES) + "</tr>")
        note = "" if self.complete else "<p>Loading stopped at a barrier.</p>"
        return f"<table>{''.join(rows)}</table>{note}"


def compute(tasks: Sequence[Task], store: Store, complete: bool = True, details: bool = False) -> StatusReport:
    """Status of `tasks` in `store`. With `details`, also read failure records."""
    finished = store.finished_hashes()
    failed = store.failed_hashes()
    index = {t.hash: t for t in tasks}
    locked = [n for n in store.lock_names() if n in index]
    live: set[str] = set()
    running: list[Running] = []
    stale: list[Running] = []
    if locked:
        leases = Leases(store)
        try:
            for h in locked:
                info = leases.inspect(h)
                if info is None or h in finished:
                    continue
                (stale if info.stale else running).append(Running(index[h], info))
                if not info.stale:
                    live.add(h)
        finally:
            leases.close()
    counts: dict[str, dict[str, int]] = {}
    failed_list = []
    for t in tasks:
        h = t.hash
        if h in finished:
            state = "finished"
        elif h in failed:
            state = "failed"
            if details:
                failed_list.append((t, store.load_failure(h) or {}))
        elif h in live:
            state = "running"
        elif all(d.hash in finished for d in t.deps):
            state = "ready"
        else:
            state = "waiting"
        row = counts.get(t.name)
        if row is None:
            row = counts[t.name] = dict.fromkeys(STATES, 0)
        row[state] += 1
    total = dict.fromkeys(STATES, 0)
    for row in counts.values():
        for s in STATES:
            total[s] += row[s]
    return StatusReport(counts, total, running, stale, failed_list, complete, store)


def status(taskfile: str, store: str | None = None, argv: Sequence[str] = (), details: bool = False) -> StatusReport:
    """Status of a taskfile's tasks, as `taskflow status` shows it (for notebooks and scripts)."""
    s = Store(store_path(taskfile, store))
    loaded = load(taskfile, s, argv)
    return compute(loaded.tasks, s, loaded.complete, details)


def running_lines(report: StatusReport) -> list[str]:
    """One line per claim: task, owner and for how long it has run."""
    lines = []
    now = time.time()
    for kind, entries in (("running", report.running), ("stale", report.stale)):
        for r in entries:
            o = r.lock.owner
            started = o.get("started")
            since = f"{now - started:.0f}s" if isinstance(started, (int, float)) else "?"
            lines.append(f"{kind:8} {r.task.name} {r.task.hash[:12]} host={o.get('host', '?')} "
                         f"pid={o.get('pid', '?')} worker={o.get('worker', '?')} for {since}"
                         + (f" ({r.lock.reason})" if r.lock.stale else ""))
    return lines


def dumps(report: StatusReport) -> str:
    return json.dumps(report.to_json(), indent=1)
