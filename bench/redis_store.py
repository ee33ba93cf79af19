#!/usr/bin/env python3
"""Benchmark: a Redis store against a folder store, in one run.

Two workloads, each on both stores, interleaved, medians of --repeat runs:

- trivial: `taskflow execute` of 10,000 trivial tasks (one worker, a fresh store each time);
- status100k: `taskflow status` of a graph of 100,000 tasks, every one finished (the stores are
  filled once, by saving the results directly, which is what a run would leave).

Starts its own redis-server on a free port of 127.0.0.1 (no persistence), unless --url names
one. Needs redis-server and the redis package (pip install 'taskflow[redis]').

    python3 bench/redis_store.py                      # both workloads, 3 repeats
    python3 bench/redis_store.py --repeat 5 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(folder: str) -> tuple[str, str]:
    port = free_port()
    pidfile = os.path.join(folder, "redis.pid")
    subprocess.run(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--daemonize", "yes", "--pidfile", pidfile, "--dir", folder,
                    "--logfile", os.path.join(folder, "redis.log")], check=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            if os.path.exists(pidfile):
                return f"redis://127.0.0.1:{port}/0", pidfile
        except OSError:
            time.sleep(0.02)
    raise SystemExit("redis-server did not start")


def stop_redis(pidfile: str) -> None:
    try:
        with open(pidfile) as f:
            os.kill(int(f.read().strip()), signal.SIGTERM)
    except (OSError, ValueError):
        pass


def taskflow(*args: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "taskflow", *args], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"taskflow {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return seconds


def fill(store_value: str, taskfile: str) -> None:
    """Save every task's result directly: what a finished run leaves, without running 100,000 tasks."""
    code = ("import sys, taskflow.taskfile as t; from taskflow.stores import open_store; "
            "s = open_store(sys.argv[2]); loaded = t.load(sys.argv[1], s); "
            "[s.save_result(k.hash, 2 * i, {'name': k.name, 'hash': k.hash}) for i, k in enumerate(loaded.tasks)]")
    subprocess.run([sys.executable, "-c", code, taskfile, store_value], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--url", help="a Redis store address to use instead of starting a server")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--status-tasks", type=int, default=100_000)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="taskflow-bench-redis-")
    pidfile = None
    try:
        url = args.url
        if url is None:
            url, pidfile = start_redis(work)
        sep = "&" if "?" in url else "?"
        figures: dict[str, dict[str, list[float]]] = {"trivial": {"folder": [], "redis": []},
                                                     "status100k": {"folder": [], "redis": []}}
        small = os.path.join(work, "trivial.py")
        with open(small, "w") as f:
            f.write(TRIVIAL.format(n=args.tasks))
        for r in range(args.repeat):
            folder = os.path.join(work, f"trivial-{r}.taskflow")
            figures["trivial"]["folder"].append(taskflow("execute", small, "--store", folder, "-q"))
            figures["trivial"]["redis"].append(taskflow("execute", small, "--store", f"{url}{sep}prefix=bench-t{r}",
                                                        "-q"))
            shutil.rmtree(folder)
        big = os.path.join(work, "status.py")
        with open(big, "w") as f:
            f.write(TRIVIAL.format(n=args.status_tasks))
        folder = os.path.join(work, "status.taskflow")
        redis_store = f"{url}{sep}prefix=bench-status"
        fill(folder, big)
        fill(redis_store, big)
        for _ in range(args.repeat):
            figures["status100k"]["folder"].append(taskflow("status", big, "--store", folder))
            figures["status100k"]["redis"].append(taskflow("status", big, "--store", redis_store))
        report = {}
        for name, by_store in figures.items():
            row = {kind: statistics.median(times) for kind, times in by_store.items()}
            report[name] = {**row, "redis/folder": row["redis"] / row["folder"]}
            print(f"{name:<12} folder {row['folder']:7.2f} s   redis {row['redis']:7.2f} s   "
                  f"redis/folder {row['redis'] / row['folder']:.2f}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"tasks": args.tasks, "status_tasks": args.status_tasks, "repeat": args.repeat,
                           "figures": figures, "medians": report}, f, indent=1)
    finally:
        if pidfile:
            stop_redis(pidfile)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
