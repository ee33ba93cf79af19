"""A running worker's record in the store (`Store.publish_worker`): who it is, what it may run,
what it set aside and how many tasks it did not start for lack of time.

Published when the worker starts and every INTERVAL seconds from a daemon thread while it runs
(also while a long task runs). When it stops it is withdrawn, unless it counts walltime skips:
then it is published a last time, saying the worker exited, for `taskflow report`. `taskflow
status` counts the workers whose record is fresh; `taskflow report` sums their walltime skips.
"""
from __future__ import annotations

import logging
import os
import threading
import time

from ..stores.base import Store
from ..stores.identity import BOOT_ID, HOST, process
from .fitting import SIZE, TIME, Picker

log = logging.getLogger(__name__)

INTERVAL = 10.0  # seconds; a record not refreshed for three of these is a worker gone


class Presence:
    """Publishes one worker's record until `stop`."""

    def __init__(self, store: Store, worker: str, picker: Picker, interval: float = INTERVAL):
        self.store = store
        self.ident = f"{HOST}.{process.pid}.{process.unique()}"
        self.worker = worker
        self.picker = picker
        self.interval = interval
        self.started = time.time()
        self._wake = threading.Event()
        self._stopped = False
        self.publish(running=True)
        self._thread = threading.Thread(target=self._run, name="taskflow-presence", daemon=True)
        self._thread.start()

    def record(self, running: bool) -> dict:
        p = self.picker
        c = p.capacity
        kinds = [k for k, _ in p.set_aside.values()]
        return {"worker": self.worker, "host": HOST, "boot": BOOT_ID, "pid": os.getpid(), "running": running,
                "interval": self.interval, "started": self.started,
                "capacity": None if c is None else {"cpus": c.cpus, "memory": c.memory, "gpus": len(c.gpus)},
                "time_left": None if p.time_left is None else max(0.0, p.time_left.left()),
                "set_aside": {"size": kinds.count(SIZE), "time": kinds.count(TIME)},
                "walltime_skips": p.walltime_skips}

    def publish(self, running: bool = True) -> None:
        try:
            self.store.publish_worker(self.ident, self.record(running))
        except Exception as e:  # a hint: never the reason a worker stops
            log.debug("cannot publish this worker's record: %s", e)

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self.interval)
            if not self._stopped:
                self.publish(running=True)

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()
        self._thread.join(timeout=5)
        if self.picker.walltime_skips:
            self.publish(running=False)  # kept: `taskflow report` sums what it skipped
        else:
            try:
                self.store.withdraw_worker(self.ident)
            except Exception as e:
                log.debug("cannot remove this worker's record: %s", e)
