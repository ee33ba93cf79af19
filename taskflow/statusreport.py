"""Status: how many tasks of each name wait, are ready, run, finished or failed.

One listing per results shard, one of failures and one of claims: the cost
grows with the number of shards and claims, not with a stat per task.
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from .stores import open_store
from .stores.base import ClaimInfo, Store
from .task import Task
from . import taskfile as taskfile_module
from .taskfile import load, store_path
from .units import format_duration

STATES = ("waiting", "ready", "running", "finished", "failed")


@dataclass
class Running:
    task: Task
    lock: ClaimInfo
    seconds: float | None = None  # since the claim was made, on the filesystem's clock


def _claimed_for(lock: ClaimInfo, fs_now: float) -> float | None:
    started = lock.owner.get("fs_started")
    return fs_now - started if isinstance(started, (int, float)) else None


@dataclass
class StatusReport:
    counts: dict[str, dict[str, int]]
    total: dict[str, int]
    running: list[Running] = field(default_factory=list)
    stale: list[Running] = field(default_factory=list)
    failed: list[tuple[Task, dict]] = field(default_factory=list)
    complete: bool = True  # False: the taskfile stopped at a barrier
    store: Store | None = None
    changed: dict[str, int] = field(default_factory=dict)  # results from other code, by name
    damaged: int = 0      # results marked damaged (suspect), counted as missing
    unconfirmed: int = 0  # results a sign says exist that the listing lacks: counts may lag
    finished_hashes: set = field(default_factory=set, repr=False)
    opened: set = field(default_factory=set, repr=False)  # confirmed by opening (see confirm.py)
    ready_hashes: set = field(default_factory=set, repr=False)

    @property
    def all_finished(self) -> bool:
        return self.complete and self.total["finished"] == sum(self.total.values())

    def to_json(self) -> dict:
        return {"tasks": self.counts, "total": self.total, "damaged": self.damaged,
                "may_lag": self.unconfirmed > 0, "unlisted": self.unconfirmed}

    @property
    def stuck(self) -> bool:
        """Nothing can make progress: what is not finished failed or waits on a failure.

        Below a barrier that is open already this says nothing: reload first (see `watch`).
        """
        t = self.total
        return t["ready"] == 0 and t["running"] == 0 and not self.stale and t["failed"] > 0

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
        for name, n in self.changed.items():
            rows.append(f"code changed: {n} finished {name} result(s) came from other code or another "
                        "version (`taskflow invalidate FILE --changed` removes them)")
        if self.damaged:
            rows.append(f"{self.damaged} result(s) found damaged count as not finished until computed again: "
                        + damage_hint(self.store))
        if self.unconfirmed:
            rows.append(lag_note(self.unconfirmed))
        if not self.complete:
            rows.append("loading stopped at a barrier: tasks below it appear once what it waits for is finished")
        return "\n".join(rows)

    def __repr__(self) -> str:
        return self.table()

    def _repr_html_(self) -> str:
        import html  # notebooks only: not worth importing on every `taskflow status`

        cells = "".join(f"<th>{s.capitalize()}</th>" for s in STATES)
        rows = [f"<tr><th style='text-align:left'>Task</th>{cells}</tr>"]
        for name, c in list(self.counts.items()) + [("Total", self.total)]:
            rows.append(f"<tr><td style='text-align:left'>{html.escape(name)}</td>"
                        + "".join(f"<td>{c[s]}</td>" for s in STATES) + "</tr>")
        note = "" if self.complete else "<p>Loading stopped at a barrier.</p>"
        return f"<table>{''.join(rows)}</table>{note}"


def damage_hint(store: Store | None) -> str:
    return f"run `taskflow execute {(store.taskfile if store else None) or 'FILE'}`"


def lag_note(n: int) -> str:
    return (f"counts may lag behind the filesystem's caches: {n} result(s) that other results or a finished "
            "run say exist are missing from this listing (`taskflow check` opens them to be sure)")


@dataclass
class Listing:
    """What the store holds for a graph, from one listing of results and one of suspect marks."""

    finished: set[str]
    suspect: set[str]        # of this graph, marked damaged: not counted as finished
    unconfirmed: set[str]    # a sign says they exist, the listing lacks them, nobody opened them
    opened: set[str] = field(default_factory=set)  # the listing lacked them, an open found them


def listing(tasks: Sequence[Task], store: Store) -> Listing:
    """Results in place for `tasks`, less those marked damaged."""
    finished = store.finished_hashes()
    suspect = store.suspect_hashes()
    if suspect:
        suspect &= {t.hash for t in tasks}
        finished -= suspect
    return Listing(finished, suspect, set())


def _look_for_unlisted(tasks: Sequence[Task], store: Store, found: Listing, finished: set[str],
                       confirm: bool) -> bool:
    """Fill in found.unconfirmed, or with `confirm` found.opened (see confirm.py); True if
    opening found results, which changes the states."""
    from . import confirm as confirming  # only when tasks are missing: a finished graph costs no import

    signs = confirming.hinted(store, tasks, finished, confirm=confirm) - found.suspect
    if signs:
        signs -= store.moved_aside()  # missing because found damaged, not because of a cache
    if not confirm or not signs:
        found.unconfirmed = signs
        return False
    found.opened = confirming.present(store, signs)
    found.finished |= found.opened
    return bool(found.opened)


def _claims(tasks_by_hash: dict[str, Task], store: Store, finished: set[str]) -> tuple[list, list]:
    running: list[Running] = []
    stale: list[Running] = []
    claims = store.claims(reader=True)
    try:
        locked = [h for h in claims.claimed() if h in tasks_by_hash]
        for h in locked:
            info = claims.inspect(h)
            if info is None or h in finished:
                continue
            (stale if info.stale else running).append(Running(tasks_by_hash[h], info,
                                                               _claimed_for(info, claims.now())))
    finally:
        claims.close()
    return running, stale


def task_states(tasks: Sequence[Task], store: Store, found: Listing | None = None
                ) -> tuple[dict[str, str], list[Running], list[Running]]:
    """State of every task by hash, plus the live and the stale claims."""
    finished = (found or listing(tasks, store)).finished
    failed = store.failed_hashes()
    running, stale = _claims({t.hash: t for t in tasks}, store, finished)
    live = {r.task.hash for r in running}
    states: dict[str, str] = {}
    for t in tasks:
        h = t.hash
        if h in finished:
            states[h] = "finished"
        elif h in failed:
            states[h] = "failed"
        elif h in live:
            states[h] = "running"
        elif all(d.hash in finished for d in t.deps):
            states[h] = "ready"
        else:
            states[h] = "waiting"
    return states, running, stale


def compute(tasks: Sequence[Task], store: Store, complete: bool = True, details: bool = False,
            confirm: bool = False) -> StatusReport:
    """Status of `tasks` in `store`. With `details`, also read failure records. With `confirm`
    (check, wait), open the results that a sign says exist but the listing lacks (see confirm.py),
    so that a client's stale cache does not make a finished run look unfinished."""
    from .invalidate import changed

    found = listing(tasks, store)
    states, running, stale = task_states(tasks, store, found)
    finished = {h for h, state in states.items() if state == "finished"}
    if len(finished) < len(states) and _look_for_unlisted(tasks, store, found, finished, confirm):
        states, running, stale = task_states(tasks, store, found)
        finished = {h for h, state in states.items() if state == "finished"}
    code_changed = {name: len(group) for name, group in changed(tasks, store, finished).items()}
    counts: dict[str, dict[str, int]] = {}
    failed_list = []
    for t in tasks:
        state = states[t.hash]
        if details and state == "failed":
            failed_list.append((t, store.load_failure(t.hash) or {}))
        row = counts.get(t.name)
        if row is None:
            row = counts[t.name] = dict.fromkeys(STATES, 0)
        row[state] += 1
    total = dict.fromkeys(STATES, 0)
    for row in counts.values():
        for s in STATES:
            total[s] += row[s]
    return StatusReport(counts, total, running, stale, failed_list, complete, store, code_changed,
                        len(found.suspect), len(found.unconfirmed), finished, found.opened,
                        {h for h, state in states.items() if state == "ready"})


def status(taskfile: str, store: str | None = None, argv: Sequence[str] = (), details: bool = False) -> StatusReport:
    """Status of a taskfile's tasks, as `taskflow status` shows it (for notebooks and scripts)."""
    s = open_store(store_path(taskfile, store))
    loaded = load(taskfile, s, argv)
    return compute(loaded.tasks, s, loaded.complete, details)


def confirmed(taskfile: str, store: Store, argv: Sequence[str] = ()) -> tuple[taskfile_module.Loaded, StatusReport]:
    """The taskfile loaded and its status as `check` and `wait` judge it: results a stale listing
    lacks are confirmed by opening them (see compute), also for the barriers they open."""
    loaded = load(taskfile, store, argv)
    report = compute(loaded.tasks, store, loaded.complete, confirm=True)
    while not loaded.complete and report.opened:
        # Loading stopped at a barrier that results found only by opening may open.
        known = set(report.finished_hashes)
        loaded = load(taskfile, store, argv, finished=known)
        report = compute(loaded.tasks, store, loaded.complete, confirm=True)
        if report.finished_hashes <= known:
            break
    return loaded, report


def running_lines(report: StatusReport) -> list[str]:
    """One line per claim: task, owner and for how long it has run."""
    lines = []
    for kind, entries in (("running", report.running), ("stale", report.stale)):
        for r in entries:
            o = r.lock.owner
            since = format_duration(max(r.seconds, 0.0)) if r.seconds is not None else "?"
            lines.append(f"{kind:8} {r.task.name} {r.task.hash[:12]} host={o.get('host', '?')} "
                         f"pid={o.get('pid', '?')} worker={o.get('worker', '?')} for {since}"
                         + (f" ({r.lock.reason})" if r.lock.stale else ""))
    return lines


def dumps(report: StatusReport) -> str:
    return json.dumps(report.to_json(), indent=1)


def _bar(done: int, total: int, width: int = 20) -> str:
    filled = int(round(width * done / total)) if total else width
    return "#" * filled + "." * (width - filled)


def watch_frame(report: StatusReport, rate_per_min: float | None) -> str:
    """One screen of `status --watch`: the table with a progress bar per name, rate and time left."""
    names = list(report.counts)
    width = max([len(n) for n in names] + [5])
    lines = []
    for name in names:
        c = report.counts[name]
        total = sum(c.values())
        lines.append(f"{name:<{width}} [{_bar(c['finished'], total)}] {c['finished']:>7}/{total:<7}"
                     + "".join(f" {s} {c[s]}" for s in ("running", "ready", "waiting", "failed") if c[s]))
    t = report.total
    total = sum(t.values())
    lines.append("")
    lines.append(f"{'Total':<{width}} [{_bar(t['finished'], total)}] {t['finished']:>7}/{total:<7}"
                 + "".join(f" {s} {t[s]}" for s in ("running", "ready", "waiting", "failed") if t[s]))
    if rate_per_min is not None:
        left = total - t["finished"] - t["failed"]
        eta = f", about {format_duration(60.0 * left / rate_per_min)} left" if rate_per_min > 0 and left else ""
        lines.append(f"{rate_per_min:.1f} tasks/min{eta}")
    if report.stale:
        lines.append(f"{len(report.stale)} stale claim(s)")
    if not report.complete:
        lines.append("(loading stopped at a barrier)")
    return "\n".join(lines)


def watch(taskfile: str, store: Store, argv: Sequence[str], interval: float, out, clear: bool) -> StatusReport:
    """Redraw the status until every task is finished or nothing can progress."""
    loaded = load(taskfile, store, argv)
    first: tuple[float, int] | None = None
    while True:
        report = compute(loaded.tasks, store, loaded.complete)
        now = time.monotonic()
        if first is None:
            first = (now, report.total["finished"])
        elapsed = now - first[0]
        rate = 60.0 * (report.total["finished"] - first[1]) / elapsed if elapsed > 0 else None
        frame = watch_frame(report, rate)
        out.write(("\x1b[H\x1b[2J" if clear else "") + frame + "\n" + ("" if clear else "\n"))
        out.flush()
        if not report.complete and loaded.barrier_open():
            loaded = load(taskfile, store, argv)  # the barrier opened: see the tasks below it
            continue
        if report.all_finished or report.stuck:
            return report
        time.sleep(interval)
