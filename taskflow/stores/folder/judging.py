"""Judging a claim file: live, or stale and free to take over."""
from __future__ import annotations

import json

from ..identity import HOST, gone_from_here


def judge(raw: bytes, mtime: float, now: float, default_lease: float) -> tuple[dict, float, bool, str]:
    """(owner, age, stale, reason) of a claim whose bytes are `raw`, last written at `mtime`
    on the filesystem's clock, which reads `now`.

    Stale when its owner ran on this host and is gone, or when it was not renewed within
    the lease it records (`default_lease` when it records none it can read).
    """
    try:
        owner = json.loads(raw)
        if not isinstance(owner, dict):
            raise ValueError
    except ValueError:
        owner = {}  # being written right now, or damaged: judged by age alone
    age = now - mtime
    try:
        lease = float(owner.get("lease") or default_lease)
    except (TypeError, ValueError):
        lease = default_lease
    if gone_from_here(owner):
        return owner, age, True, f"process {owner['pid']} on {HOST} is gone"
    if age > lease:
        return owner, age, True, f"not renewed for {age:.0f}s (lease {lease:.0f}s)"
    return owner, age, False, "live"
