"""Claims in a Redis store: one key per running task, expired by the server.

A claim is the key P:claim:<hash> holding "<token> <owner record>", made by a
script that makes it only where there is none, and counts a second send of
the very same claim as made (see scripts.py). The owner record names its
owner as a folder store's lock file does (host, boot id, pid, worker id,
start, lease); the token is random, so two claims are never equal. The owner
renews it several times per lease by resetting its time to live, and renews
and releases only while the key still holds its token: each is one script
comparing and acting in one atomic step, so a worker never touches a claim
that is no longer its own.

Age is the server's to measure: the key lives for two leases from its last
renewal, and a claim whose time to live fell under one lease was not renewed
within its lease: it is stale. Host clocks never matter, and a worker stopped
past its lease (SIGSTOP, a suspended laptop) finds another worker's claim in
its place when it comes back. A claim is stale at once when its owner ran on
this host (same hostname and boot id) and its process is gone. Taking over
is one script that checks, at the moment it runs, that the claim is still
the very value judged and still stale (its time to live under a lease, or
its owner gone), so of several racers exactly one wins and a claim renewed
meanwhile stays its owner's. A stale claim nobody takes over is dropped by
the server a lease later.

A claim that vanished while its owner still runs (deleted, or its owner was
stopped for two leases) is made again by the owner's next renewal or check,
unless the task's result is in place or another worker claimed it.

The set P:claims names every hash that may be claimed, so that listing the
running tasks needs no SCAN of the keyspace; members whose claim expired are
dropped by the listing script.
"""
from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from ...errors import StoreServerError
from ..claims import Claim, ClaimInfo, Claims
from ..identity import BOOT_ID, HOST, elapsed_clock, gone_from_here, process, worker_id
from ..lease import DEFAULT_LEASE, check_lease
from . import scripts
from .connection import Connection
from .keys import Keys

log = logging.getLogger(__name__)

# A claim this young is ours without a look (see `_young`): half a lease, less this for the time a
# claim takes to reach the server.
_YOUNG_MARGIN = 0.5

# Why a claim the server dropped unreleased counts as an attempt whose worker died.
EXPIRED = "its claim expired unreleased (not renewed for two leases)"


def _token_of(raw: bytes) -> str:
    return raw.split(b" ", 1)[0].decode("ascii", "replace")


def _signed(key: Any, value: bytes) -> bytes:
    """A claim's value with the MAC of the store's key (signing.py), if it has one."""
    return value if key is None else key.sign_claim(value, 0)


def _unsigned(key: Any, raw: bytes) -> str | None:
    """Why a claim's value is not signed with the store's key; None when it is, or there is none."""
    return None if key is None else key.claim_problem(raw, 0)


def owner_of(raw: bytes | None) -> dict | None:
    """The owner record in a claim's value; {} when unreadable, None when there is no claim."""
    if raw is None:
        return None
    try:
        owner = json.loads(raw.split(b" ", 1)[1])
    except (ValueError, IndexError):
        return {}
    return owner if isinstance(owner, dict) else {}


class RedisClaims(Claims):
    """Claims of one worker (or reader) on one Redis store."""

    def __init__(self, store: Any, connection: Connection, keys: Keys, lease: float | None = None,
                 worker: str | None = None, reader: bool = False, clock: Callable[[], float] = time.time):
        self.store = store
        self.connection = connection
        self.keys = keys
        self.lease = check_lease(DEFAULT_LEASE if lease is None else lease)
        if worker or not reader:  # a reader's is made when asked for (Claims.__getattr__)
            self.worker = worker or worker_id()
        self.reader = reader
        self.read_only = False  # the server's clock is read, never written: a reader needs no write
        self.clock = clock  # wall clock: only for the informational start time
        self._owner_json: tuple[int, str] | None = None
        self._scripts: dict[str, Any] = {}

    def __reduce__(self) -> tuple:
        return _remake, (self.store, self.lease, self.worker, self.reader)

    def _script(self, source: str) -> Any:
        # Made per client: a Script sends EVALSHA and loads itself again after a server restart.
        client = self.connection.client
        script = self._scripts.get(source)
        if script is None or script.registered_client is not client:
            script = client.register_script(source)
            self._scripts[source] = script
        return script

    @property
    def lease_ms(self) -> int:
        return max(1, int(self.lease * 1000))

    @property
    def ttl_ms(self) -> int:
        """How long a claim's key lives after each renewal: a live lease, then a stale one."""
        return 2 * self.lease_ms

    def now(self, seen: float = 0.0) -> float:
        return max(self.connection.server_now(), seen)

    def close(self) -> None:
        """Nothing to let go of: the connection belongs to the store."""

    def _value(self, task_hash: str, token: str) -> bytes:
        if self._owner_json is None or self._owner_json[0] != process.pid:
            owner = json.dumps({"host": HOST, "boot": BOOT_ID, "pid": process.pid, "worker": self.worker,
                                "lease": self.lease})
            self._owner_json = (process.pid, owner[:-1])
        value = (f'{token} {self._owner_json[1]}, "started": {float(self.clock())!r}, '
                 f'"fs_started": {self.now():.3f}, "task": {json.dumps(task_hash)}}}').encode()
        return _signed(self.store.key, value)

    # -- claiming --------------------------------------------------------

    def claim(self, task_hash: str, take_over: bool = True) -> Claim | None:
        token = secrets.token_hex(10)
        value = self._value(task_hash, token)
        made = elapsed_clock()
        with self.connection.guard(f"claiming {task_hash[:12]}"):
            won = int(self._script(scripts.CLAIM)(keys=self.keys.claiming(task_hash),
                                                  args=[value, self.ttl_ms, task_hash, token, EXPIRED]))
        if won:  # more than 1: the claim before ours expired unreleased, and counts as dead
            return Claim(task_hash, token, made, BOOT_ID, died=won - 1)
        if not take_over:
            return None
        info = self.inspect(task_hash)
        if info is None:  # released or expired between our attempt and our look
            return self.claim(task_hash, take_over=False)
        if not info.stale:
            return None
        return self._take_over(info)

    def _take_over(self, info: ClaimInfo) -> Claim | None:
        token = secrets.token_hex(10)
        value = self._value(info.task_hash, token)
        made = elapsed_clock()
        with self.connection.guard(f"taking over the claim on {info.task_hash[:12]}"):
            won = int(self._script(scripts.TAKE_OVER)(keys=self.keys.claiming(info.task_hash),
                                                      args=[info.raw, self._stale_below(info), value, self.ttl_ms,
                                                            info.task_hash, info.reason]))
        if not won:
            return None
        log.warning("took over stale claim on %s from %s (%s)", info.task_hash,
                    info.owner.get("worker", "unknown owner"), info.reason)
        return Claim(info.task_hash, token, made, BOOT_ID, died=won - 1)

    def remove_stale(self, info: ClaimInfo) -> bool:
        with self.connection.guard(f"removing the stale claim on {info.task_hash[:12]}"):
            return bool(self._script(scripts.REMOVE_STALE)(keys=[self.keys.claim(info.task_hash), self.keys.claims,
                                                                 self.keys.holders],
                                                           args=[info.raw, self._stale_below(info), info.task_hash]))

    def _stale_below(self, info: ClaimInfo) -> int:
        """What the scripts check again before taking or removing a claim judged stale: 0 when its
        owner is gone (nobody can renew it), else the time to live in ms under which it is stale."""
        if gone_from_here(info.owner) or _unsigned(self.store.key, info.raw) is not None:
            return 0  # nobody can renew it, or nobody who holds the key would
        return max(1, int(self._lease_of(info.owner) * 1000))

    def _lease_of(self, owner: dict) -> float:
        try:
            return float(owner.get("lease") or self.lease)
        except (TypeError, ValueError):
            return self.lease

    # -- judging ---------------------------------------------------------

    def inspect(self, task_hash: str) -> ClaimInfo | None:
        with self.connection.guard(f"reading the claim on {task_hash[:12]}"):
            raw, left = self._script(scripts.INSPECT)(keys=[self.keys.claim(task_hash)])
        if raw is None:
            return None
        return self._judge(task_hash, raw, left)

    def listing(self) -> list[ClaimInfo]:
        """Every claim held now, judged: one script, no SCAN."""
        with self.connection.guard("listing claims"):
            flat = self._script(scripts.LIST_CLAIMS)(keys=[self.keys.claims], args=[self.keys.claim_prefix])
        return [self._judge(flat[i].decode("ascii", "replace"), flat[i + 1], flat[i + 2])
                for i in range(0, len(flat), 3)]

    def claimed(self) -> set[str]:
        return {info.task_hash for info in self.listing()}

    def owner(self, task_hash: str) -> dict | None:
        with self.connection.guard(f"reading the claim on {task_hash[:12]}") as r:
            return owner_of(r.get(self.keys.claim(task_hash)))

    def _judge(self, task_hash: str, raw: bytes, left_ms: int) -> ClaimInfo:
        owner = owner_of(raw) or {}
        lease = self._lease_of(owner)
        # The key lives two leases from its last renewal; one without expiry was made by hand.
        age = max(0.0, 2 * lease - left_ms / 1000) if left_ms >= 0 else 0.0
        if gone_from_here(owner):
            return ClaimInfo(task_hash, owner, age, True, f"process {owner['pid']} on {HOST} is gone", raw)
        if (problem := _unsigned(self.store.key, raw)) is not None:  # made without the key
            return ClaimInfo(task_hash, owner, age, True, f"a claim {problem}", raw)
        if age > lease:
            return ClaimInfo(task_hash, owner, age, True, f"not renewed for {age:.0f}s (lease {lease:.0f}s)", raw)
        return ClaimInfo(task_hash, owner, age, False, "live", raw, left=lease - age)

    # -- the owner's side -------------------------------------------------

    def _young(self, claim: Claim) -> bool:
        # Nobody can judge a claim stale before a lease has passed on the server's clock since it
        # was made, unless its owner is gone: a claim made here less than half a lease ago is ours.
        return claim.boot == BOOT_ID and elapsed_clock() - claim.made < self.lease / 2 - _YOUNG_MARGIN

    def _renew(self, claim: Claim) -> int:
        value = self._value(claim.task_hash, claim.token)
        with self.connection.guard(f"renewing the claim on {claim.task_hash[:12]}"):
            return int(self._script(scripts.RENEW)(
                keys=[self.keys.claim(claim.task_hash), self.keys.claims, self.keys.result(claim.task_hash),
                      self.keys.holders, self.keys.died],
                args=[claim.token, self.ttl_ms, value, claim.task_hash]))

    def _outcome(self, claim: Claim, answer: int) -> bool:
        if answer == 2:
            log.warning("claim on %s vanished (deleted, or this worker was stopped for two leases), and nobody "
                        "else claimed the task; made it again", claim.task_hash)
        if answer > 0:
            return True
        claim.lost = True
        claim.why = ("its claim vanished, and the task was finished elsewhere" if answer == -1
                     else "another worker took it over")
        log.warning("lost claim on %s: %s", claim.task_hash, claim.why)
        return False

    def renew(self, claim: Claim) -> bool:
        """Reset the claim's expiry if it is still ours; False (and `lost` set) otherwise.

        A server that cannot be reached answers False without marking the claim lost (nobody can
        say whose it is): `holds`, before the result is saved, asks again."""
        if claim.lost:
            return False
        try:
            answer = self._renew(claim)
        except StoreServerError as e:
            log.warning("could not renew the claim on %s: %s", claim.task_hash, e)
            return False
        if answer > 0:
            claim.renewals += 1
        return self._outcome(claim, answer)

    def holds(self, claim: Claim) -> bool:
        if claim.lost:
            return False
        if self._young(claim):
            return True
        return self._outcome(claim, self._renew(claim))

    def still_ours(self, claim: Claim) -> bool:
        with self.connection.guard(f"reading the claim on {claim.task_hash[:12]}") as r:
            raw = r.get(self.keys.claim(claim.task_hash))
        return raw is not None and _token_of(raw) == claim.token

    def release(self, claim: Claim) -> bool:
        if claim.lost:
            log.warning("not releasing the claim on %s: it is no longer ours", claim.task_hash)
            return False
        claim.lost = True  # given back: never ours again
        with self.connection.guard(f"releasing the claim on {claim.task_hash[:12]}"):
            removed = self._script(scripts.RELEASE)(keys=[self.keys.claim(claim.task_hash), self.keys.claims,
                                                          self.keys.holders],
                                                    args=[claim.token, claim.task_hash])
        if not removed:
            log.warning("not releasing the claim on %s: it is no longer ours", claim.task_hash)
        return bool(removed)


def _remake(store: Any, lease: float, worker: str, reader: bool) -> RedisClaims:
    return store.claims(lease=lease, worker=worker, reader=reader)
