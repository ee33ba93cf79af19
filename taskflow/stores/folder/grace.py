"""How long a new pack waits before results go into it: longer than any client caches "not found".

Readers find a new pack by looking up the next number by name (packindex.py).
A client that looked up that name just before the pack was made may answer
"not found" from its cache for a while: NFS with lookupcache=all (the
default) until the folder's attributes are revalidated, at most acdirmax
(60 s by default); a FUSE mount with a negative_timeout for that long. A
result packed into the pack in that window and its claim given back would
let such a client claim the task, not find its result, and run it again.
So a writer makes its pack first and writes results as files of their own
until the pack is GRACE seconds old; by then every cached "not found" for its
name has expired, and each later look up finds it.

TASKFLOW_PACK_GRACE sets it in seconds. The default is DEFAULT_GRACE, and 0
where the store is on tmpfs or ramfs: memory that no other machine mounts,
so every reader shares the writer's kernel and its one name cache.
"""
from __future__ import annotations

import os

from ...errors import UsageError

DEFAULT_GRACE = 90.0  # above NFS's longest default directory attribute cache (acdirmax=60 s)
_ONE_KERNEL = {"tmpfs", "ramfs"}


def grace_for(folder: str) -> float:
    """Seconds a new pack in `folder` waits before results go into it."""
    value = os.environ.get("TASKFLOW_PACK_GRACE", "").strip()
    if value:
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if not seconds >= 0:  # also NaN
            raise UsageError(f"TASKFLOW_PACK_GRACE must be a number of seconds >= 0, not {value!r}")
        return seconds
    return 0.0 if filesystem_of(folder) in _ONE_KERNEL else DEFAULT_GRACE


def filesystem_of(path: str) -> str:
    """The type of the filesystem `path` (or its nearest existing parent) is on, as
    /proc/self/mountinfo names it; "" where that cannot be read."""
    path = os.path.realpath(path)
    while not os.path.exists(path) and path != os.path.dirname(path):
        path = os.path.dirname(path)
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    best, kind = "", ""
    for line in lines:
        fields, _, rest = line.partition(" - ")
        parts = fields.split()
        if len(parts) < 5 or not rest:
            continue
        point = _unescape(parts[4])
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):  # the later of equal mounts is the one on top
            best, kind = point, rest.split()[0]
    return kind


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field
