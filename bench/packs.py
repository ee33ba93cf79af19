#!/usr/bin/env python3
"""Small results packed or one file each: 10,000 trivial tasks, files in the store, value() of them all.

    python3 bench/packs.py --before main --after HEAD --where /dev/shm/tfpacks,/var/tmp/tfpacks

For each commit (extracted with `git archive`, byte-compiled, first on PYTHONPATH) and each
folder: `taskflow execute` of 10,000 trivial tasks from an empty store, with TASKFLOW_PACK=1 (wall time, interpreter
start included), the files and folders the store then holds, and `taskflow.value()` of the
10,000 results in a fresh process (time of the call alone). Commits and folders are interleaved
in every repeat; medians are reported. Standard library only.
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

TASKFILE = """from taskflow import TaskGenerator

@TaskGenerator
def double(x):
    return 2 * x

results = [double(i) for i in range({n})]
"""

VALUE = """import time, taskflow
ns = taskflow.init({taskfile!r})
t = time.perf_counter()
v = taskflow.value(ns.results)
print(time.perf_counter() - t)
assert v == [2 * i for i in range({n})]
"""


def extract(rev: str, into: str) -> str:
    root = os.path.join(into, f"code-{rev.replace('/', '_')}")
    os.makedirs(root)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    archive = subprocess.run(["git", "-C", repo, "archive", rev, "taskflow"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", root], input=archive, check=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", root], check=True)
    return root


def count(store: str) -> tuple[int, int]:
    files = dirs = 0
    for _, ds, fs in os.walk(store):
        files += len(fs)
        dirs += len(ds)
    return files, dirs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", default="main")
    p.add_argument("--after", default="HEAD")
    p.add_argument("--where", default="/dev/shm/tfpacks,/var/tmp/tfpacks", help="comma-separated folders")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--json")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="tfpacks-code-")
    codes = {rev: extract(rev, work) for rev in (args.before, args.after)}
    wheres = [w for w in args.where.split(",") if w]
    runs: dict = {}
    try:
        for r in range(args.repeat):
            for where in wheres:
                for rev, code in (list(codes.items())[::-1] if r % 2 else codes.items()):
                    folder = os.path.join(where, rev.replace("/", "_"))
                    shutil.rmtree(folder, ignore_errors=True)
                    os.makedirs(folder)
                    taskfile = os.path.join(folder, "taskfile.py")
                    with open(taskfile, "w") as f:
                        f.write(TASKFILE.format(n=args.n))
                    env = dict(os.environ, PYTHONPATH=code, TASKFLOW_PACK="1")  # ignored by code without packs
                    os.sync()
                    t = time.perf_counter()
                    subprocess.run([sys.executable, "-m", "taskflow", "execute", taskfile, "-q"], check=True,
                                   env=env, cwd=folder)
                    wall = time.perf_counter() - t
                    files, dirs = count(os.path.join(folder, "taskfile.taskflow"))
                    value = float(subprocess.run([sys.executable, "-c", VALUE.format(taskfile=taskfile, n=args.n)],
                                                 check=True, env=env, cwd=folder, capture_output=True,
                                                 text=True).stdout)
                    one = runs.setdefault(where, {}).setdefault(rev, {"execute": [], "value": [], "files": files,
                                                                      "dirs": dirs})
                    one["execute"].append(wall)
                    one["value"].append(value)
                    print(f"{where} {rev}: execute {wall:.2f} s, value() {value:.3f} s, {files} files, "
                          f"{dirs} folders", file=sys.stderr)
                    shutil.rmtree(folder, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"| where | code | execute, median of {args.repeat} | files (folders) in the store | "
          f"value() of {args.n:,}, median |")
    print("|---|---|---|---|---|")
    for where, revs in runs.items():
        for rev, one in revs.items():
            print(f"| {where} | {rev} | {statistics.median(one['execute']):.2f} s | {one['files']} ({one['dirs']}) | "
                  f"{statistics.median(one['value']) * 1000:.0f} ms |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs, f, indent=1)


if __name__ == "__main__":
    main()
