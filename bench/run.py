#!/usr/bin/env python3
"""Benchmarks: taskflow side by side with jug.

Generates taskfiles and jugfiles (identical apart from the import line) in a
temporary folder, runs both tools interleaved in the same run, and reports
medians of repeated wall-clock measurements, their ratios, and whether each
target is met. Standard library only (the generated taskfiles use numpy).

    python3 bench/run.py                          # everything, 5 repeats
    python3 bench/run.py --only trivial,status --repeat 3 --json out.json

Taskflow runs as `python3 -m taskflow` with the interpreter running this
script; jug runs from its own virtualenv (--jug-venv, default /tmp/jugvenv).
See bench/README.md for the workloads and the targets.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

from mounts import FILESYSTEMS, open_place

# The large-file workloads last: removing their stores makes the disk slow for a while (TRIM).
WORKLOADS = ["trivial", "status", "mapreduce", "cpu", "mapreduce1ms", "sleep", "status100k", "status1m", "strace",
             "numpy", "mmap"]

# strace -c rows counted as filesystem calls: opens, stats, renames, unlinks, links, reads and
# writes (including writev, which results use), directory listings, utime, close, mkdir, fsync,
# and symbolic links (the claims of a batch's tasks).
FS_CALLS = ["openat", "open", "stat", "lstat", "fstat", "newfstatat", "statx", "rename", "renameat",
            "renameat2", "unlink", "unlinkat", "link", "linkat", "write", "writev", "pwrite64", "read",
            "getdents64", "utimensat", "close", "mkdir", "mkdirat", "fsync", "fdatasync",
            "symlink", "symlinkat", "readlink", "readlinkat"]


# ---------------------------------------------------------------- generated files

def taskfile_source(tool: str, body: str) -> str:
    """The same workload for both tools: only the import line differs."""
    imp = "from taskflow import TaskGenerator" if tool == "taskflow" else "from jug import TaskGenerator"
    return imp + "\n" + textwrap.dedent(body)


TRIVIAL = """
@TaskGenerator
def double(x):
    return 2 * x

results = [double(i) for i in range({n})]
"""

NUMPY = """
import numpy as np

@TaskGenerator
def make(i):
    return np.random.default_rng(i).random(6_553_600)   # 50 MB of float64

@TaskGenerator
def total(arrays):
    return float(sum(a.sum() for a in arrays))

arrays = [make(i) for i in range(8)]
result = total(arrays)
"""

NUMPY_PLAIN = """
import numpy as np

def make(i):
    return np.random.default_rng(i).random(6_553_600)

def total(arrays):
    return float(sum(a.sum() for a in arrays))

print(total([make(i) for i in range(8)]))
"""

BIG = """
import numpy as np

@TaskGenerator
def big():
    return np.random.default_rng(0).random(26_214_400)   # 200 MB of float64

result = big()
"""

MAPREDUCE = """
@TaskGenerator
def square(i):
    return i * i

@TaskGenerator
def total(xs):
    return sum(xs)

@TaskGenerator
def scaled(x, t):
    return x / t

xs = [square(i) for i in range(1000)]
t = total(xs)
ys = [scaled(x, t) for x in xs]
"""

# 1 ms of CPU per task: scaling where the work is not the framework's own fixed cost.
BUSY = """
import time

def busy(ms):
    end = time.process_time() + ms / 1000
    while time.process_time() < end:
        pass
"""

CPU = BUSY + """
@TaskGenerator
def work(i):
    busy(1)
    return i

results = [work(i) for i in range({n})]
"""

MAPREDUCE_1MS = BUSY + """
@TaskGenerator
def square(i):
    busy(1)
    return i * i

@TaskGenerator
def total(xs):
    busy(1)
    return sum(xs)

@TaskGenerator
def scaled(x, t):
    busy(1)
    return x / t

xs = [square(i) for i in range(1000)]
t = total(xs)
ys = [scaled(x, t) for x in xs]
"""

SLEEP = """
import time

@TaskGenerator
def nap(i):
    time.sleep(0.1)
    return i

naps = [nap(i) for i in range(40)]
"""

# Run in a fresh process: time init + value of every result (the interpreter and
# library import are outside the in-process figure, inside the process figure).
LOAD_TASKFLOW = """
import json, sys, time
import taskflow
t0 = time.perf_counter()
ns = taskflow.init(sys.argv[1])
t1 = time.perf_counter()
v = taskflow.value(getattr(ns, sys.argv[2]))
t2 = time.perf_counter()
assert v is not None
print(json.dumps({"init": t1 - t0, "value": t2 - t1, "total": t2 - t0}))
"""

LOAD_JUG = """
import json, sys, time
import jug
t0 = time.perf_counter()
store, space = jug.init(sys.argv[1], sys.argv[1][:-3] + ".jugdata")
t1 = time.perf_counter()
v = jug.value(space[sys.argv[2]])
t2 = time.perf_counter()
assert v is not None
print(json.dumps({"init": t1 - t0, "value": t2 - t1, "total": t2 - t0}))
"""

# mmap load of the 200 MB result, against a full (checked) load and jug's load.
MMAP_TASKFLOW = """
import json, sys, time
import numpy as np
import taskflow
ns = taskflow.init(sys.argv[1])
t0 = time.perf_counter()
a = taskflow.value(ns.result, mmap=True)
t1 = time.perf_counter()
assert a.shape == (26_214_400,) and a.dtype == np.float64
first = float(a[0])   # touch one page: it is really there
t2 = time.perf_counter()
b = taskflow.value(ns.result)
t3 = time.perf_counter()
assert b.shape == a.shape
print(json.dumps({"mmap": t1 - t0, "full": t3 - t2}))
"""

MMAP_JUG = """
import json, sys, time
import jug
store, space = jug.init(sys.argv[1], sys.argv[1][:-3] + ".jugdata")
t0 = time.perf_counter()
b = jug.value(space["result"])
t1 = time.perf_counter()
assert b.shape == (26_214_400,)
print(json.dumps({"full": t1 - t0}))
"""


# ---------------------------------------------------------------- running

def pin_code(python: str, root: str, mode: str, env: dict, rev: str = "HEAD") -> dict:
    """Fix the taskflow code measured for the whole run.

    head: the commit `rev` (default HEAD) of the repository, extracted into the
    work folder and put first on PYTHONPATH, so edits and commits made while the
    benchmark runs do not change what is measured. worktree: a copy of the working tree
    as it is now. installed: whatever `import taskflow` finds (live files).
    Sets PYTHONPATH in `env` to match; returns a description of the code.
    """
    found = subprocess.run([python, "-c", "import taskflow, os; print(os.path.dirname(taskflow.__file__))"],
                           capture_output=True, text=True, env=env)
    if found.returncode != 0:
        sys.exit(f"cannot import taskflow with {python}: {found.stderr.strip()}")
    pkg = found.stdout.strip()
    repo = os.path.dirname(pkg)
    git = lambda *a: subprocess.run(["git", "-C", repo, *a], capture_output=True, text=True).stdout.strip()
    info = {"mode": mode, "package": pkg, "commit": git("rev-parse", rev if mode == "head" else "HEAD"),
            "dirty": git("status", "--short", "--", "taskflow")}
    if mode == "installed":
        return info
    dest = os.path.join(root, "_code")
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    if mode == "head":
        archive = subprocess.run(["git", "-C", repo, "archive", info["commit"], "taskflow"], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    else:
        shutil.copytree(pkg, os.path.join(dest, "taskflow"),
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # Byte-compile it as an installation would (this environment sets PYTHONDONTWRITEBYTECODE,
    # so without this every taskflow process would compile the package again, ~35 ms).
    subprocess.run([python, "-m", "compileall", "-q", dest], check=True, stdout=subprocess.DEVNULL)
    env["PYTHONPATH"] = dest + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    check = subprocess.run([python, "-c", "import taskflow; print(taskflow.__file__)"],
                           capture_output=True, text=True, env=env, cwd=root).stdout.strip()
    if not check.startswith(dest):
        sys.exit(f"could not pin the taskflow code: it imports from {check}")
    info["measured"] = os.path.dirname(check)
    return info


def bench_env() -> dict:
    env = dict(os.environ)
    for name in ("TASKFLOW_STORE", "TASKFLOW_LEASE", "TASKFLOW_FSYNC"):
        env.pop(name, None)
    return env


class Bench:
    def __init__(self, args: argparse.Namespace, root: str | None = None, fs: str = "default",
                 pinned: tuple[dict, dict] | None = None):
        """`root`: the work folder (default --workdir or a new temp folder); `fs`: the kind of
        filesystem it is on (disk, tmpfs, sshfs; "default" for --workdir). `pinned`: (env, code)
        of a pin_code made once for several filesystems (the code stays on the local disk)."""
        self.args = args
        self.fs = fs
        self.repeat = args.repeat
        self.python = args.taskflow_python or sys.executable
        self.jug = os.path.join(args.jug_venv, "bin", "jug")
        self.jug_python = os.path.join(args.jug_venv, "bin", "python")
        self.root = root or args.workdir or tempfile.mkdtemp(prefix="taskflow-bench-")
        self.trash = os.path.join(self.root, "_old_stores")  # see clean()
        self.quiet_create = float("inf")  # fastest file creation seen (see settle)
        os.makedirs(self.root, exist_ok=True)
        self.results: dict = {}
        self.probes: list[dict] = []
        self.failures: list[str] = []   # commands that failed (the run goes on without their figure)
        self.last_maxrss = 0.0          # peak RSS in MB of the biggest process of the last run()
        self.last_cpu = 0.0             # CPU seconds (user + system) of the last run()'s processes
        if pinned is None:
            self.env = bench_env()
            self.code = pin_code(self.python, self.root, args.code, self.env, args.rev)
        else:
            self.env, self.code = dict(pinned[0]), pinned[1]

    # -- files and commands ---------------------------------------------------

    def write(self, folder: str, name: str, text: str) -> str:
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def pair(self, workload: str, body: str, **fmt) -> dict[str, str]:
        """tf_<workload>.py and jug_<workload>.py in their own folder."""
        folder = os.path.join(self.root, workload)
        src = body.format(**fmt) if fmt else body
        return {"taskflow": self.write(folder, f"tf_{workload}.py", taskfile_source("taskflow", src)),
                "jug": self.write(folder, f"jug_{workload}.py", taskfile_source("jug", src))}

    @staticmethod
    def store_of(tool: str, taskfile: str) -> str:
        return taskfile[:-3] + (".taskflow" if tool == "taskflow" else ".jugdata")

    def clean(self, tool: str, taskfile: str, remove: bool = False) -> None:
        """Move the store aside (removed when the benchmark ends), or with `remove`
        remove it, then flush pending writes (untimed) so that the next timed run
        does not pay for earlier runs' writeback.

        Stores of many small files are moved aside: ext4 without a journal (this
        VM's disk) allocates each new inode only after skipping every inode
        deleted in the last one to six minutes (its recently_deleted() check), so
        removing 10,000 files right before a timed run made the next run's every
        file creation scan them; perf showed half of a 10,000-task run in that
        scan, for either tool. Stores of a few large files are removed: kept,
        their page cache would make the next run write into memory the VM has
        not touched yet, which costs the host a page fault per page (writing
        400 MB then took 1 s of system time instead of 0.1 s, for either tool).
        """
        store = self.store_of(tool, taskfile)
        if remove:
            shutil.rmtree(store, ignore_errors=True)
        elif os.path.lexists(store):
            os.makedirs(self.trash, exist_ok=True)
            os.rename(store, os.path.join(self.trash, f"{len(os.listdir(self.trash))}"))
        os.sync()

    def cmd(self, tool: str, sub: str, taskfile: str, *extra: str) -> list[str]:
        if tool == "taskflow":
            return [self.python, "-m", "taskflow", sub, taskfile, *extra]
        return [self.jug, sub, taskfile, *extra]

    def run(self, cmds: list[list[str]], cwd: str, ok=(0,), timeout: float = 3600.0) -> float:
        """Start every command at once; wall time until the last one exits."""
        logs = []
        procs = []
        t0 = time.perf_counter()
        for i, c in enumerate(cmds):
            log = open(os.path.join(cwd, f"last-{i}.log"), "w+b")
            logs.append(log)
            procs.append(subprocess.Popen(c, cwd=cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT))
        # Popen.wait(timeout=...) polls with sleeps growing to 50 ms, which would round
        # every time up to the next step of that schedule: block in waitpid instead,
        # with a watchdog for the timeout.
        expired = threading.Event()

        def kill_all() -> None:
            expired.set()
            for p in procs:
                p.kill()
        watchdog = threading.Timer(timeout, kill_all)
        watchdog.start()
        codes = []
        self.last_maxrss = 0.0
        self.last_cpu = 0.0
        try:
            for p in procs:   # wait4: the exit status and the peak RSS (KB on Linux) of each
                _, wstatus, usage = os.wait4(p.pid, 0)
                p.returncode = os.waitstatus_to_exitcode(wstatus)
                codes.append(p.returncode)
                self.last_maxrss = max(self.last_maxrss, usage.ru_maxrss / 1024)
                self.last_cpu += usage.ru_utime + usage.ru_stime
        finally:
            watchdog.cancel()
        elapsed = time.perf_counter() - t0
        if expired.is_set():
            raise RuntimeError(f"{' '.join(cmds[0])} took more than {timeout:.0f}s")
        for c, code, log in zip(cmds, codes, logs):
            if code not in ok:
                log.seek(0)
                tail = log.read()[-3000:].decode(errors="replace")
                raise RuntimeError(f"{' '.join(c)} exited {code}:\n{tail}")
            log.close()
        return elapsed

    def status(self, tool: str, taskfile: str) -> float:
        # `jug status` exits 1 while tasks remain; `taskflow status` exits 0
        ok = (0,) if tool == "taskflow" else (0, 1)
        return self.run([self.cmd(tool, "status", taskfile)], os.path.dirname(taskfile), ok=ok)

    def precreate(self, taskfile: str) -> None:
        """With --precreate-store: create the taskflow store before starting several
        workers on it (untimed).

        Workaround for commits before 8c34a18: with a fresh store, `taskflow execute
        --jobs N` (N >= 2) often failed with "exists and is not a taskflow store":
        one worker's Store.ensure() made the subfolders before the marker file, and
        another worker's check_format() saw a non-empty folder without a marker.
        """
        if not self.args.precreate_store:
            return
        code = "import sys; from taskflow.stores import open_store; open_store(sys.argv[1]).ensure()"
        subprocess.run([self.python, "-c", code, self.store_of("taskflow", taskfile)], check=True, env=self.env)

    def execute(self, tool: str, taskfile: str, workers: int = 1, quiet: bool = False, fsync: bool = False) -> float:
        folder = os.path.dirname(taskfile)
        if tool == "taskflow":
            if workers > 1:
                self.precreate(taskfile)
            extra = ((["--jobs", str(workers)] if workers > 1 else []) + (["-q"] if quiet else [])
                     + (["--fsync"] if fsync else []))
            return self.run([self.cmd(tool, "execute", taskfile, *extra)], folder)
        # jug: N independent processes started together, as on a cluster
        return self.run([self.cmd(tool, "execute", taskfile)] * workers, folder)

    def py_json(self, tool: str, script: str, *argv: str, cwd: str) -> tuple[float, dict]:
        """Run a Python snippet in a fresh process; (process wall time, the JSON it printed)."""
        py = self.python if tool == "taskflow" else self.jug_python
        t0 = time.perf_counter()
        proc = subprocess.run([py, "-c", script, *argv], cwd=cwd, env=self.env, capture_output=True,
                              text=True, timeout=3600)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{tool} snippet failed:\n{proc.stderr[-3000:]}")
        return elapsed, json.loads(proc.stdout.strip().splitlines()[-1])

    # -- recording ------------------------------------------------------------

    def record(self, workload: str, metric: str, tool: str, value: float) -> None:
        runs = self.results.setdefault(workload, {}).setdefault(metric, {}).setdefault(tool, [])
        runs.append(value)

    def med(self, workload: str, metric: str, tool: str) -> float | None:
        runs = self.results.get(workload, {}).get(metric, {}).get(tool)
        return statistics.median(runs) if runs else None

    def _create_latency(self, n: int) -> float:
        """Median seconds to create a new empty file in the work folder."""
        d = os.path.join(self.root, "_probe")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        lat = []
        for i in range(n):
            t0 = time.perf_counter()
            os.close(os.open(os.path.join(d, f"f{i}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            lat.append(time.perf_counter() - t0)
        shutil.rmtree(d, ignore_errors=True)
        return statistics.median(lat)

    def settle(self, limit: float | None = None) -> float:
        """Wait (untimed) until creating a file costs about what it costs on a quiet disk.

        This VM's disk stays slow for a while after many files were removed
        (ext4 without a journal skips inodes deleted in the last one to six
        minutes on every allocation) or large ones (TRIM of the freed blocks):
        creating a file then took 70 to 270 µs instead of 6 µs, and whatever ran
        was measured on a different machine. Quiet means at most 15 µs (a slow
        disk can be steady for minutes, so steadiness is no sign). Returns the
        seconds waited.
        """
        if self.fs in ("tmpfs", "sshfs"):
            return 0.0   # the inode scan of ext4 is the disk's alone
        limit = self.args.settle_limit if limit is None else limit
        start = time.perf_counter()
        while True:
            os.sync()
            lat = self._create_latency(100)
            self.quiet_create = min(self.quiet_create, lat)
            if lat <= 15e-6 or time.perf_counter() - start > limit:
                return time.perf_counter() - start
            time.sleep(2.0)

    def probe(self, label: str) -> dict:
        """How noisy the machine is right now: median latency of creating a new file
        in the work folder, the time of a fixed pure-Python loop, and the load."""
        waited = self.settle()
        create = self._create_latency(300)
        t0 = time.perf_counter()
        x = 0
        for i in range(1_000_000):
            x += i
        loop = time.perf_counter() - t0
        out = {"when": label, "file_create_us": create * 1e6, "py_loop_ms": loop * 1e3,
               "loadavg": os.getloadavg()[0], "settled_s": waited}
        self.probes.append(out)
        self.progress(f"probe {label}: new-file create {out['file_create_us']:.0f} µs (median), "
                      f"1M-iteration loop {out['py_loop_ms']:.0f} ms, load {out['loadavg']:.2f}, "
                      f"waited {waited:.0f} s for a quiet disk")
        return out

    def progress(self, msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    def interleaved(self, jobs: list[tuple], reps: int) -> None:
        """jobs: (workload, metric, tool, fn). Each repeat runs all jobs, starting at a
        different one each time, so drift on a noisy machine hits every job alike."""
        for rep in range(reps):
            k = rep % len(jobs)
            for workload, metric, tool, fn in jobs[k:] + jobs[:k]:
                os.sync()   # start each measurement with no other run's writes pending
                try:
                    value = fn()
                except RuntimeError as e:   # e.g. jug through sshfs: keep the other figures
                    first = str(e).strip().splitlines()
                    note = f"{self.fs}: {workload} {metric} {tool} run {rep + 1}: {first[0] if first else e}"
                    tail = [line for line in first if line.strip()][-1:] if first else []
                    self.failures.append(note + (f" ... {tail[0]}" if tail else ""))
                    self.progress("FAILED " + self.failures[-1])
                    continue
                self.record(workload, metric, tool, value)
                self.progress(f"{self.fs}: {workload} {metric} {tool} run {rep + 1}/{reps}: {value:.4g}")

    # ---------------------------------------------------------------- workloads

    def w_trivial(self) -> None:
        n = self.args.n_trivial
        files = self.pair("trivial", TRIVIAL, n=n)
        jobs = []
        for tool in ("taskflow", "jug"):
            for workers in (1, 2):
                def fn(tool=tool, workers=workers):
                    self.clean(tool, files[tool])
                    return self.execute(tool, files[tool], workers)
                jobs.append(("trivial", f"execute_{workers}w", tool, fn))

        def quiet():
            self.clean("taskflow", files["taskflow"])
            return self.execute("taskflow", files["taskflow"], 1, quiet=True)

        def fsync():   # jug 2.7 fsyncs every result file and its folder; taskflow does with --fsync
            self.clean("taskflow", files["taskflow"])
            return self.execute("taskflow", files["taskflow"], 1, fsync=True)
        if self.args.trivial_extras:
            jobs.append(("trivial", "execute_1w_quiet", "taskflow", quiet))
            jobs.append(("trivial", "execute_1w_fsync", "taskflow", fsync))
        self.interleaved(jobs, self.repeat)
        self.results.setdefault("trivial", {})["n"] = n
        # Per task, once per tool (untimed): files in the store a 1-worker run leaves, and with
        # strace, the system calls of that run (all of them: start, imports, taskfile, tasks).
        for tool in ("taskflow", "jug"):
            self.clean(tool, files[tool])
            try:
                if self.args.trivial_strace and shutil.which("strace"):
                    calls = self.strace(tool, files[tool], 1)
                    self.record("trivial", "syscalls_per_task", tool, sum(calls.values()) / n)
                    self.record("trivial", "fs_syscalls_per_task", tool,
                                sum(calls.get(c, 0) for c in FS_CALLS) / n)
                    self.results["trivial"].setdefault("calls", {})[tool] = calls
                else:
                    self.execute(tool, files[tool])
            except RuntimeError as e:
                self.failures.append(f"{self.fs}: trivial strace {tool}: {str(e).strip()[:300]}")
                continue
            self.record("trivial", "files_per_100", tool, self.count_files(self.store_of(tool, files[tool])) / n * 100)
            self.clean(tool, files[tool])

    @staticmethod
    def count_files(folder: str) -> int:
        """Every file (not folder) under `folder`: what a site's quota on files counts."""
        return sum(len(names) for _, _, names in os.walk(folder))

    def w_status(self) -> None:
        n = self.args.n_trivial
        files = self.pair("trivial", TRIVIAL, n=n)
        folder = os.path.dirname(files["taskflow"])
        for tool in ("taskflow", "jug"):   # make sure both graphs are fully executed
            self.execute(tool, files[tool])
        jobs = []
        for tool in ("taskflow", "jug"):
            jobs.append(("status", "status", tool,
                         lambda tool=tool: self.status(tool, files[tool])))
            jobs.append(("status", "noop_execute", tool,
                         lambda tool=tool: self.execute(tool, files[tool])))

            def load(tool=tool):
                script = LOAD_TASKFLOW if tool == "taskflow" else LOAD_JUG
                wall, inner = self.py_json(tool, script, os.path.basename(files[tool]), "results", cwd=folder)
                self.record("status", "load_all_inprocess", tool, inner["total"])
                return wall
            jobs.append(("status", "load_all_process", tool, load))
        self.interleaved(jobs, self.repeat)
        self.results["status"]["n"] = n

    def w_numpy(self) -> None:
        files = self.pair("numpy", NUMPY)
        folder = os.path.dirname(files["taskflow"])
        plain = self.write(folder, "plain_numpy.py", textwrap.dedent(NUMPY_PLAIN))
        jobs = []
        for tool in ("taskflow", "jug"):
            def fn(tool=tool):
                self.clean(tool, files[tool], remove=True)
                return self.execute(tool, files[tool])
            jobs.append(("numpy", "execute", tool, fn))
        jobs.append(("numpy", "execute", "plain", lambda: self.run([[self.python, plain]], folder)))
        self.interleaved(jobs, max(1, min(self.repeat, self.args.slow_repeat)))
        for tool in ("taskflow", "jug"):
            self.clean(tool, files[tool], remove=True)

    def w_mmap(self) -> None:
        files = self.pair("mmap", BIG)
        folder = os.path.dirname(files["taskflow"])
        for tool in ("taskflow", "jug"):
            self.clean(tool, files[tool], remove=True)
            self.execute(tool, files[tool])

        def tf():
            _, inner = self.py_json("taskflow", MMAP_TASKFLOW, os.path.basename(files["taskflow"]), cwd=folder)
            self.record("mmap", "load_200MB_full", "taskflow", inner["full"])
            return inner["mmap"]

        def jug():
            _, inner = self.py_json("jug", MMAP_JUG, os.path.basename(files["jug"]), cwd=folder)
            return inner["full"]
        self.interleaved([("mmap", "load_200MB_mmap", "taskflow", tf),
                          ("mmap", "load_200MB_full", "jug", jug)], self.repeat)
        for tool in ("taskflow", "jug"):
            self.clean(tool, files[tool], remove=True)

    def _workers_1_2(self, workload: str, body: str, reps: int, **fmt) -> None:
        files = self.pair(workload, body, **fmt)
        jobs = []
        for tool in ("taskflow", "jug"):
            for workers in (1, 2):
                def fn(tool=tool, workers=workers):
                    self.clean(tool, files[tool])
                    return self.execute(tool, files[tool], workers)
                jobs.append((workload, f"execute_{workers}w", tool, fn))
        self.interleaved(jobs, reps)

    def w_mapreduce(self) -> None:
        self._workers_1_2("mapreduce", MAPREDUCE, self.repeat)

    def w_sleep(self) -> None:
        self._workers_1_2("sleep", SLEEP, self.repeat)

    def w_cpu(self) -> None:
        self._workers_1_2("cpu", CPU, self.repeat, n=self.args.n_cpu)
        self.results.setdefault("cpu", {})["n"] = self.args.n_cpu

    def w_mapreduce1ms(self) -> None:
        self._workers_1_2("mapreduce1ms", MAPREDUCE_1MS, self.repeat)

    def status_tools(self) -> tuple[str, ...]:
        return ("taskflow",) if self.args.status_taskflow_only else ("taskflow", "jug")

    def w_status1m(self) -> None:
        """`status` of a graph of --n-status1m tasks, none executed: declaring them (the whole
        taskfile), hashing and counting, with the peak memory of the process."""
        n = self.args.n_status1m
        files = self.pair("status1m", TRIVIAL, n=n)
        for tool in ("taskflow", "jug"):
            self.clean(tool, files[tool])
        jobs = []
        for tool in self.status_tools():
            def fn(tool=tool):
                t = self.status(tool, files[tool])
                self.record("status1m", "status_maxrss_mb", tool, self.last_maxrss)
                # On a machine shared with other work the wall time says more about the others;
                # the CPU time of the process is what it costs on a quiet one (about).
                self.record("status1m", "status_cpu", tool, self.last_cpu)
                return t
            jobs.append(("status1m", "status_before", tool, fn))
        self.interleaved(jobs, max(1, min(self.repeat, self.args.slow_repeat)))
        self.results.setdefault("status1m", {})["n"] = n
        if not self.args.status1m_after:
            return
        # taskflow only: jug would take a quarter of an hour to execute a million tasks.
        value = self.execute("taskflow", files["taskflow"])
        self.record("status1m", "execute_1w_once", "taskflow", value)
        self.record("status1m", "files_per_100", "taskflow",
                    self.count_files(self.store_of("taskflow", files["taskflow"])) / n * 100)

        def after() -> float:
            t = self.status("taskflow", files["taskflow"])
            self.record("status1m", "status_after_maxrss_mb", "taskflow", self.last_maxrss)
            return t
        self.interleaved([("status1m", "status_after", "taskflow", after)],
                         max(1, min(self.repeat, self.args.slow_repeat)))
        self.clean("taskflow", files["taskflow"])

    def w_status100k(self) -> None:
        n = self.args.n_status
        files = self.pair("status100k", TRIVIAL, n=n)
        folder = os.path.dirname(files["taskflow"])
        reps = max(1, min(self.repeat, self.args.slow_repeat))
        tools = self.status_tools()
        for tool in tools:
            self.clean(tool, files[tool])
        def before(tool: str) -> float:
            t = self.status(tool, files[tool])
            self.record("status100k", "status_before_maxrss_mb", tool, self.last_maxrss)
            return t
        self.interleaved([("status100k", "status_before", tool, lambda tool=tool: before(tool))
                          for tool in tools], reps)
        # One execution each (slow for jug): reported, not repeated.
        for tool in tools:
            value = self.execute(tool, files[tool])
            self.record("status100k", "execute_1w_once", tool, value)
            self.progress(f"status100k execute {tool}: {value:.4g}")
        self.interleaved([("status100k", "status_after", tool,
                           lambda tool=tool: self.status(tool, files[tool]))
                          for tool in tools], reps)
        self.results["status100k"]["n"] = n
        for tool in tools:
            self.clean(tool, files[tool])

    # -- strace ---------------------------------------------------------------

    @staticmethod
    def parse_strace(path: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) < 5 or parts[0].startswith(("%", "-")):
                    continue
                name = parts[-1]
                try:
                    calls = int(parts[3])
                except ValueError:
                    continue
                if name != "total":
                    counts[name] = counts.get(name, 0) + calls
        return counts

    def strace(self, tool: str, taskfile: str, workers: int) -> dict[str, int]:
        folder = os.path.dirname(taskfile)
        out = os.path.join(folder, "strace.txt")
        if tool == "taskflow":
            inner = self.cmd(tool, "execute", taskfile, *(["--jobs", str(workers)] if workers > 1 else []))
            if workers > 1:
                self.precreate(taskfile)
        else:
            inner = self.cmd(tool, "execute", taskfile)
        self.run([["strace", "-c", "-f", "-o", out, *inner]], folder)
        return self.parse_strace(out)

    def w_strace(self) -> None:
        if shutil.which("strace") is None:
            self.progress("strace not found: skipping (apt-get install -y strace)")
            return
        n = self.args.n_strace
        files = self.pair("strace", TRIVIAL, n=n)
        # Twice the tasks: the difference is the cost of n more tasks, with every fixed cost
        # (interpreters, imports, taskfile loads, first listing) cancelled out.
        double = self.pair("strace2x", TRIVIAL, n=2 * n)
        reps = max(1, min(self.repeat, 3))
        per_call: dict = self.results.setdefault("strace", {}).setdefault("calls", {})
        configs = [("taskflow", w) for w in self.args.strace_workers] + [("jug", 1)]
        jobs = []
        for tool, workers in configs:
            label = f"{tool}_{workers}w"

            def fn(tool=tool, workers=workers, label=label):
                self.clean(tool, files[tool])
                run = self.strace(tool, files[tool], workers)
                noop = self.strace(tool, files[tool], workers)   # same command, nothing left to do
                self.clean(tool, double[tool])
                run2 = self.strace(tool, double[tool], workers)
                self.clean(tool, double[tool])
                per_call.setdefault(label, []).append({"execute": run, "noop": noop, "execute_2x": run2})
                self.record("strace", f"marginal_total_per_task_{workers}w", tool,
                            (sum(run2.values()) - sum(run.values())) / n)
                self.record("strace", f"marginal_fs_per_task_{workers}w", tool,
                            sum(run2.get(c, 0) - run.get(c, 0) for c in FS_CALLS) / n)
                total_net = sum(run.values()) - sum(noop.values())
                fs = sum(run.get(c, 0) for c in FS_CALLS)
                fs_net = fs - sum(noop.get(c, 0) for c in FS_CALLS)
                self.record("strace", f"fs_per_task_{workers}w", tool, fs / n)
                self.record("strace", f"net_total_per_task_{workers}w", tool, total_net / n)
                self.record("strace", f"net_fs_per_task_{workers}w", tool, fs_net / n)
                return sum(run.values()) / n
            jobs.append(("strace", f"total_per_task_{workers}w", tool, fn))
        self.interleaved(jobs, reps)
        self.results["strace"]["n"] = n
        self.clean("taskflow", files["taskflow"])
        self.clean("jug", files["jug"])


# ---------------------------------------------------------------- report

def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def fmt(x: float | None, unit: str = "s") -> str:
    if x is None:
        return "-"
    if unit == "s":
        return f"{x * 1000:.1f} ms" if x < 1 else f"{x:.2f} s"
    if unit == "us":
        return f"{x * 1e6:.0f} µs"
    if unit == "x":
        return f"{x:.2f}x"
    return f"{x:.1f}"


def report(b: Bench) -> tuple[list[list[str]], list[dict]]:
    """Rows of the results table and the list of targets with their verdict."""
    m = b.med
    rows: list[list[str]] = []
    targets: list[dict] = []

    def row(label, workload, metric, unit="s"):
        tf, jug = m(workload, metric, "taskflow"), m(workload, metric, "jug")
        if tf is None and jug is None:
            return
        nt = len(b.results[workload][metric].get("taskflow", []))
        nj = len(b.results[workload][metric].get("jug", []))
        rows.append([label, fmt(tf, unit), fmt(jug, unit), fmt(ratio(tf, jug), "x"), f"{nt}/{nj}"])

    def target(name, value, ok, detail):
        if value is None:
            return
        targets.append({"target": name, "value": value, "met": bool(ok), "detail": detail})

    if "trivial" in b.results:
        n = b.results["trivial"]["n"]
        row(f"{n} trivial tasks, 1 worker", "trivial", "execute_1w")
        row(f"{n} trivial tasks, 1 worker, taskflow -q", "trivial", "execute_1w_quiet")
        row(f"{n} trivial tasks, 1 worker, taskflow --fsync", "trivial", "execute_1w_fsync")
        row(f"{n} trivial tasks, 2 workers", "trivial", "execute_2w")
        for w in (1, 2):
            tf, jug = m("trivial", f"execute_{w}w", "taskflow"), m("trivial", f"execute_{w}w", "jug")
            rows.append([f"  per task, {w} worker{'s' if w > 1 else ''} (time/{n})",
                         fmt(tf / n if tf else None, "us"), fmt(jug / n if jug else None, "us"), "", ""])
        for tool in ("taskflow", "jug"):
            s = ratio(m("trivial", "execute_1w", tool), m("trivial", "execute_2w", tool))
            rows.append([f"  {tool}: speedup 1 -> 2 workers", fmt(s, "x"), "", "", ""])
        row("  syscalls per task, 1 worker (strace -f -c, all)", "trivial", "syscalls_per_task", "n")
        row("  filesystem syscalls per task, 1 worker", "trivial", "fs_syscalls_per_task", "n")
        row("  files in the store per 100 tasks", "trivial", "files_per_100", "n")
        sp = ratio(m("trivial", "execute_1w", "jug"), m("trivial", "execute_1w", "taskflow"))
        target(f"{n} trivial tasks, 1 worker: >= 10x faster than jug", sp, sp and sp >= 10,
               f"{sp:.2f}x faster" if sp else "")
        s2 = ratio(m("trivial", "execute_1w", "taskflow"), m("trivial", "execute_2w", "taskflow"))
        target(f"{n} trivial tasks: 2 workers never slower than 1", s2, s2 and s2 >= 1.0, f"{s2:.2f}x" if s2 else "")
        v = m("trivial", "fs_syscalls_per_task", "taskflow")
        target(f"{n} trivial tasks: <= 3 filesystem syscalls per task", v, v is not None and v <= 3,
               f"{v:.1f} (jug {fmt(m('trivial', 'fs_syscalls_per_task', 'jug'), 'n')})" if v is not None else "")
        v = m("trivial", "files_per_100", "taskflow")
        target(f"{n} trivial tasks: <= 1 file per 100 tasks in the store", v, v is not None and v <= 1,
               f"{v:.1f} (jug {fmt(m('trivial', 'files_per_100', 'jug'), 'n')})" if v is not None else "")
    if "status" in b.results:
        n = b.results["status"]["n"]
        row(f"status, {n} finished tasks", "status", "status")
        row(f"no-op execute, {n} finished tasks", "status", "noop_execute")
        row(f"load all {n} results, fresh process", "status", "load_all_process")
        row(f"  of which init + value", "status", "load_all_inprocess")
        for metric, label in (("status", "status"), ("noop_execute", "no-op execute"),
                              ("load_all_process", "load all results (process)"),
                              ("load_all_inprocess", "load all results (init + value)")):
            r = ratio(m("status", metric, "taskflow"), m("status", metric, "jug"))
            target(f"{label}: <= 0.5x jug's time", r, r is not None and r <= 0.5, f"{r:.2f}x of jug" if r else "")
    if "numpy" in b.results:
        tf, jug, plain = (m("numpy", "execute", t) for t in ("taskflow", "jug", "plain"))
        row("numpy 8 x 50 MB + sum", "numpy", "execute")
        rows.append(["  same work, plain script", fmt(plain), "", "", ""])
        if plain:
            rows.append(["  overhead over plain script", fmt(tf - plain) if tf else "-",
                         fmt(jug - plain) if jug else "-", fmt(ratio(tf - plain, jug - plain), "x")
                         if tf and jug else "", ""])
        r = ratio(tf, jug)
        # Each repeat ran both tools once: the ratio of the two runs of one repeat.
        runs = b.results["numpy"]["execute"]
        pairs = [t / j for t, j in zip(runs.get("taskflow", []), runs.get("jug", []))]
        worst = max(pairs) if pairs else None
        rows.append(["  taskflow/jug per repeat", ", ".join(f"{x:.2f}" for x in pairs), "", "", ""])
        target("numpy 8 x 50 MB + sum: median <= 0.6x jug's, no repeat above 0.7x", r,
               r is not None and r <= 0.6 and worst is not None and worst <= 0.7,
               f"{r:.2f}x of jug, worst repeat {worst:.2f}x" if r and worst else "")
    if "mmap" in b.results:
        rows.append(["load 200 MB array, value(mmap=True)", fmt(m("mmap", "load_200MB_mmap", "taskflow")),
                     "", "", str(len(b.results["mmap"]["load_200MB_mmap"].get("taskflow", [])))])
        row("load 200 MB array, full read", "mmap", "load_200MB_full")
        v = m("mmap", "load_200MB_mmap", "taskflow")
        target("mmap load of 200 MB: well under 0.1 s", v, v is not None and v < 0.1, fmt(v))
        r = ratio(m("mmap", "load_200MB_full", "taskflow"), m("mmap", "load_200MB_full", "jug"))
        target("value() of a 200 MB result at least as fast as jug's load", r, r is not None and r <= 1.0,
               f"{r:.2f}x of jug's time" if r else "")
    for wl, label in (("mapreduce", "map-reduce-map, 2,001 tasks"), ("sleep", "40 tasks x 0.1 s sleep"),
                      ("cpu", "10,000 tasks x 1 ms CPU"), ("mapreduce1ms", "map-reduce-map, 2,001 tasks x 1 ms")):
        if wl not in b.results:
            continue
        row(f"{label}, 1 worker", wl, "execute_1w")
        row(f"{label}, 2 workers", wl, "execute_2w")
        for tool in ("taskflow", "jug"):
            s = ratio(m(wl, "execute_1w", tool), m(wl, "execute_2w", tool))
            rows.append([f"  {tool}: speedup 1 -> 2 workers", fmt(s, "x"), "", "", ""])
        s = ratio(m(wl, "execute_1w", "taskflow"), m(wl, "execute_2w", "taskflow"))
        goal, text = {"mapreduce": (1.0, "map-reduce-map (trivial): 2 workers never slower than 1"),
                      "sleep": (1.95, "40 x 0.1 s tasks: 2 workers >= 1.95x faster"),
                      "cpu": (1.8, "10,000 x 1 ms CPU: 2 workers >= 1.8x faster"),
                      "mapreduce1ms": (1.5, "map-reduce-map 1,000+1+1,000 x 1 ms: 2 workers >= 1.5x faster")}[wl]
        jug_s = ratio(m(wl, "execute_1w", "jug"), m(wl, "execute_2w", "jug"))
        target(text, s, s is not None and s >= goal, f"{s:.2f}x (jug {fmt(jug_s, 'x')})" if s else "")
    if "status100k" in b.results:
        n = b.results["status100k"]["n"]
        row(f"status, {n} tasks, before execution", "status100k", "status_before")
        row(f"execute {n} tasks, 1 worker (once)", "status100k", "execute_1w_once")
        row(f"status, {n} tasks, after execution", "status100k", "status_after")
        row(f"  peak RSS of status before execution, MB", "status100k", "status_before_maxrss_mb", "n")
        for metric in ("status_before", "status_after"):
            v = m("status100k", metric, "taskflow")
            target(f"status on {n} tasks ({metric.split('_')[1]} execution) < 0.4 s", v, v is not None and v < 0.4,
                   f"{fmt(v)} (jug {fmt(m('status100k', metric, 'jug'))})" if v is not None else "")
    if "status1m" in b.results:
        n = b.results["status1m"]["n"]
        row(f"status, {n} tasks, none executed", "status1m", "status_before")
        row(f"  CPU time (user + system)", "status1m", "status_cpu")
        row(f"  peak RSS, MB", "status1m", "status_maxrss_mb", "n")
        row(f"execute {n} tasks, 1 worker (once)", "status1m", "execute_1w_once")
        row(f"  files in the store per 100 tasks", "status1m", "files_per_100", "n")
        row(f"status, {n} tasks, all finished", "status1m", "status_after")
        row(f"  peak RSS, MB", "status1m", "status_after_maxrss_mb", "n")
        v, mem = m("status1m", "status_after", "taskflow"), m("status1m", "status_after_maxrss_mb", "taskflow")
        target(f"status on {n} finished tasks < 4 s and < 2 GB", v,
               v is not None and v < 4 and mem is not None and mem < 2048,
               f"{fmt(v)}, {mem:.0f} MB" if v is not None and mem else "")
        v, mem = m("status1m", "status_before", "taskflow"), m("status1m", "status_maxrss_mb", "taskflow")
        limit = 4.0 if n >= 1_000_000 else 0.4 * n / 100_000
        cpu = m("status1m", "status_cpu", "taskflow")
        target(f"status on {n} tasks < {limit:g} s and < 2 GB (declaring included)", v,
               v is not None and v < limit and mem is not None and mem < 2048,
               f"{fmt(v)} (CPU {fmt(cpu)}), {mem:.0f} MB (jug {fmt(m('status1m', 'status_before', 'jug'))}, "
               f"CPU {fmt(m('status1m', 'status_cpu', 'jug'))}, "
               f"{fmt(m('status1m', 'status_maxrss_mb', 'jug'), 'n')} MB)" if v is not None and mem else "")
    if "strace" in b.results and "n" in b.results["strace"]:
        n = b.results["strace"]["n"]
        workers = sorted({int(k.split("_")[-1][:-1]) for k in b.results["strace"]
                          if k.startswith("total_per_task_")})
        for w in workers:
            tf = lambda metric: m("strace", f"{metric}_{w}w", "taskflow")
            jug = lambda metric: m("strace", f"{metric}_{w}w", "jug")
            keys = ("total_per_task", "fs_per_task", "net_total_per_task", "net_fs_per_task",
                    "marginal_total_per_task", "marginal_fs_per_task")
            rows.append([f"syscalls/task, {n} tasks, {w} worker(s): all | fs | net all | net fs | marginal all | "
                         "marginal fs",
                         " | ".join(fmt(tf(k), "n") for k in keys),
                         " | ".join(fmt(jug(k), "n") for k in keys) if jug("total_per_task") is not None else "",
                         "", ""])
        lo, hi = min(workers), max(workers)
        for metric, label in (("total_per_task", "all syscalls"), ("fs_per_task", "fs syscalls"),
                              ("net_total_per_task", "all syscalls, startup subtracted"),
                              ("net_fs_per_task", "fs syscalls, startup subtracted"),
                              ("marginal_total_per_task", f"all syscalls, {2 * n} tasks less {n}"),
                              ("marginal_fs_per_task", f"fs syscalls, {2 * n} tasks less {n}")):
            r = ratio(m("strace", f"{metric}_{hi}w", "taskflow"), m("strace", f"{metric}_{lo}w", "taskflow"))
            target(f"syscalls per task ({label}): {hi} workers <= 1.3x of {lo}", r,
                   r is not None and r <= 1.3, f"{r:.2f}x" if r else "")
    return rows, targets


def table(rows: list[list[str]], head: list[str]) -> str:
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def machine() -> dict:
    info = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "python": platform.python_version(),
            "cores": os.cpu_count(), "platform": platform.platform()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    except OSError:
        pass
    try:
        info["loadavg_start"] = os.getloadavg()
    except OSError:
        pass
    return info


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=",".join(WORKLOADS),
                   help=f"comma-separated subset of: {', '.join(WORKLOADS)} [default: all]")
    p.add_argument("--repeat", type=int, default=5, help="runs per measurement [default: 5]")
    p.add_argument("--slow-repeat", type=int, default=3,
                   help="cap on runs for slow measurements (numpy, 100k status) [default: 3]")
    p.add_argument("--json", help="write all runs, medians and targets to this file")
    p.add_argument("--jug-venv", default="/tmp/jugvenv", help="virtualenv with jug installed [/tmp/jugvenv]")
    p.add_argument("--workdir", help="where to generate files [default: a new temp folder, removed after]")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--code", choices=["head", "worktree", "installed"], default="head",
                   help="taskflow code to measure: the last commit (default), a copy of the working tree "
                        "taken at start, or the installed package as it is (live edits included)")
    p.add_argument("--rev", default="HEAD", help="commit to measure with --code head [HEAD]")
    p.add_argument("--taskflow-python", help="interpreter that runs taskflow [the one running this script]")
    p.add_argument("--precreate-store", action="store_true",
                   help="create the taskflow store before starting several workers (untimed); needed "
                        "before commit 8c34a18, where workers racing to create a fresh store could fail")
    p.add_argument("--fs", help="comma-separated filesystems to run every workload on, one after the other: "
                                 "disk (under --disk-dir), tmpfs (under --tmpfs-dir), sshfs (a mount of its own "
                                 "through sshd on 127.0.0.1, as tests/sharedfs.py makes) [default: --workdir only]")
    p.add_argument("--disk-dir", default="/var/tmp/taskflow-bench", help="work folder on the disk for --fs "
                   "(and the pinned code) [/var/tmp/taskflow-bench]")
    p.add_argument("--tmpfs-dir", default="/dev/shm/taskflow-bench", help="work folder on tmpfs for --fs")
    p.add_argument("--trivial-extras", action=argparse.BooleanOptionalAction, default=True,
                   help="also time taskflow -q and --fsync on the trivial workload [on]")
    p.add_argument("--trivial-strace", action=argparse.BooleanOptionalAction, default=True,
                   help="strace one 1-worker run of the trivial workload per tool: syscalls per task [on]")
    p.add_argument("--n-cpu", type=int, default=10_000, help="tasks of 1 ms CPU in the cpu workload")
    p.add_argument("--n-status1m", type=int, default=1_000_000, help="tasks in the status1m workload")
    p.add_argument("--status1m-after", action="store_true",
                   help="status1m: also execute the million tasks once (taskflow only) and time status after")
    p.add_argument("--settle-limit", type=float, default=420.0,
                   help="most seconds to wait for a quiet disk before each workload [420]")
    p.add_argument("--status-taskflow-only", action="store_true",
                   help="status100k, status1m: leave jug out (its 100,000-task execution takes minutes)")
    p.add_argument("--n-trivial", type=int, default=10_000)
    p.add_argument("--n-status", type=int, default=100_000)
    p.add_argument("--n-strace", type=int, default=2_000)
    p.add_argument("--strace-workers", default="1,8,32", help="worker counts for strace [1,8,32]")
    args = p.parse_args()
    args.strace_workers = [int(x) for x in args.strace_workers.split(",")]
    only = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = [w for w in only if w not in WORKLOADS]
    if unknown:
        p.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")

    pinned = None
    kinds = [k.strip() for k in args.fs.split(",") if k.strip()] if args.fs else ["default"]
    if args.fs:
        bad = [k for k in kinds if k not in FILESYSTEMS]
        if bad:
            p.error(f"unknown filesystem(s) {', '.join(bad)}; choose from {', '.join(FILESYSTEMS)}")
        # One copy of the code for every filesystem, on the local disk: what is measured is the
        # store on each filesystem, not importing taskflow through it.
        os.makedirs(args.disk_dir, exist_ok=True)
        env = bench_env()
        pinned = (env, pin_code(args.taskflow_python or sys.executable, args.disk_dir, args.code, env, args.rev))
    first = Bench(args, root=os.path.join(args.disk_dir, "disk") if args.fs else None,
                  fs=kinds[0] if args.fs and kinds[0] == "disk" else "default", pinned=pinned)
    versions = {}
    try:
        versions["taskflow"] = subprocess.run([first.python, "-m", "taskflow", "--version"], capture_output=True,
                                              text=True, env=first.env).stdout.strip()
        versions["taskflow_code"] = first.code
        versions["taskflow_python"] = first.python
        versions["jug_python"] = first.jug_python
        versions["jug"] = subprocess.run([first.jug, "--version"], capture_output=True, text=True).stdout.strip()
    except OSError as e:
        p.error(f"cannot run a tool: {e}")
    info = machine()
    started = time.perf_counter()
    benches: list[Bench] = []
    for kind in kinds:
        place = None
        if kind == "default":
            b = first
        else:
            try:
                place = open_place(kind, os.path.join(args.disk_dir, "disk"), args.tmpfs_dir)
            except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
                first.progress(f"skipping {kind}: {e}")
                continue
            b = first if kind == "disk" and first.fs == "disk" else Bench(args, root=place.root, fs=kind,
                                                                         pinned=pinned)
        benches.append(b)
        b.progress(f"== {b.fs}: work folder {b.root}; {versions}; {info}")
        try:
            for w in WORKLOADS:
                if w in only:
                    b.progress(f"== {b.fs}: {w}")
                    b.probe(f"before {w}")
                    getattr(b, f"w_{w}")()
            b.probe("end")
        finally:
            # Through sshfs every unlink is a round trip: SharedFS.stop removes the served folder
            # from the local disk instead.
            if kind != "sshfs":
                shutil.rmtree(b.trash, ignore_errors=True)
            if not args.keep and kind != "sshfs" and (args.fs or not args.workdir):
                for workload in WORKLOADS:
                    shutil.rmtree(os.path.join(b.root, workload), ignore_errors=True)
                if not args.fs:
                    shutil.rmtree(b.root, ignore_errors=True)
            if place is not None:
                place.close()
    info["elapsed"] = time.perf_counter() - started
    try:
        info["loadavg_end"] = os.getloadavg()
    except OSError:
        pass

    code = first.code
    print(f"\n{info['date']}  {info.get('cpu', '?')}, {info['cores']} cores, Python {info['python']}, "
          f"{versions.get('taskflow')} (code: {code['mode']} {code['commit'][:10]}), "
          f"jug {versions.get('jug')}; median of --repeat {args.repeat} "
          f"(slow ones: {min(args.repeat, args.slow_repeat)})")
    out: dict = {"machine": info, "versions": versions, "repeat": args.repeat, "filesystems": {}}
    for b in benches:
        rows, targets = report(b)
        print(f"\n### {b.fs}: {b.root}\n")
        print("machine probes (new-file create latency in the work folder, 1M-iteration Python loop, load):")
        for pr in b.probes:
            print(f"  {pr['when']:<20} {pr['file_create_us']:7.0f} µs  {pr['py_loop_ms']:6.0f} ms  {pr['loadavg']:.2f}")
        print()
        print(table(rows, ["measurement", "taskflow", "jug", "taskflow/jug", "runs"]))
        print()
        print(table([[t["target"], t["detail"], "met" if t["met"] else "NOT MET"] for t in targets],
                    ["target", "measured", "verdict"]))
        for note in b.failures:
            print("failed:", note)
        medians = {wl: {metric: {tool: statistics.median(v) for tool, v in by_tool.items() if v}
                        for metric, by_tool in metrics.items() if isinstance(by_tool, dict) and metric != "calls"}
                   for wl, metrics in b.results.items()}
        out["filesystems"][b.fs] = {"workdir": b.root, "probes": b.probes, "runs": b.results, "medians": medians,
                                    "targets": targets, "failures": b.failures}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
        first.progress(f"wrote {args.json}")


if __name__ == "__main__":
    main()
