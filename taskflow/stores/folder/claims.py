"""Claims of a folder store: which worker runs which task, by lock files in STORE/locks/.

A claim is a file created with O_CREAT|O_EXCL, which exactly one creator wins,
also across NFS clients. It records its owner (host, boot id, pid, worker id,
start, lease length), a random token and a renewal counter (claimfiles.py);
the owner compares the file byte for byte with what it wrote (all but the
counter) before renewing or removing it, so it never touches a claim that is
not its own. Where an exclusive create that lost the race fails with another
code than EEXIST (sshfs: EPERM, since SFTP v3 has no "exists" status), a file
found in place afterwards makes it a collision all the same; with no file
there (the winner gave its claim back at once) the create is tried again.

While the task runs, a heartbeat thread renews the file several times per
lease by rewriting the counter in place: every client of a network filesystem
then sees the change in the bytes, and the write moves the file's mtime. A
claim is stale when its file was not renewed within its lease, or, at once,
when its owner ran on this host (same hostname and boot id) and the pid is
gone. Age is measured against the filesystem's clock (clock.py), never
against this host's wall clock, so hosts whose clocks disagree still agree on
staleness. Renewing means writing in place, not utime(): the time of a write
is set by the filesystem, while utime(path, None) takes the caller's clock on
some network filesystems and under time-faking libraries.

Taking over a stale claim is takeover.py's, giving one back release.py's. A claim file that vanished
without being taken over (its file or the whole locks/ folder deleted) is
made again by its owner, unless the task's result is there already: work
goes on, and nobody reports it as a takeover.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable

from ..base import Claim, ClaimInfo, Claims
from ..identity import BOOT_ID, HOST, elapsed_clock, process, worker_id
from ..lease import DEFAULT_LEASE, check_lease
from . import attempts, claimfiles, judging, release, takeover
from .claimfiles import R1, RENEWAL_DIGITS, RENEWAL_HEAD, FolderClaim, LockInfo, fresh_head, same_claim
from .clock import FsClock
from .layout import Folder


log = logging.getLogger(__name__)

# Coarsest file time stamps met in practice (some network filesystems keep whole seconds).
FS_TIME_SLACK = 2.0


class FolderClaims(Claims):
    """Claims made by one worker in one folder store."""

    def __init__(self, store: Folder, lease: float = DEFAULT_LEASE, worker: str | None = None,
                 clock: Callable[[], float] = time.time, reader: bool = False):
        """`reader`: these claims only judge (status, show, check): on a store this process
        cannot write they use the clock of `FsClock._unwritten_now` instead of failing."""
        self.store = store
        self.lease = check_lease(lease)
        if worker or not reader:  # a reader's is made when asked for (Claims.__getattr__)
            self.worker = worker or worker_id()
        self.clock = clock  # wall clock: only for the informational start time
        self.reader = reader
        self._fs = FsClock(store, reader)
        self._owner_json: tuple[int, str] | None = None

    def __reduce__(self) -> tuple:
        return type(self), (self.store, self.lease, self.worker, time.time, self.reader)

    @property
    def read_only(self) -> bool:  # type: ignore[override]
        return self._fs.read_only

    def now(self, seen: float = 0.0) -> float:
        return self._fs.now(seen)

    fs_now = now

    def close(self) -> None:
        self._fs.close()

    # -- claiming ----------------------------------------------------------

    def record(self, task_hash: str, token: str) -> bytes:
        # Made for every claim: the owner's part is serialised once per process.
        if self._owner_json is None or self._owner_json[0] != process.pid:
            owner = json.dumps({"host": HOST, "boot": BOOT_ID, "pid": process.pid, "worker": self.worker,
                                "lease": self.lease})
            self._owner_json = (process.pid, f'{RENEWAL_HEAD.decode()}{0:0{RENEWAL_DIGITS}d}", {owner[1:-1]}')
        # "started" is the owner's wall clock, for people; "fs_started" the filesystem's,
        # which every host can compare with its own reading of that clock.
        quoted = f'"{task_hash}"' if task_hash.isalnum() else json.dumps(task_hash)  # hex: no call
        content = (f'{self._owner_json[1]}, "started": {float(self.clock())!r}, '
                   f'"fs_started": {self._fs.now():.3f}, "task": {quoted}, '
                   f'"token": "{token}"}}').encode()
        key = self.store.key
        return content if key is None else key.sign_claim(content, R1)

    def create(self, task_hash: str) -> FolderClaim | None:
        """Make the claim file if there is none (one system call when there is)."""
        self.store.ensure()
        path = self.store.lock_path(task_hash)
        made = elapsed_clock()
        fd = claimfiles.exclusive(path, self.store.modes)
        if fd is None:
            return None
        token = process.unique()
        content = self.record(task_hash, token)
        try:
            os.write(fd, content)
        finally:
            os.close(fd)
        return FolderClaim(task_hash, token, made, BOOT_ID, path=path, content=content)

    def claim(self, task_hash: str, take_over: bool = True) -> FolderClaim | None:
        """Claim the task; None if someone else holds it.

        With `take_over`, a stale claim is judged and taken over; without it a
        failed claim costs one system call (workers look at stale claims only
        when they run out of other work).
        """
        claim = self.create(task_hash)
        if claim is not None or not take_over:
            return claim
        info = self.inspect(task_hash)
        if info is None:  # released between our attempt and our look, or moved by a takeover
            claim = self.create(task_hash)
            if claim is not None:  # in a takeover's place: it counted its dead claim first
                claim.died = attempts.counted(self.store.attempts_dir, task_hash)
            return claim
        if not info.stale:
            return None
        return takeover.take_over(self, info)

    def remove_stale(self, info: ClaimInfo) -> bool:
        return takeover.remove_stale(self, info)

    def claimed(self) -> set[str]:
        return {n for n in self.store.lock_names() if "." not in n}

    def owner(self, task_hash: str) -> dict | None:
        return claimfiles.read_owner(self.store.lock_path(task_hash))

    def present(self, task_hash: str) -> bool:
        return os.path.lexists(self.store.lock_path(task_hash))  # one stat

    def inspect(self, task_hash: str) -> LockInfo | None:
        """Read and judge the claim on `task_hash`; None if there is none."""
        return self.judge(task_hash, self.store.lock_path(task_hash))

    def judge(self, task_hash: str, path: str) -> LockInfo | None:
        """Read and judge the claim file at `path` (a claim, or a takeover token)."""
        got = claimfiles.read(path)
        if got is None:
            return None
        st, raw = got
        owner, age, stale, reason, left = judging.judge(raw, st.st_mtime, self.now(st.st_mtime), self.lease,
                                                        self.store.key)
        return LockInfo(task_hash, owner, age, stale, reason, raw, left=left, stat=st)

    # -- holding -----------------------------------------------------------

    def still_ours(self, claim: Claim) -> bool:
        c = _own(claim)
        return same_claim(fresh_head(c.path, len(c.content) + 1), c.content)

    def holds(self, claim: Claim) -> bool:
        """Whether the claim is still ours.

        A claim made less than half a lease ago cannot have been judged stale
        by anyone (its owner lives, and its file is younger than the lease on
        every clock), so it is ours without a look; this spares the many short
        tasks three system calls before saving and three before releasing.
        Older claims are read from the file: not inferred from the time since
        the last renewal, because an owner that froze past its lease and
        renewed just as a takeover began can lose the claim right after
        renewing (see takeover.move_away). The read goes past this client's
        page cache (`fresh_head`): a caching client may hand back the pages of
        our own claim after another client's takeover put a file of the same
        size in its place. The age is taken on a clock that runs on while the
        process is stopped and the machine is suspended.
        """
        c = claim if isinstance(claim, FolderClaim) else _own(claim)  # no call in the usual case: once per task
        if c.lost:
            return False
        if self.young(c):
            return True
        raw = fresh_head(c.path, len(c.content) + 1)
        if raw is None:
            return self._vanished(c)
        if same_claim(raw, c.content):
            return True
        c.why = "another worker took it over"
        attempts.forgive(self.store.attempts_dir, c.task_hash, c.token)  # we did not die
        return False

    def young(self, claim: Claim) -> bool:
        # `made` is read on this host's boot clock: elsewhere it says nothing, so look.
        return claim.boot == BOOT_ID and elapsed_clock() - claim.made < self.lease / 2 - FS_TIME_SLACK

    def _lose(self, claim: Claim) -> bool:
        claim.lost = True
        claim.why = "another worker took it over"
        log.warning("lost claim on %s: another worker took it over", claim.task_hash)
        attempts.forgive(self.store.attempts_dir, claim.task_hash, claim.token)  # we did not die
        return False

    def renew(self, claim: Claim) -> bool:
        """Touch our claim if it is still ours; mark it lost otherwise."""
        c = _own(claim)
        if c.lost:
            return False
        renewed = claimfiles.renew_at(c, c.path)
        if renewed is None:
            return self._vanished(c)
        return renewed or self._lose(c)

    def release(self, claim: Claim) -> bool:
        """Remove our claim; leaves alone a claim that is no longer byte-for-byte ours (release.py)."""
        return release.give_back(self, claim if isinstance(claim, FolderClaim) else _own(claim))

    def release_finished(self, claim: Claim) -> bool:
        return release.give_back_finished(self, _own(claim))

    def _vanished(self, claim: FolderClaim) -> bool:
        """Our claim file is not there. A takeover leaves a claim in its place, so either its
        file or its folder was deleted, or the task was taken over and finished meanwhile:
        make the claim again, unless the task is finished or someone else claimed it since."""
        if self.store.has_result(claim.task_hash):
            claim.lost = True
            claim.why = "its claim file vanished, and the task was finished elsewhere"
            log.warning("claim file on %s vanished, and the task was finished elsewhere", claim.task_hash)
            return False
        if not self._make_again(claim):
            return self._lose(claim)
        log.warning("claim file on %s vanished (deleted from the store?); made it again", claim.task_hash)
        return True

    def _make_again(self, claim: FolderClaim) -> bool:
        """Put our vanished claim file back; False if another claim took its place first."""
        return claimfiles.write_new(claim.path, claim.content, self.store.modes)


def _own(claim: Claim) -> FolderClaim:
    if not isinstance(claim, FolderClaim):
        raise TypeError(f"not a claim of a folder store: {claim!r}")
    return claim
