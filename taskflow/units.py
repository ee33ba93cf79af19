"""Durations and memory sizes as people and batch schedulers write them: `3h30m`, `90s`,
`1d`, `1-12:00:00`; `8G`, `512M`."""
from __future__ import annotations

import math
import re

from .errors import UsageError

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)?", re.IGNORECASE)
_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1, None: 1}


def parse_duration(text: str | float | int, option: str = "duration") -> float:
    """Seconds in `3h30m`, `45m`, `90s`, `1d2h`, `1:30:00`, `2-00:00:00` or a plain number of seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    s = text.strip()
    # As schedulers write it: MM:SS, HH:MM:SS, or with days D-HH, D-HH:MM, D-HH:MM:SS.
    clock = re.fullmatch(r"(?:(\d+)-(\d+)(?::(\d{1,2}))?(?::(\d{1,2}))?)|(?:(\d+(?::\d{1,2}){1,2}))", s)
    if clock:
        if clock.group(1) is not None:
            days, hours, minutes, secs = (int(g or 0) for g in clock.group(1, 2, 3, 4))
            return float(((days * 24 + hours) * 60 + minutes) * 60 + secs)
        seconds = 0
        for part in clock.group(5).split(":"):
            seconds = seconds * 60 + int(part)
        return float(seconds)
    pos, total, matched = 0, 0.0, False
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m or m.end() == pos:
            break
        total += float(m.group(1)) * _SECONDS[m.group(2).lower() if m.group(2) else None]
        pos, matched = m.end(), True
    if not matched or pos != len(s):
        raise UsageError(f"{option}: cannot read {text!r} as a duration (examples: 90, 45m, 3h30m, 1d)")
    return total


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    if d:
        return f"{d}d{h}h{m}m"
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{s:02d}s"
    return f"{s}s"


_MEMORY = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?", re.IGNORECASE)
_MEGABYTES = {"k": 1 / 1024, "": 1, "m": 1, "g": 1024, "t": 1024 * 1024}


def parse_memory(text: str | int, option: str = "--mem") -> int:
    """Megabytes in `8G`, `512M`, `8GB`, `1.5g` or a plain number of megabytes (as Slurm reads it)."""
    if isinstance(text, int):
        return text
    m = _MEMORY.fullmatch(text.strip())
    if not m:
        raise UsageError(f"{option}: cannot read {text!r} as a memory size (examples: 512M, 8G, 1.5G)")
    megabytes = int(math.ceil(float(m.group(1)) * _MEGABYTES[m.group(2).lower()]))
    if megabytes <= 0:
        raise UsageError(f"{option}: {text!r} is no memory at all")
    return megabytes
