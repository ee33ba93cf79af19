"""Batch claims of a folder store: one claim file for many tiny tasks, a symbolic link per member.

A batch is a claim file `locks/<token>.batch`, written as a plain claim is
(owner record, random token, renewal counter) and renewed by the heartbeat
like one. Each member is claimed by `symlink("<token>.batch", "locks/<hash>")`:
one system call, exclusive like O_CREAT|O_EXCL (EEXIST when the task is
claimed, by a plain claim or another batch's link, live, stale or dangling).
Names with a dot are not claims (`FolderClaims.claimed`), so the batch file
is listed by nobody as a task; its members are.

Every reader opens `locks/<hash>` and so follows the link: it sees the
batch's owner record and the batch file's age, and judges each member as it
would a plain claim. A member whose batch goes stale is taken over on its own
by the plain takeover (takeover.py): its token is named after the batch's
token and the member's path, its death counted for that member, and the
rename moves the link, not the batch file. A link to nothing (the batch file
gone: given up, or removed by cleanup after its owner died) reads as
`judging.DANGLING` and is stale at once, so it is taken over like any other.

The owner holds a member while its link is in place: a member younger than
half a lease needs no look (as `FolderClaims.holds`), an older one is ours
while `locks/<hash>` is still a link to our batch (a takeover leaves a plain
claim file there) and the batch file still holds our bytes. Releasing a
young member is one unlink; an older one is moved aside first and checked
where it lies, as a plain claim is. Then the batch file goes.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..base import Claim
from ..identity import BOOT_ID, elapsed_clock, process
from . import attempts, claimfiles
from .claimfiles import FolderClaim, head, same_claim
from .claims import FolderClaims

log = logging.getLogger(__name__)

BATCH = ".batch"


@dataclass
class MemberClaim(FolderClaim):
    """One task of a batch: `path` is its link, `batch` the claim file it points to (shared by the
    members, its `content` moving on with each renewal)."""

    batch: FolderClaim = field(default_factory=lambda: FolderClaim("", ""), repr=False)


class BatchClaims(FolderClaims):
    """Claims of a folder store that can claim many tasks as one batch."""

    def claim_batch(self, task_hashes: Sequence[str]) -> list[Claim]:
        if len(task_hashes) < 2:
            return super().claim_batch(task_hashes)
        self.store.ensure()
        token = process.unique()
        name = f"{token}{BATCH}"
        path = os.path.join(self.store.locks_dir, name)
        made = elapsed_clock()
        content = self.record(f"batch of {len(task_hashes)}", token)
        if not claimfiles.write_new(path, content):  # a unique name: only a damaged store has it
            return []
        batch = FolderClaim(name, token, made, BOOT_ID, path=path, content=content)
        got: list[Claim] = []
        try:
            for h in task_hashes:
                link = self.store.lock_path(h)
                if _link(name, link):
                    got.append(MemberClaim(h, token, made, BOOT_ID, path=link, content=content, batch=batch))
        finally:
            if not got:
                _remove(path)
        return got

    def renew_all(self, claims: Sequence[Claim]) -> bool:
        ok, renewed = True, set()
        for c in claims:
            if isinstance(c, MemberClaim):
                if c.batch.token not in renewed:
                    renewed.add(c.batch.token)
                    ok = super().renew(c.batch) and ok
            else:
                ok = self.renew(c) and ok
        return ok

    def renew(self, claim: Claim) -> bool:
        if isinstance(claim, MemberClaim):
            return not claim.lost and super().renew(claim.batch)
        return super().renew(claim)

    def still_ours(self, claim: Claim) -> bool:
        if isinstance(claim, MemberClaim):
            return _ours(claim) and same_claim(head(claim.batch.path, len(claim.batch.content) + 1),
                                               claim.batch.content)
        return super().still_ours(claim)

    def holds(self, claim: Claim) -> bool:
        if not isinstance(claim, MemberClaim):
            return super().holds(claim)
        if claim.lost:
            return False
        if self.young(claim):
            return True
        batch = claim.batch
        if _ours(claim):
            if same_claim(head(batch.path, len(batch.content) + 1), batch.content):
                return True
            claim.why = "its batch claim is no longer its owner's"
        elif os.path.lexists(claim.path) or self.store.has_result(claim.task_hash):
            claim.why = "another worker took it over"
        elif _link(os.path.basename(batch.path), claim.path):
            log.warning("claim link on %s vanished (deleted from the store?); made it again", claim.task_hash)
            return True
        else:
            claim.why = "another worker took it over"
        claim.lost = True
        attempts.forgive(self.store.attempts_dir, claim.task_hash, claim.token)  # we did not die
        return False

    def release(self, claim: Claim) -> bool:
        if not isinstance(claim, MemberClaim):
            return super().release(claim)
        if claim.lost:
            log.warning("not releasing the claim on %s: it is no longer ours", claim.task_hash)
            return False
        claim.lost = True  # given back: never ours again
        if self.young(claim):
            # Made less than half a lease ago: nobody can have judged it stale, so the link there
            # is ours, without a look (as for a plain claim in `holds`).
            try:
                os.unlink(claim.path)
                return True
            except FileNotFoundError:
                log.warning("not releasing the claim on %s: its link vanished", claim.task_hash)
                return False
        # Older: moved aside first, then checked where it lies, so a freeze between the check and
        # the removal never removes the claim of a worker that took the task over.
        moved = f"{claim.path}.released.{process.unique()}"
        try:
            os.rename(claim.path, moved)
        except FileNotFoundError:
            log.warning("not releasing the claim on %s: its link vanished", claim.task_hash)
            return False
        if _target(moved) == os.path.basename(claim.batch.path):
            os.unlink(moved)
            return True
        claimfiles.put_back(moved, claim.path, claim.task_hash, "of another worker was moved while releasing ours")
        log.warning("not releasing the claim on %s: it is no longer ours", claim.task_hash)
        return False

    def release_all(self, claims: Sequence[Claim]) -> None:
        batches = {}
        for c in claims:
            if isinstance(c, MemberClaim):
                batches[c.batch.token] = c.batch
            if not c.lost:
                self.release(c)
        for batch in batches.values():
            batch.lost = True
            _remove(batch.path)  # named by our own token: nobody else's, whatever its age


def _link(target: str, link: str) -> bool:
    """Make the member link `link` to `target`; False if `link` exists (the race is lost).

    As `claimfiles.exclusive`: sshfs answers EPERM for an existing name (SFTP v3 has no
    "exists" status), and when the name is gone by the time we look, its winner may have
    given the claim back at once: try again a few times before taking the code for what it says.
    """
    for attempt in range(1, _LINK_ATTEMPTS + 1):
        try:
            os.symlink(target, link)
            return True
        except FileExistsError:
            return False
        except FileNotFoundError:
            if attempt == _LINK_ATTEMPTS:
                raise
            os.makedirs(os.path.dirname(link), exist_ok=True)
        except OSError:
            if os.path.lexists(link):
                return False
            if attempt == _LINK_ATTEMPTS:
                raise
    return False


_LINK_ATTEMPTS = 4


def _target(link: str) -> str | None:
    try:
        return os.readlink(link)
    except OSError:  # gone, or a plain claim file (a takeover's)
        return None


def _ours(claim: MemberClaim) -> bool:
    return _target(claim.path) == os.path.basename(claim.batch.path)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
