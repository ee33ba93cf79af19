#!/usr/bin/env python3
"""Two commits of taskflow side by side: did a change make it slower?

    python3 bench/revs.py 8471e60 HEAD --workdir /dev/shm/revs --repeat 7

Extracts each commit with `git archive` (as bench/run.py does), then runs the
same workloads with both, interleaved, starting at a different commit each
repeat: 10,000 trivial tasks with 1 worker, `status` and a no-op `execute` on
the finished graph, `status` on a graph of `--n-undone` tasks none executed
(declaring and hashing them is most of it), 8 x 50 MB arrays plus their sum, and the checked
`value()` of a 200 MB array in a fresh process (`--only` picks some of
these). Reports medians of wall time and of CPU time (user + system of the
processes run), the ratio new/old, and the spread (max/min) of each so a
difference can be judged against the noise. Standard library only.

    python3 bench/revs.py 213a3d3 HEAD --only numpy,load200 --workdir /dev/shm/revs --python /tmp/tfvenv/bin/python
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import BIG, NUMPY, TRIVIAL, bench_env, pin_code, taskfile_source  # noqa: E402

WORKLOADS = ("trivial", "status", "noop", "undone", "numpy", "load200")

# The checked load of the 200 MB result, timed inside the process: (wall, CPU) seconds.
LOAD_BIG = """
import json, resource, sys, time
import taskflow
ns = taskflow.init(sys.argv[1])
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
a = taskflow.value(ns.result)
t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
assert a.shape == (26_214_400,)
print(json.dumps([t1 - t0, r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime]))
"""


def extract(rev: str, root: str, python: str) -> dict:
    """The environment that runs commit `rev`, extracted under `root`."""
    env = bench_env()
    os.makedirs(root, exist_ok=True)
    code = pin_code(python, root, "head", env, rev)
    env["_commit"] = code["commit"][:10]
    return env


def cpu_of_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(cmd: list[str], cwd: str, env: dict) -> tuple[float, float]:
    """(wall, CPU) seconds of a command and every process it waited for."""
    c0, t0 = cpu_of_children(), time.perf_counter()
    with open(os.path.join(cwd, "last.log"), "wb") as log:
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    elapsed, cpu = time.perf_counter() - t0, cpu_of_children() - c0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}: see {cwd}/last.log")
    return elapsed, cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--numpy-repeat", type=int, default=3)
    p.add_argument("--n", type=int, default=10_000, help="trivial tasks [10000]")
    p.add_argument("--n-undone", type=int, default=100_000, help="tasks of the graph `status` counts, none executed [100000]")
    p.add_argument("--workdir", help="where to run [a new temp folder]")
    p.add_argument("--json", help="write every run here")
    p.add_argument("--python", default=sys.executable, help="the Python that runs taskflow [this one]")
    p.add_argument("--only", default=",".join(WORKLOADS), help=f"some of {','.join(WORKLOADS)} [all]")
    args = p.parse_args()
    only = set(args.only.split(","))
    if only - set(WORKLOADS):
        p.error(f"unknown workloads: {', '.join(sorted(only - set(WORKLOADS)))}")

    root = args.workdir or tempfile.mkdtemp(prefix="taskflow-revs-")
    envs = {label: extract(rev, os.path.join(root, label), args.python)
            for label, rev in (("old", args.old), ("new", args.new))}
    files: dict[tuple[str, str], str] = {}
    for label in envs:
        for name, body in (("trivial", TRIVIAL.format(n=args.n)), ("numpy", NUMPY), ("big", BIG),
                           ("undone", TRIVIAL.format(n=args.n_undone))):
            folder = os.path.join(root, label, name)
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, f"tf_{name}.py")
            with open(path, "w") as f:
                f.write(taskfile_source("taskflow", body))
            files[label, name] = path

    def store(path: str) -> str:
        return path[:-3] + ".taskflow"

    def tf(label: str, sub: str, name: str) -> tuple[float, float]:
        path = files[label, name]
        return run([args.python, "-m", "taskflow", sub, os.path.basename(path)], os.path.dirname(path), envs[label])

    def load_big(label: str) -> tuple[float, float]:
        path = files[label, "big"]
        out = subprocess.run([args.python, "-c", LOAD_BIG, os.path.basename(path)], cwd=os.path.dirname(path),
                             env=envs[label], capture_output=True, text=True, check=True).stdout
        wall, cpu = json.loads(out.strip().splitlines()[-1])
        return wall, cpu

    def fresh(label: str, sub: str, name: str) -> tuple[float, float]:
        shutil.rmtree(store(files[label, name]), ignore_errors=True)
        os.sync()
        return tf(label, sub, name)

    runs: dict[str, dict[str, list[float]]] = {}
    cpus: dict[str, dict[str, list[float]]] = {}

    def measure(metric: str, fn, reps: int) -> None:
        order = list(envs)
        for rep in range(reps):
            for label in (order if rep % 2 == 0 else order[::-1]):
                wall, cpu = fn(label)
                runs.setdefault(metric, {}).setdefault(label, []).append(wall)
                cpus.setdefault(metric, {}).setdefault(label, []).append(cpu)
                print(f"{metric} {label} {rep + 1}/{reps}: {wall:.3f} s, CPU {cpu:.3f} s", file=sys.stderr)

    if "trivial" in only:
        measure("trivial execute, 1 worker", lambda label: fresh(label, "execute", "trivial"), args.repeat)
    if only & {"status", "noop"}:
        for label in envs:
            tf(label, "execute", "trivial")   # a finished graph for the next two
    if "status" in only:
        measure("status, finished graph", lambda label: tf(label, "status", "trivial"), args.repeat)
    if "noop" in only:
        measure("no-op execute, finished graph", lambda label: tf(label, "execute", "trivial"), args.repeat)
    if "undone" in only:
        measure(f"status, {args.n_undone} tasks none executed",
                lambda label: tf(label, "status", "undone"), args.repeat)
    if "numpy" in only:
        measure("numpy 8 x 50 MB + sum", lambda label: fresh(label, "execute", "numpy"), args.numpy_repeat)
    if "load200" in only:
        for label in envs:
            fresh(label, "execute", "big")   # each commit loads what it wrote
        measure("checked value() of 200 MB (in process)", load_big, args.numpy_repeat)
    for label in envs:
        for name in ("numpy", "big"):
            shutil.rmtree(store(files[label, name]), ignore_errors=True)

    old, new = envs["old"]["_commit"], envs["new"]["_commit"]
    print(f"\n{root}: old {old}, new {new}, medians of {args.repeat} ({args.numpy_repeat} for numpy)\n")
    print(f"| workload | old {old} | new {new} | new/old | spread old | spread new | CPU old | CPU new | CPU new/old |")
    print("|---|---|---|---|---|---|---|---|---|")
    for metric, by in runs.items():
        mo, mn = statistics.median(by["old"]), statistics.median(by["new"])
        spread = {k: max(v) / min(v) for k, v in by.items()}
        co, cn = (statistics.median(cpus[metric][k]) for k in ("old", "new"))
        print(f"| {metric} | {mo:.3f} s | {mn:.3f} s | {mn / mo:.2f} | {spread['old']:.2f} | {spread['new']:.2f} "
              f"| {co:.3f} s | {cn:.3f} s | {cn / co:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"old": old, "new": new, "root": root, "runs": runs, "cpu": cpus}, f, indent=1)


if __name__ == "__main__":
    main()
