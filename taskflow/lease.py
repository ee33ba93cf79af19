"""Claims: which worker runs which task, by lock files in STORE/locks/.

A claim is a file created with O_CREAT|O_EXCL, which exactly one creator wins,
also across NFS clients. It records its owner (host, boot id, pid, worker id,
start, lease length) and a random token; the owner compares the file byte for
byte with what it wrote before renewing or removing it, so it never touches a
claim that is not its own.

While the task runs, a heartbeat thread touches the file several times per
lease. A claim is stale when its file was not touched within its lease, or,
at once, when its owner ran on this host (same hostname and boot id) and the
pid is gone. Age is measured against the filesystem's clock (the mtime of a
file this worker just touched in the store), never against this host's wall
clock, so hosts whose clocks disagree still agree on staleness.

Taking over a stale claim: rename it to a unique name, then check that the
renamed file is the very one judged stale (same inode, same mtime). Rename is
atomic, so among any number of racers exactly one moves that file; a racer
that moved a fresh claim instead (the file changed under it) puts it back with
link(), which cannot overwrite. The winner then claims with O_EXCL like anyone.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

from .store import HOST, Store

log = logging.getLogger(__name__)

DEFAULT_LEASE = 300.0
HEARTBEATS_PER_LEASE = 4


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


BOOT_ID = _boot_id()


def worker_id() -> str:
    """The batch array task this process runs as, or host:pid outside a scheduler."""
    env = os.environ
    if env.get("SLURM_ARRAY_TASK_ID"):
        return f"slurm:{env.get('SLURM_ARRAY_JOB_ID', env.get('SLURM_JOB_ID', '?'))}.{env['SLURM_ARRAY_TASK_ID']}"
    if env.get("SGE_TASK_ID", "undefined") != "undefined":
        return f"sge:{env.get('JOB_ID', '?')}.{env['SGE_TASK_ID']}"
    if env.get("PBS_ARRAYID") or env.get("PBS_ARRAY_INDEX"):
        return f"pbs:{env.get('PBS_JOBID', '?')}.{env.get('PBS_ARRAYID') or env.get('PBS_ARRAY_INDEX')}"
    return f"{HOST}:{os.getpid()}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child its parent has not reaped yet is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


@dataclass
class Claim:
    task_hash: str
    path: str
    content: bytes
    confirmed: float = field(default_factory=time.monotonic)  # when last known to be ours
    lost: bool = False


@dataclass
class LockInfo:
    """What a lock file says about its owner, as judged by one worker."""

    task_hash: str
    owner: dict
    age: float          # seconds since last renewal, on the filesystem's clock
    stale: bool
    reason: str
    stat: os.stat_result = field(repr=False)


class Leases:
    """Claims made by one worker in one store."""

    def __init__(self, store: Store, lease: float = DEFAULT_LEASE, worker: str | None = None,
                 clock: Callable[[], float] = time.time):
        self.store = store
        self.lease = float(lease)
        self.worker = worker or worker_id()
        self.clock = clock  # wall clock: only for the informational start time
        self._clock_file: str | None = None
        self._fs_ref: tuple[float, float] | None = None  # (fs time, monotonic) when read

    # -- the filesystem's clock ------------------------------------------

    def fs_now(self) -> float:
        """Current time as the store's filesystem sees it."""
        now = time.monotonic()
        if self._fs_ref is None or now - self._fs_ref[1] > 1.0:
            self.store.ensure()
            if self._clock_file is None:
                self._clock_file = os.path.join(self.store.clock_dir, f"{HOST}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
            try:
                os.utime(self._clock_file, None)
            except FileNotFoundError:
                with open(self._clock_file, "wb"):
                    pass
            self._fs_ref = (os.stat(self._clock_file).st_mtime, time.monotonic())
        return self._fs_ref[0] + (time.monotonic() - self._fs_ref[1])

    def close(self) -> None:
        if self._clock_file:
            try:
                os.unlink(self._clock_file)
            except OSError:
                pass

    # -- claiming ----------------------------------------------------------

    def _record(self, task_hash: str) -> bytes:
        return json.dumps({"host": HOST, "boot": BOOT_ID, "pid": os.getpid(), "worker": self.worker,
                           "started": self.clock(), "lease": self.lease, "task": task_hash,
                           "token": uuid.uuid4().hex}).encode()

    def _create(self, task_hash: str) -> Claim | None:
        self.store.ensure()
        path = self.store.lock_path(task_hash)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return None
        content = self._record(task_hash)
        try:
            os.write(fd, content)
        finally:
            os.close(fd)
        return Claim(task_hash, path, content)

    def claim(self, task_hash: str, take_over: bool = True) -> Claim | None:
        """Claim the task; None if someone else holds it.

        With `take_over`, a stale claim is judged and taken over; without it a
        failed claim costs one system call (workers look at stale claims only
        when they run out of other work).
        """
        claim = self._create(task_hash)
        if claim is not None or not take_over:
            return claim
        info = self.inspect(task_hash)
        if info is None:  # released between our attempt and our look
            return self._create(task_hash)
        if not info.stale:
            return None
        return self._take_over(info)

    def remove_stale(self, info: LockInfo) -> bool:
        """Remove the claim judged stale in `info`, if it is still that very file."""
        path = self.store.lock_path(info.task_hash)
        grave = f"{path}.stale.{uuid.uuid4().hex[:12]}"
        try:
            os.rename(path, grave)
        except FileNotFoundError:
            return False
        moved = os.stat(grave)
        if (moved.st_ino, moved.st_dev, moved.st_mtime_ns) != (info.stat.st_ino, info.stat.st_dev,
                                                              info.stat.st_mtime_ns):
            # Someone replaced or renewed the claim between our look and our rename.
            try:
                os.link(grave, path)
            except FileExistsError:
                log.warning("claim on %s changed during takeover and could not be put back", info.task_hash)
            os.unlink(grave)
            return False
        os.unlink(grave)
        return True

    def _take_over(self, info: LockInfo) -> Claim | None:
        if not self.remove_stale(info):
            return None
        log.warning("took over stale claim on %s from %s (%s)", info.task_hash,
                    info.owner.get("worker", "unknown owner"), info.reason)
        return self._create(info.task_hash)

    def inspect(self, task_hash: str) -> LockInfo | None:
        """Read and judge the claim on `task_hash`; None if there is none."""
        path = self.store.lock_path(task_hash)
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())  # after open: fresh attributes even on NFS
                raw = f.read()
        except FileNotFoundError:
            return None
        try:
            owner = json.loads(raw)
            if not isinstance(owner, dict):
                raise ValueError
        except ValueError:
            owner = {}  # being written right now, or damaged: judged by age alone
        age = self.fs_now() - st.st_mtime
        lease = float(owner.get("lease") or self.lease)
        if owner.get("host") == HOST and owner.get("boot", "") == BOOT_ID and isinstance(owner.get("pid"), int) \
                and not pid_alive(owner["pid"]):
            return LockInfo(task_hash, owner, age, True, f"process {owner['pid']} on {HOST} is gone", st)
        if age > lease:
            return LockInfo(task_hash, owner, age, True, f"not renewed for {age:.0f}s (lease {lease:.0f}s)", st)
        return LockInfo(task_hash, owner, age, False, "live", st)

    def still_ours(self, claim: Claim) -> bool:
        try:
            with open(claim.path, "rb") as f:
                return f.read() == claim.content
        except FileNotFoundError:
            return False

    def holds(self, claim: Claim) -> bool:
        """Whether the claim is still ours, reading it only when it could have gone stale.

        Nobody may take a claim over before it goes unrenewed for a whole
        lease, and the monotonic clock keeps counting while a process is
        frozen, so a claim created or renewed less than half a lease ago is
        still ours.
        """
        if claim.lost:
            return False
        if time.monotonic() - claim.confirmed < self.lease / 2:
            return True
        return self.still_ours(claim)

    def renew(self, claim: Claim) -> bool:
        """Touch our claim if it is still ours; mark it lost otherwise."""
        if claim.lost:
            return False
        if not self.still_ours(claim):
            claim.lost = True
            log.warning("lost claim on %s: another worker took it over", claim.task_hash)
            return False
        try:
            os.utime(claim.path, None)  # None: the filesystem's time, not ours
        except FileNotFoundError:
            claim.lost = True
            return False
        claim.confirmed = time.monotonic()
        return True

    def release(self, claim: Claim) -> bool:
        """Remove our claim; leaves alone a claim that is no longer byte-for-byte ours."""
        if not self.holds(claim):
            claim.lost = True
            log.warning("not releasing the claim on %s: it is no longer ours", claim.task_hash)
            return False
        try:
            os.unlink(claim.path)
        except FileNotFoundError:
            return False
        return True


class Heartbeat:
    """A daemon thread renewing the current claim several times per lease."""

    def __init__(self, leases: Leases):
        self.leases = leases
        self.interval = leases.lease / HEARTBEATS_PER_LEASE
        self._claim: Claim | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="taskflow-heartbeat", daemon=True)
        self._thread.start()

    def watch(self, claim: Claim | None) -> None:
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
                        self.leases.renew(claim)
                    except OSError as e:
                        log.warning("could not renew claim on %s: %s", claim.task_hash, e)

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()
        self._thread.join(timeout=5)
