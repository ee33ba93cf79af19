"""Giving back a claim file of a folder store: only while it is still byte-for-byte ours.

A check followed by a removal could be split by a freeze as long as a lease,
and the removal would then hit the claim of the worker that took over. So
the file is first moved aside to a unique name, judged again where it lies,
and only then removed; a claim of another worker moved by mistake goes back
with link(), which cannot overwrite a third worker's. A claim still young
after the move was ours when moved (see FolderClaims.holds); an older one is
read again, past this client's page cache.

A finished task's claim is given back with one unlink while it is young: the
result is in place, so even a claim lost between the look and the removal
costs nothing but a third worker's claim that finds the result and goes.
"""
from __future__ import annotations

import logging
import os
from typing import Protocol

from ..identity import process
from . import claimfiles
from .claimfiles import FolderClaim, fresh_head, same_claim

log = logging.getLogger(__name__)

_VANISHED = ("not releasing the claim on %s: its claim file vanished (deleted from the store, "
             "or taken over and released)")
_NOT_OURS = "not releasing the claim on %s: it is no longer ours"


class Releaser(Protocol):
    """What a release uses of the claims giving back (claims.FolderClaims)."""

    def young(self, claim: FolderClaim) -> bool: ...


def give_back(claims: Releaser, c: FolderClaim) -> bool:
    """Remove our claim `c`; False, and the file left in place, when it is not ours."""
    size = len(c.content) + 1
    if not c.lost and not claims.young(c):  # checked first too, so that another's claim is left in place
        raw = fresh_head(c.path, size)
        if raw is None:
            c.lost = True
            log.warning(_VANISHED, c.task_hash)
            return False
        c.lost = not same_claim(raw, c.content)
    if c.lost:
        log.warning(_NOT_OURS, c.task_hash)
        return False
    c.lost = True  # given back: never ours again, however recent
    moved = f"{c.path}.released.{process.unique()}"
    try:
        os.rename(c.path, moved)
    except FileNotFoundError:
        log.warning(_VANISHED, c.task_hash)
        return False
    if claims.young(c) or same_claim(fresh_head(moved, size), c.content):
        os.unlink(moved)
        return True
    claimfiles.put_back(moved, c.path, c.task_hash, "of another worker was moved while releasing ours")
    log.warning(_NOT_OURS, c.task_hash)
    return False


def give_back_finished(claims: Releaser, c: FolderClaim) -> bool:
    """`give_back` the claim of a task whose result is saved: one unlink while it is young."""
    if c.lost or not claims.young(c):
        return give_back(claims, c)
    c.lost = True
    try:
        os.unlink(c.path)
    except FileNotFoundError:
        log.warning(_VANISHED, c.task_hash)
        return False
    return True
