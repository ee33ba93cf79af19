#!/usr/bin/env python3
"""Where taskflow's time goes, per task: cProfile of one `taskflow` command,
reported in microseconds per task.

    python3 bench/profile_tasks.py                           # execute 10,000 trivial tasks, 1 worker
    python3 bench/profile_tasks.py --workdir /dev/shm/tfprof # on tmpfs: CPU cost without the disk
    python3 bench/profile_tasks.py --command status          # `taskflow status` after execution
    python3 bench/profile_tasks.py --command load            # init + value of all results
    python3 bench/profile_tasks.py --workload mapreduce
    python3 bench/profile_tasks.py --workload numpy          # 8 x 50 MB arrays and their sum

Prints (1) the unprofiled wall time (median of --repeat runs) and the
interpreter + import time, (2) the per-task cost of the steps of the worker
loop (claim, result check, failure check, run, save, release, progress), and
(3) the functions with the most own time. cProfile inflates Python-level
costs (by about 1.2-1.4x here), so read the step figures as a ranking and
as upper bounds; the unprofiled wall time is the real total.
"""
from __future__ import annotations

import argparse
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the benchmark's taskfile bodies and code pinning)

# Steps of one task in the worker loop: (label, file suffix, function name).
STEPS = [
    ("load taskfile (declare + hash all tasks)", "taskflow/taskfile.py", "load"),
    ("  Task.__init__ (hashing included)", "taskflow/task.py", "__init__"),
    ("worker: prepare graph (list store)", "taskflow/worker/graph.py", "_prepare"),
    ("worker loop, per task total", "taskflow/worker/loop.py", "_loop"),
    ("  _attempt (claim, checks, hand to the executor)", "taskflow/worker/attempt.py", "_attempt"),
    ("    claim (FolderClaims.claim: O_EXCL create + JSON record)", "taskflow/stores/folder/claims.py", "claim"),
    ("      owner record (json.dumps + token)", "taskflow/stores/folder/claims.py", "record"),
    ("    has_result (stat)", "taskflow/stores/folder/results.py", "has_result"),
    ("    _failed_elsewhere (stat)", "taskflow/worker/refresh.py", "_failed_elsewhere"),
    ("  _limit_reached", "taskflow/worker/loop.py", "_limit_reached"),
    ("  batch: gather ready tasks of one name", "taskflow/worker/batching.py", "_gather"),
    ("  batch: claim (one batch file, a link per member, result and failure checks)", "taskflow/worker/batching.py", "_claim_batch"),
    ("    FolderClaims.claim_batch", "taskflow/stores/folder/batchclaims.py", "claim_batch"),
    ("  batch: run, save together, give back", "taskflow/worker/batching.py", "_complete"),
    ("    save_payloads (several results at once: into a pack where one takes them)", "taskflow/stores/folder/results.py", "save_payloads"),
    ("    give_back (a finished task's claim: one unlink)", "taskflow/stores/folder/release.py", "give_back"),
    ("  _complete (run through the executor, save, release)", "taskflow/worker/attempt.py", "_complete"),
    ("    run_task (the user function + argument lookup)", "taskflow/executors/base.py", "run_task"),
    ("      task.run", "taskflow/task.py", "run"),
    ("        _lookup (loading dependency results)", "taskflow/worker/handoff.py", "_lookup"),
    ("    _finish (save + bookkeeping + release)", "taskflow/worker/attempt.py", "_finish"),
    ("      save_payload", "taskflow/stores/folder/results.py", "save_payload"),
    ("        write_anonymous (O_TMPFILE + link)", "taskflow/stores/folder/writes.py", "write_anonymous"),
    ("        write_via_tmp (temp file + rename)", "taskflow/stores/folder/writes.py", "write_via_tmp"),
    ("        Payload.write (checksum + JSON header + writev)", "taskflow/encoding.py", "write"),
    ("      result_meta", "taskflow/stores/identity.py", "result_meta"),
    ("      release (rename + unlink claim)", "taskflow/stores/folder/claims.py", "release"),
    ("  reporter.task_started", "taskflow/progress.py", "task_started"),
    ("  reporter.task_finished (progress/log line)", "taskflow/progress.py", "task_finished"),
    ("  _refresh (journals of others)", "taskflow/worker/refresh.py", "_refresh"),
    ("status: compute", "taskflow/statusreport.py", "compute"),
    ("store.finished_hashes (listing)", "taskflow/stores/folder/results.py", "finished_hashes"),
    ("zlib.crc32 (results of older taskflow)", "~", "<built-in method zlib.crc32>"),
    ("writev", "~", "<built-in method posix.writev>"),
    ("readinto", "~", "<method 'readinto' of '_io.BufferedReader' objects>"),
    ("value()", "taskflow/results.py", "value"),
    ("  load_task", "taskflow/task.py", "load_task"),
    ("  encoding.load_value", "taskflow/encoding.py", "load_value"),
]

LOAD_SCRIPT = """
import sys, taskflow
ns = taskflow.init(sys.argv[1])
v = taskflow.value(getattr(ns, sys.argv[2]))
"""


def cum(stats: pstats.Stats, suffix: str, name: str) -> tuple[int, float, float] | None:
    """(calls, own time, cumulative time) of the function, or None."""
    for (filename, _line, func), (cc, nc, tt, ct, _callers) in stats.stats.items():
        if func == name and filename.endswith(suffix):
            return nc, tt, ct
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", choices=["trivial", "mapreduce", "sleep", "numpy"], default="trivial")
    p.add_argument("--n", type=int, default=10_000, help="tasks in the trivial workload [10000]")
    p.add_argument("--command", choices=["execute", "status", "noop", "load"], default="execute",
                   help="what to profile: execute from an empty store (default), status or a no-op execute "
                        "after execution, or init + value of all results")
    p.add_argument("--quiet", action="store_true", help="execute with -q (no per-task progress lines)")
    p.add_argument("--repeat", type=int, default=3, help="unprofiled runs for the real wall time [3]")
    p.add_argument("--top", type=int, default=25, help="functions listed by own time [25]")
    p.add_argument("--workdir", help="where to generate files [a new temp folder]")
    p.add_argument("--code", choices=["head", "worktree", "installed"], default="head",
                   help="taskflow code to profile (see run.py --code) [head]")
    p.add_argument("--rev", default="HEAD", help="commit to profile with --code head [HEAD]")
    args = p.parse_args()

    root = args.workdir or tempfile.mkdtemp(prefix="taskflow-prof-")
    os.makedirs(root, exist_ok=True)
    env = dict(os.environ)
    for k in ("TASKFLOW_STORE", "TASKFLOW_LEASE", "TASKFLOW_FSYNC"):
        env.pop(k, None)
    code = run.pin_code(sys.executable, root, args.code, env, args.rev)
    body = {"trivial": run.TRIVIAL.format(n=args.n), "mapreduce": run.MAPREDUCE, "sleep": run.SLEEP,
            "numpy": run.NUMPY}[args.workload]
    n_tasks = {"trivial": args.n, "mapreduce": 2001, "sleep": 40, "numpy": 9}[args.workload]
    attr = {"trivial": "results", "mapreduce": "ys", "sleep": "naps", "numpy": "result"}[args.workload]
    tf = os.path.join(root, f"tf_{args.workload}.py")
    with open(tf, "w") as f:
        f.write(run.taskfile_source("taskflow", body))
    store = tf[:-3] + ".taskflow"
    quiet = ["-q"] if args.quiet else []

    def command(profile_to: str | None) -> list[str]:
        prof = ["-m", "cProfile", "-o", profile_to] if profile_to else []
        if args.command == "load":
            return [sys.executable, *prof, os.path.join(root, "load.py"), os.path.basename(tf), attr]
        sub = "status" if args.command == "status" else "execute"
        return [sys.executable, *prof, "-m", "taskflow", sub, tf, *(quiet if sub == "execute" else [])]

    with open(os.path.join(root, "load.py"), "w") as f:
        f.write(LOAD_SCRIPT)

    def prepare() -> None:
        if args.command == "execute":
            shutil.rmtree(store, ignore_errors=True)
        elif not os.path.isdir(store):
            subprocess.run([sys.executable, "-m", "taskflow", "execute", tf, "-q"], env=env, cwd=root, check=True)

    walls = []
    for _ in range(args.repeat):
        prepare()
        t0 = time.perf_counter()
        subprocess.run(command(None), env=env, cwd=root, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        walls.append(time.perf_counter() - t0)
    startup = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import taskflow.cli"], env=env, cwd=root, check=True)
        startup.append(time.perf_counter() - t0)
    prepare()
    out = os.path.join(root, "profile.out")
    t0 = time.perf_counter()
    subprocess.run(command(out), env=env, cwd=root, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    profiled = time.perf_counter() - t0

    stats = pstats.Stats(out)
    wall = statistics.median(walls)
    st = statistics.median(startup)
    print(f"taskflow code: {code['mode']} {code['commit'][:10]}; work folder {root}")
    print(f"{args.command} {args.workload} ({n_tasks} tasks{', -q' if args.quiet else ''}): "
          f"wall {wall:.3f} s unprofiled (median of {len(walls)}), {profiled:.3f} s profiled")
    print(f"interpreter + `import taskflow.cli`: {st:.3f} s; the rest per task: "
          f"{(wall - st) / n_tasks * 1e6:.0f} µs\n")
    print(f"{'step':<58}{'calls':>8}{'µs/task cum':>13}{'µs/task own':>13}{'µs/call':>10}")
    for label, suffix, name in STEPS:
        found = cum(stats, suffix, name)
        if not found or not found[0]:
            continue
        nc, tt, ct = found
        print(f"{label:<58}{nc:>8}{ct / n_tasks * 1e6:>13.1f}{tt / n_tasks * 1e6:>13.1f}{ct / nc * 1e6:>10.1f}")
    print(f"\nfunctions by own time (µs per task, profiled):")
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:args.top]
    for (filename, line, func), (cc, nc, tt, ct, _c) in rows:
        where = f"{os.path.basename(filename)}:{line}" if filename != "~" else ""
        print(f"  {tt / n_tasks * 1e6:8.1f} own {ct / n_tasks * 1e6:8.1f} cum {nc:>8} calls  {where} {func}")
    if not args.workdir:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
