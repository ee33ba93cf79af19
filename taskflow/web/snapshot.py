"""What the web page shows, read from the store the way `taskflow status` reads it.

One `Snapshots` object serves every browser: a snapshot younger than the
refresh period is handed out again, and a request arriving while the store is
being read waits for that reading instead of starting its own. So several
browsers cost one store scan per refresh period, not one each.
"""
from __future__ import annotations

import os
import tempfile
import threading
import time
from collections import deque
from typing import Any
from collections.abc import Sequence

from .. import jobs
from ..statusreport import StatusReport, compute, dumps
from ..stores.base import Store
from ..taskfile import Loaded, load


RATE_WINDOW = 120.0  # seconds of history the rate is computed over
FAILURES_SHOWN = 500  # failures listed with their message; the counts cover all of them


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


class Snapshots:
    """The taskfile loaded once (again when its barrier opens or the file changes), and cached views."""

    def __init__(self, taskfile: str, store: Store, argv: Sequence[str] = (), refresh: float = 1.0,
                 slowest: int = 10):
        self.taskfile = os.path.abspath(taskfile)
        self.store = store
        self.argv = tuple(argv)
        self.refresh = refresh
        self.slowest = slowest
        self.lock = threading.RLock()  # the loaded taskfile, and actions that change the store
        # One lock per view: a request waits for the reading of its view already under way (and
        # shares it), while a slow report does not hold up the overview.
        self._view_locks = {key: threading.Lock() for key in ("status", "overview", "report", "graph")}
        self._loaded: Loaded | None = None
        self._loaded_mtime: float | None = None
        self._cache: dict[str, tuple[float, Any]] = {}
        self._history: deque[tuple[float, int, dict[str, int]]] = deque()

    # -- the task graph ---------------------------------------------------

    def loaded(self) -> Loaded:
        with self.lock:
            mtime = _mtime(self.taskfile)
            if (self._loaded is None or mtime != self._loaded_mtime
                    or (not self._loaded.complete and self._loaded.barrier_open())):
                self._loaded = load(self.taskfile, self.store, self.argv)
                self._loaded_mtime = mtime
            return self._loaded

    def invalidate_cache(self) -> None:
        """After an action changed the store: the next request reads it again."""
        self._cache.clear()

    def _cached(self, key: str, max_age: float, make) -> Any:
        with self._view_locks[key]:
            hit = self._cache.get(key)
            now = time.monotonic()
            if hit is not None and now - hit[0] < max_age:
                return hit[1]
            value = make()
            self._cache[key] = (time.monotonic(), value)
            return value

    # -- status -----------------------------------------------------------

    def status_report(self) -> StatusReport:
        return self._cached("status", self.refresh, self._compute_status)

    def _compute_status(self) -> StatusReport:
        loaded = self.loaded()
        with self.lock:  # not while an action changes the store
            report = compute(loaded.tasks, self.store, loaded.complete, details=True)
        now = time.monotonic()
        per_name = {name: c["finished"] for name, c in report.counts.items()}
        self._history.append((now, report.total["finished"], per_name))
        while len(self._history) > 2 and now - self._history[1][0] > RATE_WINDOW:
            self._history.popleft()
        return report

    def status_json_text(self) -> str:
        """Exactly what `taskflow status --json` prints."""
        return dumps(self.status_report()) + "\n"

    def overview(self) -> dict:
        """Everything the live page shows but the report and the graph."""
        return self._cached("overview", self.refresh, lambda: self._overview(self.status_report()))

    def _rates(self) -> tuple[float | None, dict[str, float | None]]:
        if len(self._history) < 2:
            return None, {}
        (t0, f0, names0), (t1, f1, names1) = self._history[0], self._history[-1]
        minutes = (t1 - t0) / 60.0
        if minutes <= 0:
            return None, {}
        return (f1 - f0) / minutes, {n: (names1[n] - names0.get(n, 0)) / minutes for n in names1}

    def _overview(self, report: StatusReport) -> dict:
        rate, rates = self._rates()

        def eta(left: int, r: float | None) -> float | None:
            if not left:
                return 0.0
            return 60.0 * left / r if r else None

        names = []
        for name, c in report.counts.items():
            total = sum(c.values())
            left = total - c["finished"] - c["failed"]
            names.append({"name": name, "counts": c, "total": total, "rate_per_min": rates.get(name),
                          "eta_seconds": eta(left, rates.get(name))})
        t = report.total
        left = sum(t.values()) - t["finished"] - t["failed"]

        def claim(r, stale: bool) -> dict:
            o = r.lock.owner
            return {"name": r.task.name, "hash": r.task.hash, "host": o.get("host"), "pid": o.get("pid"),
                    "worker": o.get("worker"), "seconds": r.seconds, "stale": stale,
                    "reason": r.lock.reason if stale else ""}

        failed = [{"name": task.name, "hash": task.hash, "type": rec.get("type"), "message": rec.get("message"),
                   "traceback": rec.get("traceback", ""), "host": rec.get("host"), "worker": rec.get("worker"),
                   "time": rec.get("time")} for task, rec in report.failed[:FAILURES_SHOWN]]
        shown_jobs = jobs.summary(self.store, jobs.live_workers(report))
        return {
            "taskfile": self.taskfile,
            "store": str(self.store),
            "time": time.time(),
            "status": report.to_json(),
            "names": names,
            "total": t,
            "tasks": sum(t.values()),
            "rate_per_min": rate,
            "eta_seconds": eta(left, rate),
            "running": [claim(r, False) for r in report.running],
            "stale": [claim(r, True) for r in report.stale],
            "failed": failed,
            "failed_total": t["failed"],
            "jobs": [{"job": a.record.describe(), "job_id": a.record.job_id, "scheduler": a.record.scheduler,
                      "active": len(a.active), "workers": a.record.workers, "line": a.line()}
                     for a in shown_jobs],
            "job_lines": jobs.status_lines(self.store, report),
            "changed": report.changed,
            "complete": report.complete,
            "stop": self.store.stop_requested(),
            "table": report.table(),
        }

    # -- report, graph, one task ------------------------------------------

    def report(self) -> dict:
        """What `taskflow report --json` prints, plus histograms of run time and peak memory per name."""
        from ..report import report as make_report

        def make() -> dict:
            loaded = self.loaded()
            rep = make_report(loaded.tasks, self.store, self.slowest)
            data = rep.to_json()
            data["histograms"] = {name: {"seconds": r.histogram("durations"), "rss_bytes": r.histogram("rss")}
                                  for name, r in rep.names.items()}
            data["table"] = rep.table()
            return data
        return self._cached("report", max(self.refresh, 5.0), make)

    def graph(self) -> dict:
        """The picture `taskflow graph` draws, as SVG text; or why there is none."""
        from ..errors import TaskflowError
        from ..graph import collapsed_dot, write

        def make() -> dict:
            loaded = self.loaded()
            source = collapsed_dot(loaded.tasks, self.status_report())
            if len(self.status_report().counts) > GRAPH_NAMES_LIMIT:
                return {"svg": None, "dot": source,
                        "note": f"{len(self.status_report().counts)} task names are too many to draw "
                                f"(limit {GRAPH_NAMES_LIMIT}); `taskflow graph FILE -o graph.dot` writes the graph"}
            with tempfile.TemporaryDirectory(prefix="taskflow-web-") as tmp:
                out = os.path.join(tmp, "graph.svg")
                try:
                    write(source, out)
                except TaskflowError as e:
                    return {"svg": None, "dot": source, "note": str(e).replace(tmp + os.sep, "")}
                with open(out, encoding="utf-8") as f:
                    svg = f.read()
            return {"svg": svg[svg.find("<svg"):], "dot": source, "note": ""}
        return self._cached("graph", max(self.refresh, 5.0), make)

    def show(self, target: str) -> str:
        """What `taskflow show FILE TARGET` prints."""
        from ..report import describe, find

        with self.lock:
            loaded = self.loaded()
            return "\n\n".join(describe(t, loaded.tasks, self.store) for t in find(loaded.tasks, target))


GRAPH_NAMES_LIMIT = 300
