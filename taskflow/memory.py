"""Peak memory of one task, as the worker measures it.

Linux keeps a process's peak resident size (VmHWM) and lets the process reset
it (writing 5 to /proc/self/clear_refs), so the peak during one task is the
peak read after it, provided it was reset after the previous one. Resetting
only when the peak is above the current size keeps the cost for small tasks
to one read of /proc/self/status. Elsewhere, the process's lifetime peak from
getrusage is the best available bound.
"""
from __future__ import annotations

import os
import resource
import sys

_STATUS = "/proc/self/status"
_CLEAR = "/proc/self/clear_refs"
_can_reset = sys.platform.startswith("linux")


def _read_kib(fields: tuple[bytes, ...]) -> dict[bytes, int]:
    fd = os.open(_STATUS, os.O_RDONLY)
    try:
        text = os.read(fd, 8192)
    finally:
        os.close(fd)
    out = {}
    for line in text.splitlines():
        key, _, rest = line.partition(b":")
        if key in fields:
            out[key] = int(rest.split()[0])
    return out


def task_peak_bytes() -> int:
    """Peak resident bytes since the last call, then arm the counter for the next task."""
    global _can_reset
    if _can_reset:
        try:
            kib = _read_kib((b"VmHWM", b"VmRSS"))
            peak, now = kib[b"VmHWM"], kib[b"VmRSS"]
            if peak > now + 1024:
                fd = os.open(_CLEAR, os.O_WRONLY)
                try:
                    os.write(fd, b"5")
                finally:
                    os.close(fd)
            return peak * 1024
        except (OSError, KeyError, ValueError, IndexError):
            _can_reset = False
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024
