"""An ipyparallel cluster for the benchmarks: an ipcontroller and N ipengine processes of this
interpreter on 127.0.0.1, in a profile folder of its own (not ~/.ipython), stopped by pid.
bench/engines.py runs `execute --ipp` on one (engine `ipp2`). Needs ipyparallel
(pip install 'taskflow[ipp]')."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


class Cluster:
    """ipcontroller + N ipengine processes of this interpreter, on 127.0.0.1."""

    def __init__(self, folder: str, engines: int):
        self.profile = os.path.join(folder, "profile_bench")
        os.makedirs(self.profile)
        self.connection_file = os.path.join(self.profile, "security", "ipcontroller-client.json")
        self.engines = engines
        self.procs: list[subprocess.Popen] = []
        self.log = open(os.path.join(folder, "cluster.log"), "wb")

    def _spawn(self, module: str, *args: str) -> None:
        self.procs.append(subprocess.Popen([sys.executable, "-m", module, f"--profile-dir={self.profile}", *args],
                                           stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True))

    def start(self) -> float:
        import ipyparallel

        t0 = time.perf_counter()
        self._spawn("ipyparallel.controller", "--ip=127.0.0.1", "--log-level=WARN")
        engine_file = os.path.join(self.profile, "security", "ipcontroller-engine.json")
        deadline = time.monotonic() + 60
        while not (os.path.exists(engine_file) and os.path.exists(self.connection_file)):
            if time.monotonic() > deadline or self.procs[0].poll() is not None:
                raise SystemExit("ipcontroller did not start")
            time.sleep(0.05)
        time.sleep(0.2)  # written, not necessarily complete: let the controller finish the file
        for _ in range(self.engines):
            self._spawn("ipyparallel.engine", "--log-level=WARN")
        client = ipyparallel.Client(self.connection_file, timeout=30)
        try:
            client.wait_for_engines(self.engines, timeout=60)
        finally:
            client.close()
        return time.perf_counter() - t0

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
        self.log.close()
