"""`taskflow report --suggest`: requests sized from what finished tasks really used.

Per task name, the runtime and peak memory each result's metadata records (duration,
max_rss_bytes) as p50, p90 and max, and from the max a suggested `resources=` with a margin:
TIME_MARGIN more time (at least MIN_TIME) and MEMORY_MARGIN more memory, rounded up to whole
minutes and to MEMORY_STEP. Per array job whose record says what its workers asked for (jobs
submitted by resource class), that request against what its workers used: the highest peak
memory of a task they ran, and the longest an array task was busy (from its first task's start
to its last task's end).
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import jobs
from .errors import UsageError
from .report import Report
from .resources import Resources, format_memory, parse
from .schedulers.environment import parse_worker
from .stores.base import Store
from .units import format_duration
from .worker.walltime import percentile

TIME_MARGIN = 0.5      # +50 % on the longest runtime
MIN_TIME = 60.0        # seconds: no scheduler request below a minute
MEMORY_MARGIN = 0.25   # +25 % on the highest peak memory
MEMORY_STEP = 64       # megabytes
MARGINS = (f"margin: +{TIME_MARGIN:.0%} on the longest runtime (at least {format_duration(MIN_TIME)}, whole "
           f"minutes), +{MEMORY_MARGIN:.0%} on the highest peak memory (in steps of {MEMORY_STEP}M)")


def suggested_time(longest: float) -> float:
    return max(MIN_TIME, math.ceil(longest * (1 + TIME_MARGIN) / 60) * 60.0)


def suggested_memory(peak_bytes: int) -> int:
    """Megabytes."""
    megabytes = peak_bytes * (1 + MEMORY_MARGIN) / 2**20
    return max(MEMORY_STEP, math.ceil(megabytes / MEMORY_STEP) * MEMORY_STEP)


@dataclass
class NameSuggestion:
    name: str
    finished: int
    seconds: tuple[float, float, float]              # p50, p90, max
    rss: tuple[int, int, int] | None                 # bytes; None when no result recorded it
    resources: Resources


@dataclass
class JobUse:
    job: str
    requested: Resources
    tasks: int = 0
    peak_rss: int | None = None         # bytes
    busy: dict[str, tuple[float, float]] = field(default_factory=dict)  # array task -> (first start, last end)

    @property
    def longest_busy(self) -> float | None:
        return max((end - start for start, end in self.busy.values()), default=None)


@dataclass
class Suggestions:
    names: list[NameSuggestion]
    jobs: list[JobUse]

    def submit_options(self) -> list[str]:
        """--time and --mem that let a worker run any one of these tasks."""
        options: list[str] = []
        times = [s.resources.time for s in self.names if s.resources.time is not None]
        mems = [s.resources.memory for s in self.names if s.resources.memory is not None]
        if times:
            options += ["--time", format_duration(max(times))]
        if mems:
            options += ["--mem", format_memory(max(mems))]
        return options

    def to_json(self) -> dict[str, Any]:
        return {"margins": {"time": TIME_MARGIN, "min_time_seconds": MIN_TIME, "memory": MEMORY_MARGIN,
                            "memory_step_mb": MEMORY_STEP},
                "tasks": {s.name: {"finished": s.finished, "seconds": dict(zip(("p50", "p90", "max"), s.seconds,
                                                                                strict=True)),
                                   "rss_bytes": None if s.rss is None else dict(zip(("p50", "p90", "max"), s.rss,
                                                                                    strict=True)),
                                   "resources": s.resources.as_dict()} for s in self.names},
                "submit": self.submit_options(),
                "jobs": [{"job": j.job, "requested": j.requested.as_dict(), "tasks": j.tasks,
                          "peak_rss_bytes": j.peak_rss, "longest_busy_seconds": j.longest_busy} for j in self.jobs]}

    def table(self) -> str:
        if not self.names:
            return "no finished task to size requests from"
        width = max([len(s.name) for s in self.names] + [4])
        head = (f"{'Task':<{width}} {'Finished':>8}  {'Time p50':>9} {'p90':>9} {'max':>9}  "
                f"{'Mem p50':>9} {'p90':>9} {'max':>9}  Suggested")
        rows = [head, "-" * len(head)]
        for s in self.names:
            p50, p90, top = (_secs(v) for v in s.seconds)
            m50, m90, mtop = ("?", "?", "?") if s.rss is None else (_mib(v) for v in s.rss)
            rows.append(f"{s.name:<{width}} {s.finished:>8}  {p50:>9} {p90:>9} {top:>9}  "
                        f"{m50:>9} {m90:>9} {mtop:>9}  resources={json.dumps(s.resources.as_dict())}")
        rows += ["", MARGINS]
        options = self.submit_options()
        if options:
            rows.append("for one array of workers that may run any of them: taskflow submit FILE "
                        + " ".join(options))
        if self.jobs:
            rows += ["", "Requested against used, per array job:"]
            for j in self.jobs:
                used_time = "?" if j.longest_busy is None else _secs(j.longest_busy)
                asked_time = "-" if j.requested.time is None else format_duration(j.requested.time)
                asked_mem = "-" if j.requested.memory is None else format_memory(j.requested.memory)
                rows.append(f"  {j.job}: {j.tasks} task(s); time {asked_time} asked, longest array task "
                            f"busy {used_time}; memory {asked_mem} asked, peak {_mib(j.peak_rss)}")
        return "\n".join(rows)


def _secs(s: float) -> str:
    return f"{s:.2f}s" if s < 60 else format_duration(s)


def _mib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**20:.0f}M"


def suggest(rep: Report, store: Store) -> Suggestions:
    names = []
    for name, r in rep.names.items():
        if not r.finished:
            continue
        seconds = (percentile(r.durations, 50), percentile(r.durations, 90), max(r.durations))
        rss = (int(percentile(r.rss, 50)), int(percentile(r.rss, 90)), max(r.rss)) if r.rss else None
        resources = Resources(time=suggested_time(seconds[2]),
                              memory=None if rss is None else suggested_memory(rss[2]))
        names.append(NameSuggestion(name, r.finished, seconds, rss, resources))
    return Suggestions(names, _job_use(rep.metas, store))


def _job_use(metas: Sequence[dict], store: Store) -> list[JobUse]:
    use: dict[tuple[str, str], JobUse] = {}
    for record in jobs.load_all(store):
        if not record.resources:
            continue  # submitted without resource classes: the record does not say what it asked for
        try:
            requested = parse(record.resources, f"job record {record.describe()}")
        except UsageError:  # a record from another version of taskflow: leave it out
            continue
        use[record.key] = JobUse(record.describe(), requested)
    if not use:
        return []
    for meta in metas:
        parsed = parse_worker(str(meta.get("worker") or ""))
        if parsed is None or (parsed[0], parsed[1]) not in use:
            continue
        j = use[(parsed[0], parsed[1])]
        j.tasks += 1
        rss = meta.get("max_rss_bytes")
        if isinstance(rss, int):
            j.peak_rss = rss if j.peak_rss is None else max(j.peak_rss, rss)
        started, finished = meta.get("started"), meta.get("finished")
        if isinstance(started, (int, float)) and isinstance(finished, (int, float)):
            first, last = j.busy.get(parsed[2], (started, finished))
            j.busy[parsed[2]] = (min(first, started), max(last, finished))
    return list(use.values())
