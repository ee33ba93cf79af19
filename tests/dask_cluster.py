"""A real Dask cluster on 127.0.0.1 for the --dask tests: `dask scheduler` and `dask worker`
processes started here and stopped by pid.

Tests using it skip, saying why, when Dask's distributed package is missing;
with TASKFLOW_REQUIRE_DASK=1 (as in CI) they fail instead.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REQUIRE = os.environ.get("TASKFLOW_REQUIRE_DASK") == "1"


def unavailable(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"{reason}; TASKFLOW_REQUIRE_DASK=1 says this test must run, not skip")
    pytest.skip(reason)


def require_dask() -> None:
    try:
        import distributed  # noqa: F401
    except ModuleNotFoundError:
        unavailable("Dask's distributed is not installed (pip install 'taskflow[dask]')")


def _stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM to the process group the process leads (a nanny and its worker), then SIGKILL."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


class DaskCluster:
    """`dask scheduler` on a free port of 127.0.0.1 and `workers` `dask worker` processes (with nannies)."""

    def __init__(self, folder: Path, workers: int = 2):
        self.folder = folder
        self.scheduler_file = folder / "scheduler.json"
        self.log = folder / "dask.log"
        self.procs: list[subprocess.Popen] = []
        dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
        self._start([*dask, "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                     "--scheduler-file", str(self.scheduler_file)])
        end = time.monotonic() + 60
        while not self.scheduler_file.exists():
            assert time.monotonic() < end, "dask scheduler did not start:\n" + self.log.read_text()
            time.sleep(0.05)
        time.sleep(0.05)  # the file is written whole by then, but not atomically
        self.address = json.loads(self.scheduler_file.read_text())["address"]
        for i in range(workers):
            self.add_worker(f"w{i}")
        self.wait_for_workers(workers)

    def _start(self, cmd: list[str]) -> subprocess.Popen:
        # As README "Running on Dask" advises for many short tasks: no queuing on the scheduler.
        env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "inf"}
        with open(self.log, "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=self.folder,
                                    start_new_session=True, env=env)
        self.procs.append(proc)
        return proc

    def add_worker(self, name: str) -> subprocess.Popen:
        return self._start([sys.executable, "-m", "distributed.cli.dask_worker", self.address, "--nthreads", "1",
                            "--no-dashboard", "--name", name, "--memory-limit", "0"])

    def worker_pids(self) -> dict[str, int]:
        """Dask worker address: pid of the process running its tasks."""
        from distributed import Client

        with Client(self.address, timeout=20) as client:
            return client.run(os.getpid)

    def wait_for_workers(self, n: int, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while len(self.worker_pids()) < n:
            assert time.monotonic() < end, f"fewer than {n} Dask workers joined:\n" + self.log.read_text()[-3000:]
            time.sleep(0.2)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            _stop(proc)
