#!/usr/bin/env python3
"""Benchmark: `execute --jobs 2` against `execute --ipp` on 2 ipyparallel engines, in one run.

Two workloads, each run by both, interleaved, medians of --repeat runs, a fresh store each time:

- trivial: 10,000 tasks that return 2 * x (what taskflow itself costs per task);
- sleep: 40 tasks of 0.1 s (2 s of work for 2 processes: what is left is overhead).

Also timed: the same command on a graph of one such task (the start: interpreter, taskfile,
for --ipp importing ipyparallel and connecting to the controller), so that the overhead per
task can be given without it:

    overhead per task = (wall - one-task wall - (n * s / 2 - s)) / (n - 1)

for n tasks of s seconds on 2 processes, wall times being medians.

Starts its own ipcontroller and 2 ipengine processes on 127.0.0.1 in a profile folder of its
own (not ~/.ipython), once for the whole run, and stops them by pid. Needs ipyparallel
(pip install 'taskflow[ipp]').

    python3 bench/engines_ipp.py                      # both workloads, 3 repeats
    python3 bench/engines_ipp.py --repeat 5 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

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


class Cluster:
    """ipcontroller + N ipengine processes of this interpreter, on 127.0.0.1."""

    def __init__(self, folder: str, engines: int):
        self.profile = os.path.join(folder, "profile_bench")
        os.makedirs(self.profile)
        self.connection_file = os.path.join(self.profile, "security", "ipcontroller-client.json")
        self.engines = engines
        self.procs: list[subprocess.Popen] = []
        self.log = open(os.path.join(folder, "cluster.log"), "wb")

    def _spawn(self, module: str, *args: str) -> None:
        self.procs.append(subprocess.Popen([sys.executable, "-m", module, f"--profile-dir={self.profile}", *args],
                                           stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True))

    def start(self) -> float:
        import ipyparallel

        t0 = time.perf_counter()
        self._spawn("ipyparallel.controller", "--ip=127.0.0.1", "--log-level=WARN")
        engine_file = os.path.join(self.profile, "security", "ipcontroller-engine.json")
        deadline = time.monotonic() + 60
        while not (os.path.exists(engine_file) and os.path.exists(self.connection_file)):
            if time.monotonic() > deadline or self.procs[0].poll() is not None:
                raise SystemExit("ipcontroller did not start")
            time.sleep(0.05)
        time.sleep(0.2)  # written, not necessarily complete: let the controller finish the file
        for _ in range(self.engines):
            self._spawn("ipyparallel.engine", "--log-level=WARN")
        client = ipyparallel.Client(self.connection_file, timeout=30)
        try:
            client.wait_for_engines(self.engines, timeout=60)
        finally:
            client.close()
        return time.perf_counter() - t0

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
        self.log.close()


def taskflow(*args: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "taskflow", *args], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"taskflow {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=10_000, help="trivial tasks")
    parser.add_argument("--sleep-tasks", type=int, default=40)
    parser.add_argument("--sleep", type=float, default=0.1, help="seconds each sleep task sleeps")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="taskflow-bench-engines-")
    cluster = Cluster(work, engines=2)
    try:
        started = cluster.start()
        print(f"ipyparallel cluster (ipcontroller + 2 engines) up in {started:.1f} s")
        workloads = {"trivial": (TRIVIAL, {}, args.tasks, 0.0),
                     "sleep": (SLEEP, {"seconds": args.sleep}, args.sleep_tasks, args.sleep)}
        modes = {"jobs2": ["--jobs", "2"], "ipp2": ["--ipp", cluster.connection_file]}
        figures: dict[str, dict[str, dict[str, list[float]]]] = {}
        for name, (source, values, tasks, _) in workloads.items():
            files = {}
            for kind, n in (("run", tasks), ("one", 1)):
                files[kind] = os.path.join(work, f"{name}-{kind}.py")
                with open(files[kind], "w") as f:
                    f.write(source.format(n=n, **values))
            figures[name] = {mode: {"run": [], "one": []} for mode in modes}
            for r in range(args.repeat):
                for mode, flags in modes.items():
                    for kind, taskfile in files.items():
                        store = os.path.join(work, f"{name}-{mode}-{kind}-{r}.taskflow")
                        figures[name][mode][kind].append(taskflow("execute", taskfile, "--store", store, "-q",
                                                                  *flags))
                        shutil.rmtree(store)
        report: dict[str, dict[str, dict[str, float]]] = {}
        for name, (_, _, tasks, seconds) in workloads.items():
            report[name] = {}
            for mode in modes:
                run = statistics.median(figures[name][mode]["run"])
                one = statistics.median(figures[name][mode]["one"])
                per_task = (run - one - (tasks * seconds / 2 - seconds)) / (tasks - 1)
                report[name][mode] = {"wall": run, "one_task": one, "overhead_per_task_ms": per_task * 1e3}
                print(f"{name:<8} {mode:<6} wall {run:7.2f} s   one task {one:5.2f} s   "
                      f"overhead per task {per_task * 1e3:7.2f} ms")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"tasks": args.tasks, "sleep_tasks": args.sleep_tasks, "sleep": args.sleep,
                           "repeat": args.repeat, "cluster_start_seconds": started, "figures": figures,
                           "medians": report}, f, indent=1)
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
