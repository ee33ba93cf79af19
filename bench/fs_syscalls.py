#!/usr/bin/env python3
"""Filesystem system calls per task of commits side by side, with and without packs.

    python3 bench/fs_syscalls.py main HEAD --workdir /dev/shm/fscalls -n 10000

For each commit (extracted with `git archive`, as bench/run.py does) and for
TASKFLOW_PACK=0 and 1: `strace -f -c` of one `taskflow execute -q` of n
trivial tasks from an empty store, then of the same command on the finished
store (start, imports, taskfile load and a look at the store). Reports the
filesystem calls (bench/run.py's FS_CALLS) per task, all of them and net of
the second run, the net count of each call, and the files the store holds.
Counts, not times: they do not depend on the load of the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import FS_CALLS, TRIVIAL, Bench, bench_env, pin_code, taskfile_source  # noqa: E402


def count(env: dict, folder: str, taskfile: str, name: str) -> dict[str, int]:
    out = os.path.join(folder, f"strace-{name}.txt")
    subprocess.run(["strace", "-f", "-c", "-o", out, sys.executable, "-m", "taskflow", "execute", taskfile, "-q"],
                   cwd=folder, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return Bench.parse_strace(out)


def measure(env: dict, folder: str, n: int) -> dict:
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    taskfile = os.path.join(folder, "trivial.py")
    with open(taskfile, "w") as f:
        f.write(taskfile_source("taskflow", TRIVIAL.format(n=n)))
    run = count(env, folder, taskfile, "run")
    noop = count(env, folder, taskfile, "noop")
    store = os.path.join(folder, "trivial.taskflow")
    fs = sum(run.get(c, 0) for c in FS_CALLS)
    net = {c: (run.get(c, 0) - noop.get(c, 0)) / n for c in FS_CALLS if run.get(c, 0) - noop.get(c, 0)}
    return {"fs_per_task": round(fs / n, 3), "net_fs_per_task": round(sum(net.values()), 3),
            "net_by_call": {c: round(v, 3) for c, v in net.items() if abs(v) >= 0.001},
            "files_in_store": sum(len(files) for _, _, files in os.walk(store))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("revs", nargs="+", help="commits to compare")
    ap.add_argument("--workdir", default="/dev/shm/taskflow-fscalls")
    ap.add_argument("-n", type=int, default=10_000, help="trivial tasks (default 10,000)")
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args()
    if shutil.which("strace") is None:
        sys.exit("strace not found (apt-get install -y strace)")
    results: dict = {}
    for rev in args.revs:
        env = bench_env()
        root = os.path.join(args.workdir, rev.replace("/", "_"))
        code = pin_code(sys.executable, root, "head", env, rev)
        for pack in ("0", "1"):
            got = measure({**env, "TASKFLOW_PACK": pack}, os.path.join(root, f"pack{pack}"), args.n)
            results.setdefault(rev, {"commit": code["commit"][:10]})[f"TASKFLOW_PACK={pack}"] = got
            print(f"{rev} ({code['commit'][:10]}) TASKFLOW_PACK={pack}: {got['fs_per_task']} fs calls/task "
                  f"({got['net_fs_per_task']} net of start-up), {got['files_in_store']} files in the store; "
                  f"net by call: {got['net_by_call']}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
