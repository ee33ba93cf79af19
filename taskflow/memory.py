"""Peak memory of one task, as the worker measures it.

Linux keeps a process's peak resident size and lets the process reset it
(writing 5 to /proc/self/clear_refs), so the peak during one task is the peak
read after it, provided it was reset after the previous one. getrusage()
reports that same peak in one system call, where reading /proc/self/status
takes three and a parse; resetting only when the peak rose noticeably keeps a
tiny task's cost at that one call. getrusage() never reports less than the
peak inherited across exec(), though, so where that floor is above the
current size the peak is read from /proc/self/status instead. Elsewhere, the
process's lifetime peak is the best available bound.
"""
from __future__ import annotations

import os
import resource
import sys

_STATUS = "/proc/self/status"
_CLEAR = "/proc/self/clear_refs"
_SLACK_KIB = 1024  # growth below this is not worth a reset (three system calls)


class _Meter:
    def __init__(self) -> None:
        self.start()

    def start(self) -> None:
        """Measure from now: a forked child has its own peak and its own floor."""
        self.mode = "unknown" if sys.platform.startswith("linux") else "lifetime"
        self.baseline = 0  # peak KiB right after the last reset

    def peak_bytes(self) -> int:
        if self.mode == "unknown":
            self.mode = self._choose()
        try:
            if self.mode == "rusage":
                return self._from_rusage() * 1024
            if self.mode == "status":
                return self._from_status() * 1024
        except (OSError, KeyError, ValueError, IndexError):
            self.mode = "lifetime"
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return maxrss if sys.platform == "darwin" else maxrss * 1024

    def _choose(self) -> str:
        try:
            _reset()
            current = _status_kib((b"VmRSS",))[b"VmRSS"]
        except (OSError, KeyError, ValueError, IndexError):
            return "lifetime"
        self.baseline = _maxrss_kib()
        return "rusage" if self.baseline <= current + _SLACK_KIB else "status"

    def _from_rusage(self) -> int:
        peak = _maxrss_kib()
        if peak > self.baseline + _SLACK_KIB:
            _reset()
            self.baseline = _maxrss_kib()
        return peak

    def _from_status(self) -> int:
        kib = _status_kib((b"VmHWM", b"VmRSS"))
        peak, now = kib[b"VmHWM"], kib[b"VmRSS"]
        if peak > now + _SLACK_KIB:
            _reset()
        return peak


def _maxrss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset() -> None:
    fd = os.open(_CLEAR, os.O_WRONLY)
    try:
        os.write(fd, b"5")
    finally:
        os.close(fd)


def _status_kib(fields: tuple[bytes, ...]) -> dict[bytes, int]:
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


_meter = _Meter()
os.register_at_fork(after_in_child=_meter.start)


def task_peak_bytes() -> int:
    """Peak resident bytes since the last call, then arm the counter for the next task."""
    return _meter.peak_bytes()
