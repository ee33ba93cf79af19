#!/usr/bin/env python3
"""Two commits of taskflow side by side: did a change make it slower?

    python3 bench/revs.py 8471e60 HEAD --workdir /dev/shm/revs --repeat 7

Extracts each commit with `git archive` (as bench/run.py does), then runs the
same workloads with both, interleaved, starting at a different commit each
repeat: 10,000 trivial tasks with 1 worker, `status` and a no-op `execute` on
the finished graph, and 8 x 50 MB arrays plus their sum. Reports medians, the
ratio new/old, and the spread (max/min) of each so a difference can be judged
against the noise. Standard library only.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import NUMPY, TRIVIAL, bench_env, pin_code, taskfile_source  # noqa: E402


def extract(rev: str, root: str) -> dict:
    """The environment that runs commit `rev`, extracted under `root`."""
    env = bench_env()
    os.makedirs(root, exist_ok=True)
    code = pin_code(sys.executable, root, "head", env, rev)
    env["_commit"] = code["commit"][:10]
    return env


def run(cmd: list[str], cwd: str, env: dict) -> float:
    t0 = time.perf_counter()
    with open(os.path.join(cwd, "last.log"), "wb") as log:
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}: see {cwd}/last.log")
    return elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--numpy-repeat", type=int, default=3)
    p.add_argument("--n", type=int, default=10_000, help="trivial tasks [10000]")
    p.add_argument("--workdir", help="where to run [a new temp folder]")
    p.add_argument("--json", help="write every run here")
    args = p.parse_args()

    root = args.workdir or tempfile.mkdtemp(prefix="taskflow-revs-")
    envs = {label: extract(rev, os.path.join(root, label)) for label, rev in (("old", args.old), ("new", args.new))}
    files: dict[tuple[str, str], str] = {}
    for label in envs:
        for name, body in (("trivial", TRIVIAL.format(n=args.n)), ("numpy", NUMPY)):
            folder = os.path.join(root, label, name)
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, f"tf_{name}.py")
            with open(path, "w") as f:
                f.write(taskfile_source("taskflow", body))
            files[label, name] = path

    def store(path: str) -> str:
        return path[:-3] + ".taskflow"

    def tf(label: str, sub: str, name: str) -> float:
        path = files[label, name]
        return run([sys.executable, "-m", "taskflow", sub, os.path.basename(path)], os.path.dirname(path), envs[label])

    def fresh(label: str, sub: str, name: str) -> float:
        shutil.rmtree(store(files[label, name]), ignore_errors=True)
        os.sync()
        return tf(label, sub, name)

    runs: dict[str, dict[str, list[float]]] = {}

    def measure(metric: str, fn, reps: int) -> None:
        order = list(envs)
        for rep in range(reps):
            for label in (order if rep % 2 == 0 else order[::-1]):
                value = fn(label)
                runs.setdefault(metric, {}).setdefault(label, []).append(value)
                print(f"{metric} {label} {rep + 1}/{reps}: {value:.3f} s", file=sys.stderr)

    measure("trivial execute, 1 worker", lambda label: fresh(label, "execute", "trivial"), args.repeat)
    for label in envs:
        tf(label, "execute", "trivial")   # a finished graph for the next two
    measure("status, finished graph", lambda label: tf(label, "status", "trivial"), args.repeat)
    measure("no-op execute, finished graph", lambda label: tf(label, "execute", "trivial"), args.repeat)
    measure("numpy 8 x 50 MB + sum", lambda label: fresh(label, "execute", "numpy"), args.numpy_repeat)
    for label in envs:
        shutil.rmtree(store(files[label, "numpy"]), ignore_errors=True)

    old, new = envs["old"]["_commit"], envs["new"]["_commit"]
    print(f"\n{root}: old {old}, new {new}, medians of {args.repeat} ({args.numpy_repeat} for numpy)\n")
    print(f"| workload | old {old} | new {new} | new/old | spread old | spread new |")
    print("|---|---|---|---|---|---|")
    for metric, by in runs.items():
        mo, mn = statistics.median(by["old"]), statistics.median(by["new"])
        spread = {k: max(v) / min(v) for k, v in by.items()}
        print(f"| {metric} | {mo:.3f} s | {mn:.3f} s | {mn / mo:.2f} | {spread['old']:.2f} | {spread['new']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"old": old, "new": new, "root": root, "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
