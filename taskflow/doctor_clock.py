"""The clock of a shared filesystem: the granularity of its time stamps, and its offset from ours.

A file is rewritten over and over and its mtime read back through a fresh
open. Each sample brackets the write between two readings of this host's
clock, and the stamp says the filesystem's clock was in
[stamp, stamp + granularity) at that moment, so every sample bounds the offset
between the two clocks; the bounds of all samples intersect to a narrow
interval, narrowest at a tick of a whole-second clock. Sampling stops once
the stamp has ticked, which on whole-second filesystems takes up to a second.
"""
from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass

from .stores.identity import HOST, process

CLOCK_SAMPLE_LIMIT = 2.5    # seconds: long enough to see a whole-second stamp tick twice over


@dataclass
class Clock:
    granularity: float      # seconds between two distinct stamps (the coarser of units and ticks)
    whole_seconds: bool
    offset: float           # filesystem clock minus this host's clock
    uncertainty: float      # half-width of the interval the offset lies in
    samples: int
    seconds: float          # how long the sampling took

    def fs_now(self) -> float:
        return time.time() + self.offset


def _units(ns: int) -> int:
    unit = 1
    while unit < 1_000_000_000 and ns % (unit * 10) == 0:
        unit *= 10
    return unit


def sample_clock(folder: str, limit: float = CLOCK_SAMPLE_LIMIT) -> Clock:
    """Granularity of the filesystem's time stamps and its clock's offset, from a file in `folder`."""
    path = os.path.join(folder, f"clock.{HOST}.{process.pid}.{process.unique()}")
    samples: list[tuple[float, float, int]] = []
    start = time.monotonic()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while True:
            before = time.time()
            os.pwrite(fd, b"t", 0)
            check = os.open(path, os.O_RDONLY)  # a fresh open: attributes revalidated, as claims are read
            try:
                ns = os.fstat(check).st_mtime_ns
            finally:
                os.close(check)
            samples.append((before, time.time(), ns))
            ticks = sum(1 for a, b in itertools.pairwise(samples) if b[2] != a[2])
            elapsed = time.monotonic() - start
            if (ticks >= 1 and len(samples) >= 20) or elapsed >= limit:
                break
    finally:
        os.close(fd)
        os.unlink(path)
    stamps = [s[2] for s in samples]
    steps = [b - a for a, b in itertools.pairwise(stamps) if b > a]
    unit = min(_units(ns) for ns in stamps)
    granularity = max(unit, min(steps) if steps else unit) / 1e9
    if not steps:  # the stamp never moved: all we know is that it is coarser than our sampling
        granularity = max(granularity, samples[-1][1] - samples[0][0])
    low = max(ns / 1e9 - after for before, after, ns in samples)
    high = min(ns / 1e9 + granularity - before for before, after, ns in samples)
    if low > high:  # stamps not taken at the write (set on close, or cached): bound loosely
        mids = sorted(ns / 1e9 - (before + after) / 2 for before, after, ns in samples)
        low, high = mids[0] - granularity, mids[-1] + granularity
    return Clock(granularity, unit == 1_000_000_000, (low + high) / 2, (high - low) / 2, len(samples),
                 time.monotonic() - start)
