"""Claims: which worker runs which task, by lock files in STORE/locks/.

A claim is a file created with O_CREAT|O_EXCL, which exactly one creator wins,
also across NFS clients. It records its owner (host, boot id, pid, worker id,
start, lease length), a random token and a renewal counter; the owner compares
the file byte for byte with what it wrote (all but the counter) before
renewing or removing it, so it never touches a claim that is not its own. Where
an exclusive create that lost the race fails with another code than EEXIST
(sshfs: EPERM, since SFTP v3 has no "exists" status), a file found in place
afterwards makes it a collision all the same; with no file there (the winner
gave its claim back at once) the create is tried again.

While the task runs, a heartbeat thread renews the file several times per
lease by rewriting the counter in place: every client of a network filesystem
then sees the change in the bytes, and the write moves the file's mtime. A
claim is stale when its file was not renewed within its lease, or, at once,
when its owner ran on this host (same hostname and boot id) and the pid is
gone. Age is measured against the filesystem's clock (the mtime of a file this
worker just touched in the store), never against this host's wall clock, so
hosts whose clocks disagree still agree on staleness. Renewing means writing
in place, not utime(): the time of a write is set by the filesystem, while
utime(path, None) takes the caller's clock on some network filesystems and
under time-faking libraries.

A claim is judged and named by what every client sees alike: its bytes. Inode
numbers, device ids and nanoseconds differ between the clients of one file
(and inodes are reused at once), so nothing here depends on them.

Commands that only read (status, check, show, report, wait) judge claims too,
and may run where the store cannot be written: a read-only mount or snapshot,
a filesystem that went read-only, another user's store. Their clock file then
cannot be written, and they measure ages against this host's clock instead,
never earlier than the newest time stamp they read in the store (the claims
judged, and the folders locks/, clock/ and done/, which change whenever claims,
clock files and journals come and go). A host clock behind the filesystem's is
thus corrected up to the newest renewal seen; one ahead of it by more than a
lease shows live claims as stale. Such a reader only reports what it judged
and takes nothing over; a worker never uses this clock, since it cannot work
on a store it cannot write.

Taking over a stale claim: rename it to a unique name, then check that the
renamed file holds the very bytes judged stale. Rename is atomic, so exactly
one racer moves that file. Racers that judged the same claim stale first
compete for a token named after that claim's random token (O_EXCL), the same
name on every client, so only one of them renames at all: a loser renaming
after the winner would move the winner's new claim away, and while it is away
a third worker could claim the task too. The winner gives the token up only
once its own claim is in place, so a late racer finds either the token or the
new claim, never an empty place. If the owner renews between the winner's look
and its rename, the winner puts the file back with link(), which cannot
overwrite. The winner then claims with O_EXCL like anyone.

A claim file that vanished without being taken over (its file or the whole
locks/ folder deleted) is made again by its owner, unless the task's result is
there already: work goes on, and nobody reports it as a takeover.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import StoreError, UsageError
from .stale import reread
from .store import HOST, Store, process

log = logging.getLogger(__name__)

DEFAULT_LEASE = 300.0
# Below this a claim goes stale between its renewals, on a filesystem with whole-second
# time stamps even right after one, and its task is taken over and run again and again.
MIN_LEASE = 1.0
HEARTBEATS_PER_LEASE = 4
# Coarsest file time stamps met in practice (some network filesystems keep whole seconds).
FS_TIME_SLACK = 2.0

# Every claim starts with its renewal counter, rewritten in place by each renewal: fixed
# width, so the file keeps its size and the rest of its bytes.
_RENEWAL_HEAD = b'{"renewal": "'
_RENEWAL_DIGITS = 8
_R0 = len(_RENEWAL_HEAD)
_R1 = _R0 + _RENEWAL_DIGITS
# Exclusive creates tried at most this often when the answer is neither success nor EEXIST.
_CREATE_ATTEMPTS = 4


if hasattr(time, "CLOCK_BOOTTIME"):  # runs on while the process is stopped or the machine sleeps
    def _elapsed_clock() -> float:
        return time.clock_gettime(time.CLOCK_BOOTTIME)
else:
    _elapsed_clock = time.monotonic


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


BOOT_ID = _boot_id()
_noted_read_only = False  # said once per process


def worker_id() -> str:
    """The batch array task this process runs as, or host:pid outside a scheduler."""
    from .schedulers.environment import detect
    return detect().worker or f"{HOST}:{os.getpid()}"


def check_lease(seconds: float, option: str = "lease") -> float:
    """`seconds` if it is a usable lease; a UsageError naming `option` otherwise."""
    if not seconds >= MIN_LEASE:  # NaN too
        raise UsageError(f"{option}: a lease of {seconds:g}s is too short; give at least {MIN_LEASE:g}s "
                         f"(default {DEFAULT_LEASE:g}s), or claims go stale while their tasks run")
    return float(seconds)


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


def on_this_host(owner: dict) -> bool:
    """Whether the owner a claim records ran on this host (same hostname and boot), so that
    its pid tells whether it still runs."""
    return owner.get("host") == HOST and owner.get("boot", "") == BOOT_ID and isinstance(owner.get("pid"), int)


def gone_from_here(owner: dict) -> bool:
    """Whether the owner a claim records ran on this host and its process is gone."""
    return on_this_host(owner) and not pid_alive(owner["pid"])


def writer_of_this_host(host: str, pid: str) -> bool:
    """Whether the process a file is named after (`<host>.<pid>.<random>`: journals, clock
    and temp files) ran on this host; such names carry no boot id."""
    return host == HOST and pid.isdigit()


def writer_gone_from_here(host: str, pid: str) -> bool:
    """Whether the process a file is named after ran on this host and is gone."""
    return writer_of_this_host(host, pid) and not pid_alive(int(pid))


def read_owner(path: str) -> dict | None:
    """The owner recorded in a claim file (or in what a takeover or release left of one);
    {} when unreadable or being written, None when there is no such file."""
    got = _read(path)
    if got is None:
        return None
    try:
        owner = json.loads(got[1])
    except ValueError:
        return {}
    return owner if isinstance(owner, dict) else {}


@dataclass
class Claim:
    task_hash: str
    path: str
    content: bytes
    made: float = 0.0  # _elapsed_clock() just before the lock file was created
    lost: bool = False  # taken over by another worker, or released
    renewals: int = 0   # the counter the file holds now
    why: str = ""       # why the claim was lost, for messages


@dataclass
class LockInfo:
    """What a lock file says about its owner, as judged by one worker."""

    task_hash: str
    owner: dict
    age: float          # seconds since last renewal, on the filesystem's clock
    stale: bool
    reason: str
    stat: os.stat_result = field(repr=False)
    raw: bytes = field(default=b"", repr=False)  # the file's content as judged: its identity


def _same_claim(raw: bytes | None, content: bytes) -> bool:
    """Whether the bytes `raw` are the claim `content` at any renewal."""
    return raw is not None and len(raw) == len(content) and raw[_R1:] == content[_R1:] \
        and raw[:_R0] == content[:_R0]


def _exclusive(path: str) -> int | None:
    """A new file at `path` opened for writing, or None if the file exists (the race is lost).

    Also a lost race on filesystems that answer something else than EEXIST (sshfs: EPERM,
    as SFTP v3 has no "exists" status): the file is there afterwards. When it is not, the
    winner may have removed it already (a claim given back at once): try again, a few
    times, before taking the code for what it says. A missing folder is made again.
    """
    for attempt in range(1, _CREATE_ATTEMPTS + 1):
        try:
            return os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return None
        except FileNotFoundError:
            if attempt == _CREATE_ATTEMPTS:
                raise
            folder = os.path.dirname(path)
            os.makedirs(folder, exist_ok=True)
            log.warning("%s vanished from the store; made it again", folder)
        except OSError:
            if os.path.lexists(path):  # the only extra look, and only on this path
                return None
            if attempt == _CREATE_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _read(path: str, limit: int = 1 << 16) -> tuple[os.stat_result, bytes] | None:
    try:
        return _stat_and_read(path, limit)
    except FileNotFoundError:
        return None


@reread  # claims are renamed away by takeovers and releases, maybe through another client
def _stat_and_read(path: str, limit: int) -> tuple[os.stat_result, bytes]:
    # os.open/os.read rather than open(): a third of the system calls, on the hot path.
    fd = os.open(path, os.O_RDONLY)
    try:
        st = os.fstat(fd)  # after open: fresh attributes even on NFS
        return st, os.read(fd, limit)
    finally:
        os.close(fd)


def _head(path: str, size: int) -> bytes | None:
    """The first `size` bytes of the file, or None if there is none."""
    try:
        return _read_head(path, size)
    except FileNotFoundError:
        return None


@reread
def _read_head(path: str, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, size)
    finally:
        os.close(fd)


@reread
def _open_for_renewal(path: str) -> int:
    return os.open(path, os.O_RDWR)


def _put_back(moved: str, path: str, task_hash: str, why: str) -> None:
    """Return another worker's claim, moved to `moved` by mistake, to its place."""
    try:
        os.link(moved, path)
    except OSError as e:
        if not isinstance(e, FileExistsError) and not os.path.lexists(path):
            raise  # sshfs reports an existing target as EPERM: only that is a third claim
        log.warning("the claim on %s %s, and could not be put back: a third worker claimed the task "
                    "meanwhile; the worker it belonged to will find it lost", task_hash, why)
    os.unlink(moved)


class Leases:
    """Claims made by one worker in one store."""

    def __init__(self, store: Store, lease: float = DEFAULT_LEASE, worker: str | None = None,
                 clock: Callable[[], float] = time.time, reader: bool = False):
        """`reader`: these leases only judge claims (status, show, check): on a store this
        process cannot write they use the clock of `_unwritten_now` instead of failing."""
        self.store = store
        self.lease = check_lease(lease)
        self.worker = worker or worker_id()
        self.clock = clock  # wall clock: only for the informational start time
        self.reader = reader
        self.read_only = False  # a reader whose clock file could not be written
        self._newest_seen = 0.0  # newest time stamp read from the store, once read_only
        self._clock_file: str | None = None
        self._fs_ref: tuple[float, float] | None = None  # (fs time, monotonic) when read
        self._owner_json: tuple[int, str] | None = None

    # -- the filesystem's clock ------------------------------------------

    def fs_now(self, seen: float = 0.0) -> float:
        """Current time as the store's filesystem sees it.

        `seen` is a time stamp just read from the store: the clock of a reader
        that cannot write never shows an earlier time (see `_unwritten_now`).
        """
        if self.read_only:
            return self._unwritten_now(seen)
        now = time.monotonic()
        if self._fs_ref is None or now - self._fs_ref[1] > 1.0:
            try:
                self._fs_ref = (self._touch_clock(), time.monotonic())
            except (OSError, StoreError) as e:
                if not self.reader:
                    raise
                self._go_read_only(e)
                return self._unwritten_now(seen)
        return self._fs_ref[0] + (time.monotonic() - self._fs_ref[1])

    def _touch_clock(self) -> float:
        self.store.ensure()
        if self._clock_file is None:
            self._clock_file = os.path.join(self.store.clock_dir, f"{HOST}.{process.pid}.{process.unique()}")
        try:
            fd = os.open(self._clock_file, os.O_WRONLY | os.O_CREAT, 0o644)
        except FileNotFoundError:
            os.makedirs(self.store.clock_dir, exist_ok=True)
            log.warning("%s vanished from the store; made it again", self.store.clock_dir)
            fd = os.open(self._clock_file, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, b"t", 0)
        finally:
            os.close(fd)
        return os.stat(self._clock_file).st_mtime

    def _go_read_only(self, why: BaseException) -> None:
        global _noted_read_only
        self.read_only = True
        self._clock_file = None  # never made
        # Folders change when claims, clock files and journals come and go.
        for folder in (self.store.locks_dir, self.store.clock_dir, self.store.done_dir):
            try:
                self._newest_seen = max(self._newest_seen, os.stat(folder).st_mtime)
            except OSError:
                continue
        if not _noted_read_only:
            _noted_read_only = True
            reason = getattr(why, "strerror", None) or str(why)
            log.info("cannot write in %s (%s): judging claims by this host's clock", self.store.path, reason)

    def _unwritten_now(self, seen: float) -> float:
        """The time for a reader on a store it cannot write: this host's clock, or the
        newest time stamp read from the store when that is later (a clock behind the
        filesystem's must not make claims look younger than their own last renewal)."""
        if seen > self._newest_seen:
            self._newest_seen = seen
        return max(time.time(), self._newest_seen)

    def close(self) -> None:
        if self._clock_file:
            try:
                os.unlink(self._clock_file)
            except OSError:
                pass

    # -- claiming ----------------------------------------------------------

    def _record(self, task_hash: str) -> bytes:
        # Made for every claim: the owner's part is serialised once per process.
        if self._owner_json is None or self._owner_json[0] != process.pid:
            owner = json.dumps({"host": HOST, "boot": BOOT_ID, "pid": process.pid, "worker": self.worker,
                                "lease": self.lease})
            self._owner_json = (process.pid, f'{_RENEWAL_HEAD.decode()}{0:0{_RENEWAL_DIGITS}d}", {owner[1:-1]}')
        # "started" is the owner's wall clock, for people; "fs_started" the filesystem's,
        # which every host can compare with its own reading of that clock.
        return (f'{self._owner_json[1]}, "started": {float(self.clock())!r}, '
                f'"fs_started": {self.fs_now():.3f}, "task": {json.dumps(task_hash)}, '
                f'"token": "{process.unique()}"}}').encode()

    def _create(self, task_hash: str) -> Claim | None:
        self.store.ensure()
        path = self.store.lock_path(task_hash)
        made = _elapsed_clock()
        fd = _exclusive(path)
        if fd is None:
            return None
        content = self._record(task_hash)
        try:
            os.write(fd, content)
        finally:
            os.close(fd)
        return Claim(task_hash, path, content, made)

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
        token = self._take_token(path, info)
        if token is None:
            return False
        try:
            return self._move_away(path, info)
        finally:
            self._drop_token(*token)

    def _take_token(self, path: str, info: LockInfo) -> tuple[str, bytes] | None:
        """The right to take over the claim judged in `info`, or None if another racer has it."""
        mark = info.owner.get("token")
        if not (isinstance(mark, str) and mark.isascii() and mark.isalnum() and len(mark) <= 64):
            # Being written, or damaged: named after what it holds, as every client reads it.
            mark = hashlib.blake2b(info.raw, digest_size=10).hexdigest()
        token = f"{path}.takeover.{mark}"
        content = self._record(info.task_hash)
        for _ in range(3):
            fd = _exclusive(token)
            if fd is None:
                held = self._judge(info.task_hash, token)
                if held is not None and not held.stale:
                    return None
                # Its holder died, or froze for a whole lease, in the middle of a takeover.
                try:
                    os.unlink(token)
                except FileNotFoundError:
                    pass
                continue
            try:
                os.write(fd, content)
            finally:
                os.close(fd)
            return token, content
        return None

    def _drop_token(self, token: str, content: bytes) -> None:
        if _head(token, len(content) + 1) == content:  # not one that replaced ours as abandoned
            try:
                os.unlink(token)
            except FileNotFoundError:
                pass

    def _move_away(self, path: str, info: LockInfo) -> bool:
        judged = info.raw
        if _head(path, len(judged) + 1) != judged:
            return False  # renewed, released or taken over since we judged it
        grave = f"{path}.stale.{process.unique()}"
        try:
            os.rename(path, grave)
        except FileNotFoundError:
            return False
        moved = _head(grave, len(judged) + 1)
        if moved == judged:
            os.unlink(grave)
            return True
        if moved is not None:
            # The owner renewed it between our look and our rename: put it back.
            _put_back(grave, path, info.task_hash, "was renewed during takeover")
        return False

    def _take_over(self, info: LockInfo) -> Claim | None:
        path = self.store.lock_path(info.task_hash)
        token = self._take_token(path, info)
        if token is None:
            return None
        try:
            if not self._move_away(path, info):
                return None
            # Made before the token is given up: a racer that judged the same claim and comes
            # late finds the token or this claim in place, never an empty place to claim.
            claim = self._create(info.task_hash)
            if claim is not None:  # None: a plain claim, or the owner remaking its file, came first
                log.warning("took over stale claim on %s from %s (%s)", info.task_hash,
                            info.owner.get("worker", "unknown owner"), info.reason)
            return claim
        finally:
            self._drop_token(*token)

    def inspect(self, task_hash: str) -> LockInfo | None:
        """Read and judge the claim on `task_hash`; None if there is none."""
        return self._judge(task_hash, self.store.lock_path(task_hash))

    def _judge(self, task_hash: str, path: str) -> LockInfo | None:
        got = _read(path)
        if got is None:
            return None
        st, raw = got
        try:
            owner = json.loads(raw)
            if not isinstance(owner, dict):
                raise ValueError
        except ValueError:
            owner = {}  # being written right now, or damaged: judged by age alone
        age = self.fs_now(st.st_mtime) - st.st_mtime
        try:
            lease = float(owner.get("lease") or self.lease)
        except (TypeError, ValueError):
            lease = self.lease
        if gone_from_here(owner):
            return LockInfo(task_hash, owner, age, True, f"process {owner['pid']} on {HOST} is gone", st, raw)
        if age > lease:
            return LockInfo(task_hash, owner, age, True, f"not renewed for {age:.0f}s (lease {lease:.0f}s)", st, raw)
        return LockInfo(task_hash, owner, age, False, "live", st, raw)

    def still_ours(self, claim: Claim) -> bool:
        return _same_claim(_head(claim.path, len(claim.content) + 1), claim.content)

    def holds(self, claim: Claim) -> bool:
        """Whether the claim is still ours.

        A claim made less than half a lease ago cannot have been judged stale
        by anyone (its owner lives, and its file is younger than the lease on
        every clock), so it is ours without a look; this spares the many short
        tasks three system calls before saving and three before releasing.
        Older claims are read from the file: not inferred from the time since
        the last renewal, because an owner that froze past its lease and
        renewed just as a takeover began can lose the claim right after
        renewing (see _move_away). The age is taken on a clock that runs on
        while the process is stopped and the machine is suspended.
        """
        if claim.lost:
            return False
        if self._young(claim):
            return True
        raw = _head(claim.path, len(claim.content) + 1)
        if raw is None:
            return self._vanished(claim)
        if _same_claim(raw, claim.content):
            return True
        claim.why = "another worker took it over"
        return False

    def _young(self, claim: Claim) -> bool:
        return _elapsed_clock() - claim.made < self.lease / 2 - FS_TIME_SLACK

    def _lose(self, claim: Claim) -> bool:
        claim.lost = True
        claim.why = "another worker took it over"
        log.warning("lost claim on %s: another worker took it over", claim.task_hash)
        return False

    def _vanished(self, claim: Claim) -> bool:
        """Our claim file is not there. A takeover leaves a claim in its place, so either its
        file or its folder was deleted, or the task was taken over and finished meanwhile:
        make the claim again, unless the task is finished or someone else claimed it since."""
        if self.store.has_result(claim.task_hash):
            claim.lost = True
            claim.why = "its claim file vanished, and the task was finished elsewhere"
            log.warning("claim file on %s vanished, and the task was finished elsewhere", claim.task_hash)
            return False
        fd = _exclusive(claim.path)
        if fd is None:
            return self._lose(claim)
        try:
            os.write(fd, claim.content)
        finally:
            os.close(fd)
        log.warning("claim file on %s vanished (deleted from the store?); made it again", claim.task_hash)
        return True

    def renew(self, claim: Claim) -> bool:
        """Touch our claim if it is still ours; mark it lost otherwise."""
        if claim.lost:
            return False
        try:
            fd = _open_for_renewal(claim.path)
        except FileNotFoundError:
            return self._vanished(claim)
        renewals = (claim.renewals + 1) % 10 ** _RENEWAL_DIGITS
        digits = b"%0*d" % (_RENEWAL_DIGITS, renewals)
        try:
            # Check and renew through one descriptor: if a takeover renames the
            # file meanwhile, the write still lands on our own file.
            if not _same_claim(os.pread(fd, len(claim.content) + 1, 0), claim.content):
                return self._lose(claim)
            os.pwrite(fd, digits, _R0)
        finally:
            os.close(fd)
        # One assignment: a thread comparing meanwhile sees the old or the new bytes, both ours.
        claim.content = claim.content[:_R0] + digits + claim.content[_R1:]
        claim.renewals = renewals
        return True

    def release(self, claim: Claim) -> bool:
        """Remove our claim; leaves alone a claim that is no longer byte-for-byte ours.

        Once checked, the file is moved aside, judged again where it lies, and
        only then removed: a check followed by a removal could be split by a
        freeze as long as a lease, and the removal would then hit the claim of
        the worker that took over. A claim still young after the move was ours
        when moved (see `holds`); an older one is read again.
        """
        vanished = ("not releasing the claim on %s: its claim file vanished (deleted from the store, "
                    "or taken over and released)")
        size = len(claim.content) + 1
        if not claim.lost and not self._young(claim):  # checked first too, so that another's claim is left in place
            raw = _head(claim.path, size)
            if raw is None:
                claim.lost = True
                log.warning(vanished, claim.task_hash)
                return False
            claim.lost = not _same_claim(raw, claim.content)
        if claim.lost:
            log.warning("not releasing the claim on %s: it is no longer ours", claim.task_hash)
            return False
        claim.lost = True  # given back: never ours again, however recent
        moved = f"{claim.path}.released.{process.unique()}"
        try:
            os.rename(claim.path, moved)
        except FileNotFoundError:
            log.warning(vanished, claim.task_hash)
            return False
        if self._young(claim) or _same_claim(_head(moved, size), claim.content):
            os.unlink(moved)
            return True
        _put_back(moved, claim.path, claim.task_hash, "of another worker was moved while releasing ours")
        log.warning("not releasing the claim on %s: it is no longer ours", claim.task_hash)
        return False


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
