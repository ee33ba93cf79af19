"""Taking over a stale claim file, and removing one (cleanup).

Rename the claim to a unique name, then check that the renamed file holds the
very bytes judged stale. Rename is atomic, so exactly one racer moves that
file. Racers that judged the same claim stale first compete for a token named
after that claim's random token (O_EXCL), the same name on every client, so
only one of them renames at all: a loser renaming after the winner would move
the winner's new claim away, and while it is away a third worker could claim
the task too. The winner gives the token up only once its own claim is in
place, so a late racer finds either the token or the new claim, never an
empty place. If the owner renews between the winner's look and its rename,
the winner puts the file back with link(), which cannot overwrite. The winner
then claims with O_EXCL like anyone.

The token's holder judges the claim again before moving it (`still_stale`),
from bytes and an mtime fetched from the filesystem rather than from this
client's caches: a caching client can serve the pages or attributes of the
file that had the name before, so a late racer could otherwise judge the
winner's new claim by the dead claim's bytes, or by its mtime, and take the
task a second time.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Protocol

from ..claims import ClaimInfo
from ...hashing import blake2b
from ..identity import process
from . import attempts, claimfiles, judging
from .claimfiles import FolderClaim, LockInfo, fresh_head
from .files import remove_file
from .layout import Folder


class Taker(Protocol):
    """What a takeover uses of the claims taking over (claims.FolderClaims)."""

    store: Folder
    lease: float
    worker: str

    def now(self, seen: float = 0.0) -> float: ...
    def create(self, task_hash: str) -> FolderClaim | None: ...
    def judge(self, task_hash: str, path: str) -> LockInfo | None: ...
    def record(self, task_hash: str, token: str) -> bytes: ...

log = logging.getLogger(__name__)


def remove_stale(claims: Taker, info: ClaimInfo) -> bool:
    """Remove the claim judged stale in `info`, if it is still that very file."""
    path = claims.store.lock_path(info.task_hash)
    token = _take_token(claims, path, info)
    if token is None:
        return False
    try:
        return still_stale(claims, path, info) and move_away(path, info)
    finally:
        _drop_token(*token)


def take_over(claims: Taker, info: ClaimInfo) -> FolderClaim | None:
    path = claims.store.lock_path(info.task_hash)
    token = _take_token(claims, path, info)
    if token is None:
        return None
    try:
        if not still_stale(claims, path, info):
            return None
        # Counted under the token, so one racer counts each dead claim, and before the claim is
        # moved: a plain claim made in the moment its place is empty then sees the count too.
        mark = claim_mark(info)
        died = attempts.count(claims.store.attempts_dir, info.task_hash, mark, {
            "owner": info.owner, "reason": info.reason, "time": time.time(), "by": claims.worker},
            claims.store.modes)
        if not move_away(path, info):
            attempts.forgive(claims.store.attempts_dir, info.task_hash, mark)  # it was renewed: alive
            return None
        # Made before the token is given up: a racer that judged the same claim and comes
        # late finds the token or this claim in place, never an empty place to claim.
        claim = claims.create(info.task_hash)
        if claim is not None:  # None: a plain claim, or the owner remaking its file, came first
            log.warning("took over stale claim on %s from %s (%s)", info.task_hash,
                        info.owner.get("worker", "unknown owner"), info.reason)
            claim.died = died
        return claim
    finally:
        _drop_token(*token)


def claim_mark(info: ClaimInfo) -> str:
    """The name of the claim judged in `info`, the same on every client: its random token."""
    mark = info.owner.get("token")
    if not (isinstance(mark, str) and mark.isascii() and mark.isalnum() and len(mark) <= 64):
        # Being written, or damaged: named after what it holds, as every client reads it.
        mark = blake2b(info.raw, digest_size=10).hexdigest()
    return mark


def _take_token(claims: Taker, path: str, info: ClaimInfo) -> tuple[str, bytes] | None:
    """The right to take over the claim judged in `info`, or None if another racer has it."""
    token = f"{path}.takeover.{claim_mark(info)}"
    content = claims.record(info.task_hash, process.unique())
    for _ in range(3):
        fd = claimfiles.exclusive(token, claims.store.modes)
        if fd is None:
            held = claims.judge(info.task_hash, token)
            if held is not None and not held.stale:
                return None
            # Its holder died, or froze for a whole lease, in the middle of a takeover.
            remove_file(token)
            continue
        try:
            os.write(fd, content)
        finally:
            os.close(fd)
        return token, content
    return None


def _drop_token(token: str, content: bytes) -> None:
    if fresh_head(token, len(content) + 1) == content:  # not one that replaced ours as abandoned
        remove_file(token)


def still_stale(claims: Taker, path: str, info: ClaimInfo) -> bool:
    """Judge the claim at `path` again, under the token, from what the filesystem holds now:
    stale, and byte for byte what `info` judged.

    The first judgment may have paired bytes and attributes from this client's caches, which
    can outlive the file they came from: the dead claim's bytes after a racer replaced it, or
    a new claim's bytes (even half written) with the dead one's mtime. Either would hand a
    live claim to a second winner; bytes with their own token, read with attributes both
    fetched from the filesystem, cannot.
    """
    got = claimfiles.fresh_read(path, len(info.raw) + 1)
    if got is None or got[1] != info.raw:
        return False
    mtime, raw = got
    return judging.judge(raw, mtime, claims.now(mtime), claims.lease, claims.store.key)[2]


def move_away(path: str, info: ClaimInfo) -> bool:
    """Remove the claim file at `path` if it holds exactly the bytes judged in `info`.

    Both looks read past the client's page cache (`fresh_head`): the judged bytes may
    have come from the pages of a claim that another racer has already replaced, and
    only the server's bytes, which hold each claim's own token, tell the two apart.
    """
    judged = info.raw
    if fresh_head(path, len(judged) + 1) != judged:
        return False  # renewed, released or taken over since we judged it
    grave = f"{path}.stale.{process.unique()}"
    try:
        os.rename(path, grave)
    except FileNotFoundError:
        return False
    moved = fresh_head(grave, len(judged) + 1)
    if moved == judged:
        os.unlink(grave)
        return True
    if moved is not None:
        # The owner renewed it between our look and our rename: put it back.
        claimfiles.put_back(grave, path, info.task_hash, "was renewed during takeover")
    return False
