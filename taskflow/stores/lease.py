"""Leases: how long a claim lives without renewal, and the thread that renews it.

Every kind of store judges claims by lease: a claim not renewed within its
lease is stale and may be taken over. The heartbeat renews the claim of the
running task several times per lease through `Claims.renew`, whatever the
store.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from ..errors import UsageError
from .base import Claim, Claims

log = logging.getLogger(__name__)

DEFAULT_LEASE = 300.0
# Below this a claim goes stale between its renewals, on a filesystem with whole-second
# time stamps even right after one, and its task is taken over and run again and again.
MIN_LEASE = 1.0
HEARTBEATS_PER_LEASE = 4


def check_lease(seconds: float, option: str = "lease") -> float:
    """`seconds` if it is a usable lease; a UsageError naming `option` otherwise."""
    if not seconds >= MIN_LEASE:  # NaN too
        raise UsageError(f"{option}: a lease of {seconds:g}s is too short; give at least {MIN_LEASE:g}s "
                         f"(default {DEFAULT_LEASE:g}s), or claims go stale while their tasks run")
    return float(seconds)


class Heartbeat:
    """A daemon thread renewing the current claim (or the claims of a batch) several times per lease."""

    def __init__(self, claims: Claims):
        self.claims = claims
        self.interval = claims.lease / HEARTBEATS_PER_LEASE
        self._claim: Claim | Sequence[Claim] | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="taskflow-heartbeat", daemon=True)
        self._thread.start()

    def watch(self, claim: Claim | Sequence[Claim] | None) -> None:
        with self._lock:
            self._claim = claim

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self.interval)
            if self._stopped:
                return
            with self._lock:
                claim = self._claim
                if claim is not None:
                    try:
                        if isinstance(claim, Claim):
                            self.claims.renew(claim)
                        else:
                            self.claims.renew_all(claim)
                    except OSError as e:
                        what = claim.task_hash if isinstance(claim, Claim) else f"a batch of {len(claim)} tasks"
                        log.warning("could not renew claim on %s: %s", what, e)

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()
        self._thread.join(timeout=5)
