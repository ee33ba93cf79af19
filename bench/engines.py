#!/usr/bin/env python3
"""Benchmark: the same taskfiles on `execute --jobs 2`, `--dask local:2` and `--ipp` with 2 engines, side by side.

Workloads (bench/README.md, "Engines"): 10,000 trivial tasks, and 40 tasks of 0.1 s each; and one
trivial task, whose time is each engine's fixed cost (starting processes or a cluster, loading the
taskfile). Every run starts from an empty store in a fresh temporary folder; the engines take turns
within each repeat, so that a busy machine slows them alike. Reported: the median wall time of each
(engine, workload), and the overhead per task: (median - fixed cost - the work itself, spread over
2 workers) / tasks.

    python3 bench/engines.py                      # 3 repeats
    python3 bench/engines.py --repeat 5 --json bench/results/engines.json

Adding an engine is one entry in ENGINES: its command-line arguments, and a context manager that
starts whatever it needs for the runs (and stops it after). `ipp2` starts an ipcontroller and 2
ipengine processes of its own on 127.0.0.1 (ippcluster.Cluster), stopped by pid after the runs.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

TRIVIAL = """
from taskflow import TaskGenerator

@TaskGenerator
def double(x):
    return 2 * x

results = [double(i) for i in range({n})]
"""

SLEEP = """
import time
from taskflow import TaskGenerator

@TaskGenerator
def nap(i):
    time.sleep({seconds})
    return i

results = [nap(i) for i in range({n})]
"""

N_TRIVIAL = 10_000

# name: (taskfile source, tasks, seconds of work per task)
WORKLOADS = {
    "one": (TRIVIAL.format(n=1), 1, 0.0),
    "trivial": (TRIVIAL.format(n=N_TRIVIAL), N_TRIVIAL, 0.0),
    "sleep": (SLEEP.format(n=40, seconds=0.1), 40, 0.1),
}
WORKERS = 2


@contextlib.contextmanager
def nothing() -> Iterator[None]:
    yield


# The ipyparallel cluster's folder, named before it starts so that its connection file can be an argument.
_IPP_FOLDER = os.path.join(tempfile.gettempdir(), f"taskflow-engines-ipp-{os.getpid()}")


@contextlib.contextmanager
def ipp_cluster() -> Iterator[None]:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from ippcluster import Cluster

    os.makedirs(_IPP_FOLDER)
    cluster = Cluster(_IPP_FOLDER, WORKERS)
    try:
        print(f"ipyparallel cluster (ipcontroller + {WORKERS} engines) up in {cluster.start():.1f} s",
              file=sys.stderr, flush=True)
        yield
    finally:
        cluster.stop()
        shutil.rmtree(_IPP_FOLDER, ignore_errors=True)


# name: (arguments of `taskflow execute`, what runs around all its runs)
ENGINES: dict[str, tuple[list[str], Callable[[], contextlib.AbstractContextManager]]] = {
    "jobs2": (["--jobs", str(WORKERS)], nothing),
    "dask-local2": (["--dask", f"local:{WORKERS}"], nothing),
    "ipp2": (["--ipp", os.path.join(_IPP_FOLDER, "profile_bench", "security", "ipcontroller-client.json")],
             ipp_cluster),
}


def run_once(engine_args: list[str], source: str) -> float:
    folder = tempfile.mkdtemp(prefix="taskflow-engines-")
    try:
        path = os.path.join(folder, "taskfile.py")
        with open(path, "w") as f:
            f.write(source)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "taskflow", "execute", path, "-q", *engine_args],
                              cwd=folder, capture_output=True, text=True, timeout=1800)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(engine_args)}: exit {proc.returncode}\n{proc.stderr}")
        return seconds
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated, of: " + ", ".join(ENGINES))
    parser.add_argument("--json", metavar="FILE", help="also write the measurements here")
    args = parser.parse_args()
    engines = args.engines.split(",")
    times: dict[str, dict[str, list[float]]] = {e: {w: [] for w in WORKLOADS} for e in engines}
    with contextlib.ExitStack() as stack:
        for e in engines:
            stack.enter_context(ENGINES[e][1]())
        for r in range(args.repeat):
            for w, (source, _, _) in WORKLOADS.items():
                for e in engines if r % 2 == 0 else reversed(engines):
                    seconds = run_once(ENGINES[e][0], source)
                    times[e][w].append(seconds)
                    print(f"repeat {r + 1}: {e:12} {w:8} {seconds:7.2f}s", file=sys.stderr, flush=True)
    rows = []
    for e in engines:
        fixed = statistics.median(times[e]["one"])
        for w, (_, n, work) in WORKLOADS.items():
            median = statistics.median(times[e][w])
            per_task = (median - fixed - n * work / WORKERS) / n if w != "one" else None
            rows.append({"engine": e, "workload": w, "tasks": n, "median_s": round(median, 3),
                         "runs_s": [round(t, 3) for t in times[e][w]],
                         "overhead_per_task_ms": None if per_task is None else round(per_task * 1000, 3)})
    print(f"{'engine':12} {'workload':8} {'tasks':>6} {'median':>8}  overhead/task")
    for row in rows:
        per = "" if row["overhead_per_task_ms"] is None else f"{row['overhead_per_task_ms']:.2f} ms"
        print(f"{row['engine']:12} {row['workload']:8} {row['tasks']:>6} {row['median_s']:>7.2f}s  {per}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"when": time.strftime("%Y-%m-%dT%H:%M:%S"), "python": platform.python_version(),
                       "cpus": os.cpu_count(), "load": os.getloadavg(), "repeat": args.repeat, "rows": rows}, f,
                      indent=1)


if __name__ == "__main__":
    main()
