"""Claims in a Redis store: one key per running task, expired by the server.

A claim is `SET P:claim:<hash> CONTENT NX PX LEASE`, made by a script that
also counts a second send of the very same claim as made (see scripts.py).
CONTENT names the owner as a folder store's lock file does (host, boot id,
pid, worker id, start, lease) with a random token, so two claims are never
equal. The owner renews it several times per lease by resetting its expiry,
and renews, releases and saves only while the key still holds its content:
each of those is one script comparing and acting in one atomic step, so a
worker never touches a claim that is no longer its own.

The server expires a claim that was not renewed within its lease: its own
clock is the only one that counts, so hosts whose clocks disagree, or a
worker stopped (SIGSTOP, a suspended laptop) past its lease, cannot keep or
steal a claim. A claim expires on its own; the only stale claim anybody sees
is one whose owner ran on this host (same hostname and boot id) and whose
process is gone: it is taken over at once, by a script that replaces exactly
the content judged stale, so of several racers only one wins.

The set P:claims names every hash that may be claimed, so that listing the
running tasks needs no SCAN of the keyspace; members whose claim expired are
dropped by the listing script itself.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ...lease import BOOT_ID, DEFAULT_LEASE, check_lease, gone_from_here, worker_id
from ...store import HOST, process
from . import scripts
from .connection import Connection
from .keys import Keys

log = logging.getLogger(__name__)

if hasattr(time, "CLOCK_BOOTTIME"):  # runs on while the process is stopped or the machine sleeps
    def _elapsed_clock() -> float:
        return time.clock_gettime(time.CLOCK_BOOTTIME)
else:
    _elapsed_clock = time.monotonic


@dataclass
class RedisClaim:
    task_hash: str
    key: str
    content: bytes
    made: float = 0.0   # _elapsed_clock() just before the claim was made
    lost: bool = False  # taken over by another worker, expired, or released
    renewals: int = 0
    why: str = ""       # why the claim was lost, for messages

    @property
    def path(self) -> str:  # where the claim lives, for messages
        return self.key


@dataclass
class RedisClaimInfo:
    """What a claim says about its owner, as judged now."""

    task_hash: str
    owner: dict
    age: float          # seconds since it was made or last renewed
    stale: bool
    reason: str
    remaining: float = 0.0  # seconds until the server expires it
    raw: bytes = field(default=b"", repr=False)


class RedisClaims:
    """Claims made by one worker in one Redis store."""

    def __init__(self, connection: Connection, keys: Keys, lease: float = DEFAULT_LEASE,
                 worker: str | None = None, clock: Callable[[], float] = time.time):
        self.connection = connection
        self.keys = keys
        self.lease = check_lease(lease)
        self.worker = worker or worker_id()
        self.clock = clock  # wall clock: only for the informational start time
        self._owner_json: tuple[int, str] | None = None
        self._scripts: dict[str, object] = {}

    def _script(self, source: str):
        # Registered per client: a Script sends EVALSHA and loads itself again after a server restart.
        client = self.connection.client
        script = self._scripts.get(source)
        if script is None or getattr(script, "registered_client", None) is not client:
            script = client.register_script(source)
            self._scripts[source] = script
        return script

    @property
    def lease_ms(self) -> int:
        return max(1, int(self.lease * 1000))

    def now(self) -> float:
        """The server's clock: the clock of every claim."""
        return self.connection.server_now()

    def _record(self, task_hash: str) -> bytes:
        if self._owner_json is None or self._owner_json[0] != process.pid:
            owner = json.dumps({"host": HOST, "boot": BOOT_ID, "pid": process.pid, "worker": self.worker,
                                "lease": self.lease})
            self._owner_json = (process.pid, owner[:-1])
        return (f'{self._owner_json[1]}, "started": {float(self.clock())!r}, "fs_started": {self.now():.3f}, '
                f'"task": {json.dumps(task_hash)}, "token": "{process.unique()}"}}').encode()

    # -- claiming --------------------------------------------------------

    def claim(self, task_hash: str, take_over: bool = True) -> RedisClaim | None:
        """Claim the task; None if a live claim of someone else holds it.

        With `take_over`, a claim whose owner is gone from this host is taken over.
        """
        key = self.keys.claim(task_hash)
        content = self._record(task_hash)
        made = _elapsed_clock()
        with self.connection.guard(f"claiming {task_hash[:12]}"):
            won = self._script(scripts.CLAIM)(keys=[key, self.keys.claims],
                                              args=[content, self.lease_ms, task_hash])
        if won:
            return RedisClaim(task_hash, key, content, made)
        if not take_over:
            return None
        info = self.inspect(task_hash)
        if info is None:  # released or expired between our attempt and our look
            return self.claim(task_hash, take_over=False)
        if not info.stale:
            return None
        return self._take_over(info)

    def _take_over(self, info: RedisClaimInfo) -> RedisClaim | None:
        key = self.keys.claim(info.task_hash)
        content = self._record(info.task_hash)
        made = _elapsed_clock()
        with self.connection.guard(f"taking over the claim on {info.task_hash[:12]}"):
            won = self._script(scripts.TAKE_OVER)(keys=[key, self.keys.claims],
                                                  args=[info.raw, content, self.lease_ms, info.task_hash])
        if not won:
            return None
        log.warning("took over stale claim on %s from %s (%s)", info.task_hash,
                    info.owner.get("worker", "unknown owner"), info.reason)
        return RedisClaim(info.task_hash, key, content, made)

    def remove_stale(self, info: RedisClaimInfo) -> bool:
        """Remove the claim judged stale in `info`, if it still holds what was judged."""
        with self.connection.guard(f"removing the stale claim on {info.task_hash[:12]}"):
            return bool(self._script(scripts.REMOVE_STALE)(keys=[self.keys.claim(info.task_hash), self.keys.claims],
                                                           args=[info.raw, info.task_hash]))

    # -- judging ---------------------------------------------------------

    def inspect(self, task_hash: str) -> RedisClaimInfo | None:
        """Read and judge the claim on `task_hash`; None if there is none."""
        with self.connection.guard(f"reading the claim on {task_hash[:12]}"):
            raw, left = self._script(scripts.INSPECT)(keys=[self.keys.claim(task_hash)])
        if raw is None:
            return None
        return self._judge(task_hash, raw, left)

    def list(self) -> list[RedisClaimInfo]:
        """Every claim held now, judged."""
        with self.connection.guard("listing claims"):
            flat = self._script(scripts.LIST_CLAIMS)(keys=[self.keys.claims], args=[self.keys.claim_prefix])
        return [self._judge(flat[i].decode("ascii", "replace"), flat[i + 1], flat[i + 2])
                for i in range(0, len(flat), 3)]

    def _judge(self, task_hash: str, raw: bytes, left_ms: int) -> RedisClaimInfo:
        try:
            owner = json.loads(raw)
            if not isinstance(owner, dict):
                raise ValueError
        except ValueError:
            owner = {}
        try:
            lease = float(owner.get("lease") or self.lease)
        except (TypeError, ValueError):
            lease = self.lease
        remaining = max(0.0, left_ms / 1000) if left_ms >= 0 else lease
        age = max(0.0, lease - remaining)
        if gone_from_here(owner):
            return RedisClaimInfo(task_hash, owner, age, True, f"process {owner['pid']} on {HOST} is gone",
                                  remaining, raw)
        return RedisClaimInfo(task_hash, owner, age, False, "live", remaining, raw)

    # -- the owner's side -------------------------------------------------

    def renew(self, claim: RedisClaim) -> bool:
        """Reset the claim's expiry if it is still ours; mark it lost otherwise."""
        if claim.lost:
            return False
        with self.connection.guard(f"renewing the claim on {claim.task_hash[:12]}"):
            renewed = self._script(scripts.RENEW)(keys=[claim.key], args=[claim.content, self.lease_ms])
        if not renewed:
            return self._lose(claim)
        claim.renewals += 1
        return True

    def holds(self, claim: RedisClaim) -> bool:
        """Whether the claim is still ours: one GET (the server may have expired it)."""
        if claim.lost:
            return False
        with self.connection.guard(f"reading the claim on {claim.task_hash[:12]}") as r:
            held = r.get(claim.key)
        if held == claim.content:
            return True
        return self._lose(claim)

    def _lose(self, claim: RedisClaim) -> bool:
        claim.lost = True
        claim.why = "it expired on the server or another worker took it over"
        log.warning("lost claim on %s: %s", claim.task_hash, claim.why)
        return False

    def release(self, claim: RedisClaim) -> bool:
        """Remove our claim; leaves alone a claim that is no longer ours."""
        if claim.lost:
            log.warning("not releasing the claim on %s: it is no longer ours", claim.task_hash)
            return False
        claim.lost = True  # given back: never ours again
        with self.connection.guard(f"releasing the claim on {claim.task_hash[:12]}"):
            removed = self._script(scripts.RELEASE)(keys=[claim.key, self.keys.claims],
                                                    args=[claim.content, claim.task_hash])
        if not removed:
            log.warning("not releasing the claim on %s: it is no longer ours", claim.task_hash)
        return bool(removed)
