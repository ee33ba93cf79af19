"""Which Dask cluster `--dask ADDRESS` names, and connecting to it.

`local:N` starts a LocalCluster of N single-threaded worker processes on
this machine for the length of the command; anything else is the address of
a running Dask scheduler (`tcp://host:8786`, `tls://...`, or `host:port`),
whose workers must see the store and the taskfile at the same paths.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..errors import SchedulerError, UsageError
from ..signals import Terminated
from . import require

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 20.0  # seconds to reach a scheduler before giving up
# For the schedulers taskflow starts: every ready task goes to a worker at once, not two per thread
# as Dask's default queuing does, which costs a round trip to the scheduler per task and, on a
# busy machine, seven times the wall time of 2,000 short tasks (bench/README.md, "Engines").
SCHEDULER_CONFIG = {"distributed.scheduler.worker-saturation": "inf"}
_LOCAL = re.compile(r"local:(\d+)")
_ADDRESS = re.compile(r"([a-z]+://)?[^\s/:]+(:\d+)?/?")


@contextlib.contextmanager
def _signals_held() -> Iterator[Callable[[], None]]:
    """Ctrl-C and SIGTERM wait while a LocalCluster starts (a cluster interrupted half-started cannot
    be closed); the function yielded raises the one that came, once the cluster can be closed."""
    came: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    previous = {s: signal.signal(s, lambda signum, frame: came.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: _raise_for(came)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _raise_for(came: list[int]) -> None:
    if came:
        raise KeyboardInterrupt() if came[0] == signal.SIGINT else Terminated()


def parse(address: str) -> int | str:
    """The number of workers of `local:N`, or the scheduler address; UsageError for neither."""
    m = _LOCAL.fullmatch(address)
    if m:
        n = int(m.group(1))
        if n < 1:
            raise UsageError(f"--dask {address}: a local cluster needs at least 1 worker")
        return n
    if address.startswith("local") or not _ADDRESS.fullmatch(address):
        raise UsageError(f"--dask {address}: give a scheduler address such as tcp://127.0.0.1:8786, "
                         "or local:N for N worker processes on this machine")
    return address


@contextlib.contextmanager
def connect(address: str, environment: Mapping[str, str] | None = None) -> Iterator[Any]:
    """A Dask client of the cluster `address` names, for the length of the block.

    A local cluster's workers inherit `environment` (what the store's url
    leaves out, a password); a running cluster's workers must have it already.
    """
    target = parse(address)
    require()
    import dask
    from distributed import Client, LocalCluster

    if isinstance(target, int):
        os.environ.update(environment or {})
        # Processes, not threads: tasks hold the GIL, and each worker must be a process of its own
        # so that a claim names a process that can die alone. The dashboard on a free port of this
        # host only: 8787 may be another cluster's.
        with _signals_held() as held, dask.config.set(SCHEDULER_CONFIG):
            cluster = LocalCluster(n_workers=target, threads_per_worker=1, processes=True,
                                   dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
        with cluster, Client(cluster) as client:
            held()
            yield client
        return
    try:
        client = Client(target, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as e:
        raise SchedulerError(f"--dask {address}: cannot reach the Dask scheduler: {e}", "dask") from None
    try:
        if not client.scheduler_info().get("workers"):
            log.warning("the Dask scheduler at %s has no worker yet: tasks wait until one joins", address)
        yield client
    finally:
        client.close()
