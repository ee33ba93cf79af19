"""Who this process is, as every store records it: host, boot, pid, worker id.

Claims, journals, temp files and result metadata name the process that made
them, so that any reader can tell whether it still runs (same host and boot:
its pid says) and `taskflow status` can count a job's workers.
"""
from __future__ import annotations

import itertools
import os
import time
from typing import Any

from .._version import __version__
from ..fingerprint import fingerprint

HOST = os.uname().nodename  # gethostname(), without importing socket on every start


class _Process:
    """This process's pid and a unique-name source, renewed after fork.

    Both are asked for several times per task; caching them saves system calls
    (getpid, getrandom) on the hot path.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.pid = os.getpid()
        self._prefix = os.urandom(4).hex()
        self._counter = itertools.count()

    def unique(self) -> str:
        return f"{self._prefix}{next(self._counter):x}"


process = _Process()
os.register_at_fork(after_in_child=process.reset)


if hasattr(time, "CLOCK_BOOTTIME"):  # runs on while the process is stopped or the machine sleeps
    def elapsed_clock() -> float:
        return time.clock_gettime(time.CLOCK_BOOTTIME)
else:
    elapsed_clock = time.monotonic


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


BOOT_ID = _boot_id()


def worker_id() -> str:
    """The batch array task this process runs as, or host:pid outside a scheduler."""
    from ..schedulers.environment import detect
    return detect().worker or f"{HOST}:{os.getpid()}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child its parent has not reaped yet is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def on_this_host(owner: dict) -> bool:
    """Whether the owner a claim records ran on this host (same hostname and boot), so that
    its pid tells whether it still runs."""
    return owner.get("host") == HOST and owner.get("boot", "") == BOOT_ID and isinstance(owner.get("pid"), int)


def gone_from_here(owner: dict) -> bool:
    """Whether the owner a claim records ran on this host and its process is gone."""
    return on_this_host(owner) and not pid_alive(owner["pid"])


def writer_of_this_host(host: str, pid: str) -> bool:
    """Whether the process a file is named after (`<host>.<pid>.<random>`: journals, clock
    and temp files) ran on this host; such names carry no boot id."""
    return host == HOST and pid.isdigit()


def writer_gone_from_here(host: str, pid: str) -> bool:
    """Whether the process a file is named after ran on this host and is gone."""
    return writer_of_this_host(host, pid) and not pid_alive(int(pid))


def result_meta(task: Any, started: float, duration: float, worker: str, extra: dict | None = None) -> dict:
    """The metadata saved with a task's result: who made it, when, how long it ran, from which code."""
    meta = {"name": task.name, "hash": task.hash, "started": started,
            "finished": time.time(), "duration": duration, "host": HOST,
            "pid": process.pid, "worker": worker, "taskflow": __version__,
            "code": fingerprint(task.f), "version": task.version}
    if extra:
        meta.update(extra)
    return meta


def failure_record(task: Any, exception: BaseException, traceback: str, started: float, worker: str) -> dict:
    """The record saved for a task that raised: what, where, by whom, when."""
    return {"name": task.name, "hash": task.hash, "type": type(exception).__name__,
            "message": str(exception) or type(exception).__name__, "traceback": traceback,
            "host": HOST, "pid": process.pid, "worker": worker, "started": started, "time": time.time()}
