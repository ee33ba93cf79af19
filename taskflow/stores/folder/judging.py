"""Judging a claim file: live, or stale and free to take over."""
from __future__ import annotations

import json

from typing import TYPE_CHECKING

from ..identity import HOST, gone_from_here

if TYPE_CHECKING:
    from ...signing import Key

# Where the renewal counter of a claim file ends (claimfiles.R1): what a claim's MAC leaves out.
RENEWAL_END = len(b'{"renewal": "') + 8

# What a reader of a claim takes for the bytes of a symbolic link to nothing in locks/: the
# target's name after this mark, never the start of a claim file. No worker makes one (batch
# members are hard links); one put there by hand or by a copy of a store must not hold its task.
DANGLING = b"\0dangling:"


def judge(raw: bytes, mtime: float, now: float, default_lease: float, key: Key | None = None
          ) -> tuple[dict, float, bool, str, float]:
    """(owner, age, stale, reason, left) of a claim whose bytes are `raw`, last written at `mtime`
    on the filesystem's clock, which reads `now`; `left` is the time until its lease runs out.

    Stale when its owner ran on this host and is gone, or when it was not renewed within
    the lease it records (`default_lease` when it records none it can read), and at once
    when it is a symbolic link to nothing (`DANGLING`) or, in a store with a `key`, when it is
    whole (its JSON reads) but not signed with that key: made by someone without it.
    """
    if raw.startswith(DANGLING):
        return {}, now - mtime, True, "a link to nothing", 0.0
    try:
        owner = json.loads(raw)
        if not isinstance(owner, dict):
            raise ValueError
    except ValueError:
        owner = {}  # being written right now, or damaged: judged by age alone
    age = now - mtime
    if key is not None and owner:
        problem = key.claim_problem(raw, RENEWAL_END)
        if problem is not None:
            return owner, age, True, f"a claim {problem}", 0.0
    try:
        lease = float(owner.get("lease") or default_lease)
    except (TypeError, ValueError):
        lease = default_lease
    if gone_from_here(owner):
        return owner, age, True, f"process {owner['pid']} on {HOST} is gone", 0.0
    if age > lease:
        return owner, age, True, f"not renewed for {age:.0f}s (lease {lease:.0f}s)", 0.0
    return owner, age, False, "live", lease - age
