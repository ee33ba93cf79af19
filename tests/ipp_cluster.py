"""A real ipyparallel cluster for tests: one ipcontroller and N ipengine processes on 127.0.0.1.

Started from this interpreter (so engines import this taskflow), in a profile
folder of its own under tmp_path, and stopped by pid. Without ipyparallel the
fixture skips, unless TASKFLOW_REQUIRE_IPP=1 (CI) makes that a failure.
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

START_TIMEOUT = 60.0


def require_ipyparallel() -> None:
    try:
        import ipyparallel  # noqa: F401
    except ImportError:
        if os.environ.get("TASKFLOW_REQUIRE_IPP") == "1":
            pytest.fail("TASKFLOW_REQUIRE_IPP=1 but ipyparallel is not installed (pip install 'taskflow[ipp]')")
        pytest.skip("ipyparallel is not installed (pip install 'taskflow[ipp]')")


class IppCluster:
    """ipcontroller plus engines; `connection_file` is what `execute --ipp` takes."""

    def __init__(self, folder: Path, engines: int):
        self.profile = folder / "profile_taskflow-test"
        self.profile.mkdir(parents=True)
        self.logs = folder / "logs"
        self.logs.mkdir()
        self.connection_file = self.profile / "security" / "ipcontroller-client.json"
        self.controller: subprocess.Popen | None = None
        self.engines: list[subprocess.Popen] = []
        self.count = engines

    def _spawn(self, module: str, name: str, *args: str) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")
        try:
            return subprocess.Popen([sys.executable, "-m", module, f"--profile-dir={self.profile}", *args],
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()

    def start(self) -> IppCluster:
        t0 = time.monotonic()
        self.controller = self._spawn("ipyparallel.controller", "controller", "--ip=127.0.0.1",
                                      "--log-level=WARN")
        engine_file = self.profile / "security" / "ipcontroller-engine.json"
        self._until(lambda: engine_file.exists() and self.connection_file.exists()
                    and _complete_json(self.connection_file), "the controller's connection files")
        for i in range(self.count):
            self.engines.append(self._spawn("ipyparallel.engine", f"engine-{i}", "--log-level=WARN"))
        import ipyparallel

        client = ipyparallel.Client(str(self.connection_file), timeout=30)
        try:
            client.wait_for_engines(self.count, timeout=START_TIMEOUT)
        finally:
            client.close()
        self.started_in = time.monotonic() - t0
        return self

    def _until(self, ready, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            if self.controller is not None and self.controller.poll() is not None:
                raise RuntimeError(f"ipcontroller exited: {(self.logs / 'controller.log').read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.1)

    def engine_pids(self) -> list[int]:
        return [p.pid for p in self.engines]

    def stop(self) -> None:
        for p in [*self.engines, self.controller]:
            if p is not None and p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
        for p in [*self.engines, self.controller]:
            if p is None:
                continue
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()


def _complete_json(path: Path) -> bool:
    try:
        json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return True
