"""Helpers for tests with real worker processes: taskfiles that log to an
O_APPEND file and wait on gate files, workers started in the background, and
polling instead of fixed sleeps."""
from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from conftest import write_taskfile

def same_claim(raw: bytes) -> dict:
    """A claim file's record less its renewal counter: equal for one claim however often
    its owner renewed it, different for any other claim (each has its own token)."""
    record = json.loads(raw)
    record.pop("renewal")
    return record


# Prepended to every taskfile. Each task line in the log is "<event> <task id> <pid>".
# A task started with gated=True waits until the file GATE_DIR/go-all or
# GATE_DIR/go-<its pid> exists, so a test decides when a running task returns.
TASKFILE_HEAD = """
import os, time
from taskflow import TaskGenerator, Task

LOG = os.environ["TF_TEST_LOG"]
GATE_DIR = os.environ.get("TF_TEST_GATES", "")

def note(*parts):
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (" ".join(map(str, parts)) + "\\n").encode())
    finally:
        os.close(fd)

def gate(timeout=120.0):
    mine = os.path.join(GATE_DIR, "go-%d" % os.getpid())
    every = os.path.join(GATE_DIR, "go-all")
    deadline = time.monotonic() + timeout
    while not (os.path.exists(mine) or os.path.exists(every)):
        if time.monotonic() > deadline:
            raise RuntimeError("gate never opened")
        time.sleep(0.02)
"""

# A graph of one task that logs "start", waits at its gate, logs "done", and
# returns the pid of the process that ran it.
ONE_GATED_TASK = TASKFILE_HEAD + """
@TaskGenerator
def job(i):
    note("start", i, os.getpid())
    gate()
    note("done", i, os.getpid())
    return os.getpid()

result = job(0)
"""


class Env:
    """One test's world: taskfile, store, log, gates; starts and checks workers."""

    def __init__(self, folder: Path, source: str, lease: float | None = 1.0, name: str = "taskfile.py"):
        self.folder = folder
        self.taskfile = write_taskfile(folder, source, name)
        self.store = folder / (Path(name).stem + ".taskflow")
        self.log = folder / "log"
        self.gates = folder / "gates"
        self.gates.mkdir(exist_ok=True)
        self.lease = lease
        self.workers: list[Worker] = []

    def env(self, extra: dict | None = None) -> dict:
        env = dict(os.environ)
        env.pop("TASKFLOW_STORE", None)
        env.pop("TASKFLOW_LEASE", None)
        env.update(TF_TEST_LOG=str(self.log), TF_TEST_GATES=str(self.gates))
        if self.lease is not None:
            env["TASKFLOW_LEASE"] = str(self.lease)
        env.update(extra or {})
        return env

    def start(self, *args: str, prefix: Sequence[str] = (), python: Sequence[str] = (sys.executable, "-m", "taskflow"),
              env: dict | None = None, **popen) -> "Worker":
        """`taskflow execute TASKFILE ARGS` in the background; stdout and stderr go to files."""
        n = len(self.workers)
        out = open(self.folder / f"worker{n}.out", "w")
        err = open(self.folder / f"worker{n}.err", "w")
        cmd = [*prefix, *python, "execute", str(self.taskfile), "--store", str(self.store), *map(str, args)]
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=self.env(env), cwd=self.folder, **popen)
        out.close()
        err.close()
        w = Worker(proc, self.folder / f"worker{n}.err", self.folder / f"worker{n}.out")
        self.workers.append(w)
        return w

    def run(self, *args: str, timeout: float = 120, **kw) -> "Worker":
        """Start a worker and wait for it to exit."""
        w = self.start(*args, **kw)
        w.wait(timeout)
        return w

    def open_gate(self, pid: int | None = None) -> None:
        (self.gates / ("go-all" if pid is None else f"go-{pid}")).touch()

    def lines(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [line.split() for line in self.log.read_text().splitlines()]

    def events(self, event: str, task: object | None = None) -> list[list[str]]:
        return [p for p in self.lines() if p[0] == event and (task is None or p[1] == str(task))]

    def pids(self, event: str, task: object | None = None) -> list[int]:
        return [int(p[2]) for p in self.events(event, task)]

    def locks(self) -> list[str]:
        """Claims in the store (takeovers in progress have a dot in their name)."""
        try:
            return sorted(n for n in os.listdir(self.store / "locks") if "." not in n)
        except FileNotFoundError:
            return []

    def status(self) -> dict:
        proc = subprocess.run([sys.executable, "-m", "taskflow", "status", str(self.taskfile), "--store",
                               str(self.store), "--json"], capture_output=True, text=True, env=self.env(),
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def assert_all_finished(self, count: int) -> None:
        total = self.status()["total"]
        assert total == {"waiting": 0, "ready": 0, "running": 0, "finished": count, "failed": 0}, total

    def value(self, attr: str):
        """The stored value of the taskfile's global `attr`, read in a fresh process."""
        code = ("import json, taskflow; ns = taskflow.init(%r, store=%r); print(json.dumps(taskflow.value(ns.%s)))"
                % (str(self.taskfile), str(self.store), attr))
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=self.env(),
                              cwd=self.folder, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def cleanup(self) -> None:
        """Kill whatever the test left running (after a failed assertion)."""
        for w in self.workers:
            if w.proc.poll() is None:
                try:
                    os.kill(w.proc.pid, signal.SIGCONT)
                    w.proc.kill()
                except ProcessLookupError:
                    pass
                w.proc.wait()


class Worker:
    def __init__(self, proc: subprocess.Popen, err: Path, out: Path):
        self.proc = proc
        self.err_path = err
        self.out_path = out

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = 120) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"worker {self.pid} still running after {timeout}s\nstderr:\n{self.stderr}") \
                from None

    def expect(self, code: int, timeout: float = 120) -> None:
        rc = self.wait(timeout)
        assert rc == code, f"worker {self.pid} exited {rc}, expected {code}\nstderr:\n{self.stderr}"

    def running(self) -> bool:
        return self.proc.poll() is None


def wait_until(condition: Callable[[], object], what: str, timeout: float = 60.0, interval: float = 0.02):
    """Poll `condition` until it returns something true; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        got = condition()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def process_state(pid: int) -> str:
    """The state letter of a process (R, S, T for stopped, Z...), '' if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def libfaketime() -> str | None:
    for pattern in ("/usr/lib/*/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1",
                    "/usr/lib64/faketime/libfaketime.so.1", "/usr/local/lib/faketime/libfaketime.so.1"):
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None
