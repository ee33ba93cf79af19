"""What one worker may run: the cpus, memory, GPUs and walltime it was given.

Each field comes from the first that tells it: `execute --cpus/--mem/--gpus`, then the batch
scheduler's allocation (schedulers/environment.py), then this machine's own size (the cpus this
process may run on, the memory in /proc/meminfo or sysconf, the GPUs in CUDA_VISIBLE_DEVICES or
/dev/nvidiaN). `fits` says whether a task's declared resources fit in it; undeclared ones always do.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING
from dataclasses import dataclass, field

from .resources import ResourceError, Resources, format_memory, parse

if TYPE_CHECKING:
    from .schedulers.environment import JobEnvironment

log = logging.getLogger(__name__)

_MIB = 1024 * 1024


@dataclass(frozen=True)
class Capacity:
    cpus: int
    memory: int | None             # megabytes; None where nothing tells it
    gpus: tuple[str, ...]          # device ids
    walltime: float | None = None  # seconds, where the scheduler tells it
    sources: dict[str, str] = field(default_factory=dict, compare=False)  # field -> where it came from

    def fits(self, needs: Resources) -> bool:
        """Whether a task needing `needs` can run in this worker at all (alone)."""
        if needs.cpus is not None and needs.cpus > self.cpus:
            return False
        if needs.memory is not None and self.memory is not None and needs.memory > self.memory:
            return False
        if needs.gpus is not None and needs.gpus > len(self.gpus):
            return False
        if needs.time is not None and self.walltime is not None and needs.time > self.walltime:
            return False
        return True

    def describe(self) -> str:
        mem = "memory unknown" if self.memory is None else f"{format_memory(self.memory)} memory"
        parts = [f"{self.cpus} cpus ({self.sources.get('cpus', '?')})",
                 f"{mem} ({self.sources.get('memory', '?')})",
                 f"{len(self.gpus)} gpus ({self.sources.get('gpus', '?')})"]
        return ", ".join(parts)


def machine_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def machine_memory(meminfo: str = "/proc/meminfo") -> int | None:
    """This machine's total memory in megabytes, or None where it cannot be read."""
    try:
        with open(meminfo, encoding="ascii", errors="replace") as f:
            for line in f:
                m = re.match(r"MemTotal:\s+(\d+)\s*kB", line)
                if m:
                    return int(m.group(1)) // 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // _MIB
    except (AttributeError, ValueError, OSError):
        return None


def machine_gpus(environ: Mapping[str, str], dev: str = "/dev") -> tuple[str, ...]:
    """The GPUs in CUDA_VISIBLE_DEVICES where it is set (read as the schedulers' allocation is), else
    the /dev/nvidiaN devices."""
    # Here, as in capacity(): `status` reads workers' capacities through this module, and imports no
    # scheduler module.
    from .schedulers.environment import visible_devices
    visible = visible_devices(environ)
    if visible is not None:
        return visible
    try:
        names = os.listdir(dev)
    except OSError:  # no /dev, as in some containers: no GPUs
        names = []
    found = sorted(int(m.group(1)) for name in names if (m := re.fullmatch(r"nvidia(\d+)", name)))
    return tuple(str(i) for i in found)


def capacity(cpus: int | None = None, mem: str | int | None = None, gpus: int | None = None,
             environ: Mapping[str, str] | None = None, job: JobEnvironment | None = None) -> Capacity:
    """What this worker may run; `cpus`, `mem`, `gpus` are `execute`'s options (None: not given)."""
    environ = os.environ if environ is None else environ
    if job is None:
        # Here: `status` reads workers' capacities through this module, and has no job to detect.
        from .schedulers.environment import detect
        job = detect(environ)
    where = job.scheduler or "machine"
    sources: dict[str, str] = {}
    given = parse({"cpus": cpus, "mem": mem, "gpus": gpus}, "execute") if any(
        v is not None for v in (cpus, mem, gpus)) else Resources()

    if given.cpus is not None:
        n_cpus, sources["cpus"] = given.cpus, "--cpus"
    elif job.cpus is not None:
        n_cpus, sources["cpus"] = job.cpus, where
    else:
        n_cpus, sources["cpus"] = machine_cpus(), "machine"

    memory: int | None
    if given.memory is not None:
        memory, sources["memory"] = given.memory, "--mem"
    elif job.memory is not None:
        memory, sources["memory"] = job.memory // _MIB, where
    else:
        memory, sources["memory"] = machine_memory(), "machine"

    devices = job.gpus if job.gpus is not None else machine_gpus(environ)
    sources["gpus"] = where if job.gpus is not None else "machine"
    if given.gpus is not None:
        if devices and given.gpus > len(devices):
            raise ResourceError(f"--gpus {given.gpus}: only {len(devices)} GPU(s) visible here "
                                f"({','.join(devices)})", "execute", "gpus")
        # The first N of those visible; without any visible, devices 0..N-1 as numbered by the driver.
        devices = devices[:given.gpus] if devices else tuple(str(i) for i in range(given.gpus))
        sources["gpus"] = "--gpus"
    result = Capacity(cpus=n_cpus, memory=memory, gpus=tuple(devices), walltime=job.walltime, sources=sources)
    log.debug("worker capacity: %s", result.describe())
    return result
