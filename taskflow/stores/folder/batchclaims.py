"""Batch claims of a folder store: one claim file for many tiny tasks, a hard link per member.

A batch is a claim file `locks/<token>.batch`, written as a plain claim is
(owner record, random token, renewal counter) and renewed by the heartbeat
like one. Each member is claimed by `link("<token>.batch", "locks/<hash>")`:
one system call, exclusive like O_CREAT|O_EXCL (EEXIST when the task is
claimed). Names with a dot are not claims (`FolderClaims.claimed`), so the
batch file is listed by nobody as a task; its members are.

A member's name is a plain file to everyone: the same inode as the batch
file, so its bytes and its mtime are the batch's, and one renewal renews
every member. Readers, takeovers (takeover.py) and releases treat it as any
claim file: a stale batch's member is taken over on its own by renaming
its name away (the batch file and the other members keep the inode), its
death counted for that member alone. A symbolic link would do the same on
a local disk, but a caching client resolves links from its cache: an sshfs
client went on following a member's link to its old batch for 20 s after
another client had put a claim of its own in that place, and then answered
EBADMSG for a while, so an owner could not tell that it had lost a member.
A hard link is opened by name on the server, as a plain claim file is.

The owner holds and releases each member as a plain claim (claims.py), by
comparing the bytes under the member's name with the batch's. The heartbeat
renews the batch through the batch file's name, or, if that name is gone,
through a member's name that still holds the batch's bytes. A filesystem
that refuses hard links gets one claim per task, as with batches off.
"""
from __future__ import annotations

import errno
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..base import Claim
from ..identity import BOOT_ID, elapsed_clock, process
from ..modes import PRIVATE, Modes
from . import attempts, claimfiles
from .claimfiles import FolderClaim
from .claims import FolderClaims
from .files import remove_file

log = logging.getLogger(__name__)

BATCH = ".batch"

# What a filesystem without hard links (or with too many on one file) answers a link.
_NO_LINKS = (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS)


@dataclass
class BatchFile(FolderClaim):
    """The file a batch's members are names of; `members` every claim made as one of them."""

    members: list[MemberClaim] = field(default_factory=list, repr=False)


@dataclass
class MemberClaim(FolderClaim):
    """One task of a batch: `path` is its name, another name of the batch file `batch` (shared by
    the members, its `content` moving on with each renewal)."""

    batch: BatchFile = field(default_factory=lambda: BatchFile("", ""), repr=False)


class BatchClaims(FolderClaims):
    """Claims of a folder store that can claim many tasks as one batch."""

    links_refused = False  # set once a link was refused for another reason than an existing name

    def claim_batch(self, task_hashes: Sequence[str]) -> list[Claim]:
        if len(task_hashes) < 2 or self.links_refused:
            return super().claim_batch(task_hashes)
        self.store.ensure()
        token = process.unique()
        path = os.path.join(self.store.locks_dir, f"{token}{BATCH}")
        made = elapsed_clock()
        content = self.record(f"batch of {len(task_hashes)}", token)
        if not claimfiles.write_new(path, content, self.store.modes):  # a unique name: only a damaged store has it
            return []
        batch = BatchFile(os.path.basename(path), token, made, BOOT_ID, path=path, content=content)
        got: list[Claim] = []
        try:
            for i, h in enumerate(task_hashes):
                member = self.store.lock_path(h)
                try:
                    linked = _link(path, member, self.store.modes)
                except FileNotFoundError:  # the batch file vanished under us (locks/ deleted)
                    break
                except OSError as e:
                    if e.errno not in _NO_LINKS:
                        raise
                    self.links_refused = True
                    log.warning("%s refuses hard links (%s): claiming one task at a time",
                                self.store.locks_dir, os.strerror(e.errno))
                    got += super().claim_batch(task_hashes[i:])
                    break
                if linked:
                    claim = MemberClaim(h, token, made, BOOT_ID, path=member, content=content, batch=batch)
                    batch.members.append(claim)
                    got.append(claim)
        finally:
            if not any(isinstance(c, MemberClaim) for c in got):
                remove_file(path)
        return got

    def renew_all(self, claims: Sequence[Claim]) -> bool:
        ok, renewed = True, set()
        for c in claims:
            if isinstance(c, MemberClaim):
                if c.batch.token not in renewed:
                    renewed.add(c.batch.token)
                    given = [m for m in claims if isinstance(m, MemberClaim) and m.batch is c.batch]
                    ok = self._renew_batch(c.batch, given) and not any(m.lost for m in given) and ok
            else:
                ok = self.renew(c) and ok
        return ok

    def renew(self, claim: Claim) -> bool:
        if isinstance(claim, MemberClaim):
            return not claim.lost and self._renew_batch(claim.batch, [claim]) and not claim.lost
        return super().renew(claim)

    def _renew_batch(self, batch: BatchFile, members: Sequence[MemberClaim]) -> bool:
        """Renew the inode the members share: through the batch file's name, or, where cleanup or
        a hand removed that name, through a member's name still holding the batch's bytes. A
        member's name that holds another claim (a takeover's) is left alone, and that member is
        lost (`_note_takeovers`)."""
        if batch.lost:
            return False
        for path in [batch.path] + [m.path for m in members if not m.lost]:
            renewed = claimfiles.renew_at(batch, path)
            if renewed is None:
                continue
            if renewed:
                self._note_takeovers(batch, path)
                return True
        batch.lost = True
        log.warning("lost the batch claim %s: none of its names holds it any more", batch.task_hash)
        return False

    def _note_takeovers(self, batch: BatchFile, renewed: str) -> None:
        """Mark lost the members whose names now hold another worker's claim.

        A takeover gives the member's name a file of its own, so the batch
        file has a name fewer than it has members held: one stat per renewal
        says whether to look at each member. Where a filesystem does not
        count names (sshfs reports one for every file) each is looked at. A
        member whose name is gone is left to `holds`, which makes it again.
        """
        held = [m for m in batch.members if not m.lost]
        if not held:
            return
        try:
            names = os.stat(renewed).st_nlink
        except OSError:
            names = 0
        if names >= len(held) + (renewed == batch.path):
            return
        size = len(batch.content) + 1
        for m in held:
            raw = claimfiles.fresh_head(m.path, size)
            if raw is None or claimfiles.same_claim(raw, batch.content) or m.lost:
                continue
            m.lost = True
            m.why = "another worker took it over"
            attempts.forgive(self.store.attempts_dir, m.task_hash, m.token)  # we did not die

    def _make_again(self, claim: FolderClaim) -> bool:
        if not isinstance(claim, MemberClaim):
            return super()._make_again(claim)
        try:
            return _link(claim.batch.path, claim.path, self.store.modes)
        except FileNotFoundError:  # the batch file's name is gone too: nothing to link to
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
            remove_file(batch.path)  # named by our own token: nobody else's, whatever its age


def _link(batch_path: str, member: str, modes: Modes = PRIVATE) -> bool:
    """Make `member` another name of the batch file; False if `member` exists (the race is lost).

    As `claimfiles.exclusive`: sshfs answers EPERM for an existing name (SFTP v3 has no
    "exists" status), and when the name is gone by the time we look, its winner may have
    given the claim back at once: try again a few times before taking the code for what it
    says. A missing locks/ folder is made again; a missing batch file raises FileNotFoundError.
    """
    for attempt in range(1, _LINK_ATTEMPTS + 1):
        try:
            os.link(batch_path, member, follow_symlinks=False)
            return True
        except FileExistsError:
            return False
        except FileNotFoundError:
            if attempt == _LINK_ATTEMPTS or not os.path.exists(batch_path):
                raise
            modes.make_folders(os.path.dirname(member))
        except OSError:
            if os.path.lexists(member):
                return False
            if attempt == _LINK_ATTEMPTS:
                raise
    return False


_LINK_ATTEMPTS = 4
