"""Claim files: their bytes, exclusive creation, and reading them through ESTALE.

A claim file starts with its renewal counter, rewritten in place by each
renewal (fixed width, so the file keeps its size and the rest of its bytes),
then its owner's record (host, boot id, pid, worker id, lease, start times,
task) and a random token. A claim is judged and named by what every client
sees alike: its bytes. Inode numbers, device ids and nanoseconds differ
between the clients of one file (and inodes are reused at once), so nothing
here depends on them.
"""
from __future__ import annotations

import json
import logging
import os
import struct
import sys
from typing import Any
from dataclasses import dataclass, field

from ...stale import reread
from ..claims import Claim, ClaimInfo
from ..modes import PRIVATE, Modes
from .judging import DANGLING, RENEWAL_END

log = logging.getLogger(__name__)

RENEWAL_HEAD = b'{"renewal": "'
RENEWAL_DIGITS = 8
R0 = len(RENEWAL_HEAD)
R1 = R0 + RENEWAL_DIGITS
assert R1 == RENEWAL_END  # what a claim's MAC leaves out (judging.py)


@dataclass
class FolderClaim(Claim):
    """A claim file: where it is and the bytes it was written with (at its current renewal)."""

    path: str = ""
    content: bytes = field(default=b"", repr=False)


@dataclass
class LockInfo(ClaimInfo):
    """A claim file as judged, with its attributes when read."""

    stat: os.stat_result | None = field(default=None, repr=False)


# statx(2) of Linux: flags, mask and where struct statx keeps stx_mtime ({s64 sec, u32 nsec}).
_AT_EMPTY_PATH = 0x1000
_AT_STATX_FORCE_SYNC = 0x2000
_STATX_MTIME = 0x40
_STX_MTIME_OFFSET = 112
_STATX_SIZE = 0x200
_STX_SIZE_OFFSET = 40


def _find_statx():
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # here, not at import: only takeovers judge a claim, and ctypes costs every start
    try:
        fn = ctypes.CDLL(None, use_errno=True).statx
    except (OSError, AttributeError):  # a libc older than glibc 2.28, or none to load
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_char_p]
    fn.restype = ctypes.c_int
    return fn


_statx: Any = False  # not looked up yet; then the statx function, or None where there is none

# posix_fadvise is missing on some platforms (macOS): there a read is as fresh as the client makes it.
_DROP_CACHE = getattr(os, "posix_fadvise", None)

# Exclusive creates tried at most this often when the answer is neither success nor EEXIST.
_CREATE_ATTEMPTS = 4


def same_claim(raw: bytes | None, content: bytes) -> bool:
    """Whether the bytes `raw` are the claim `content` at any renewal."""
    return raw is not None and len(raw) == len(content) and raw[R1:] == content[R1:] \
        and raw[:R0] == content[:R0]


def exclusive(path: str, modes: Modes = PRIVATE) -> int | None:
    """A new file at `path` opened for writing, or None if the file exists (the race is lost).

    Also a lost race on filesystems that answer something else than EEXIST (sshfs: EPERM,
    as SFTP v3 has no "exists" status): the file is there afterwards. When it is not, the
    winner may have removed it already (a claim given back at once): try again, a few
    times, before taking the code for what it says. A missing folder is made again. The file
    gets the mode `modes` gives files.
    """
    for attempt in range(1, _CREATE_ATTEMPTS + 1):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, modes.file)
        except FileExistsError:
            return None
        except FileNotFoundError:
            if attempt == _CREATE_ATTEMPTS:
                raise
            folder = os.path.dirname(path)
            modes.make_folders(folder)
            log.warning("%s vanished from the store; made it again", folder)
        except OSError:
            if os.path.lexists(path):  # the only extra look, and only on this path
                return None
            if attempt == _CREATE_ATTEMPTS:
                raise
        else:
            try:
                modes.made(fd)
            except BaseException:
                os.close(fd)
                raise
            return fd
    raise AssertionError("unreachable")


def write_new(path: str, content: bytes, modes: Modes = PRIVATE) -> bool:
    """Create `path` exclusively holding `content`; False if it exists."""
    fd = exclusive(path, modes)
    if fd is None:
        return False
    try:
        os.write(fd, content)
    finally:
        os.close(fd)
    return True


def dangling(path: str) -> bytes | None:
    """What a reader takes for the bytes of a symbolic link at `path` to nothing (judging.DANGLING
    and the target), or None when there is none. Asked only after an open found nothing."""
    try:
        return DANGLING + os.readlink(path).encode()
    except OSError:  # no such name, or a file after all (made since the open)
        return None


def read(path: str, limit: int = 1 << 16) -> tuple[os.stat_result, bytes] | None:
    """The file's attributes and first bytes, or None if there is no such file. A symbolic link
    to nothing reads as its `dangling` bytes, with the link's own attributes."""
    try:
        return _stat_and_read(path, limit)
    except FileNotFoundError:
        gone = dangling(path)
        if gone is None:
            return None
        try:
            return os.lstat(path), gone
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


def head(path: str, size: int) -> bytes | None:
    """The first `size` bytes of the file, or None if there is none (as `read` for a link to
    nothing)."""
    try:
        return _read_head(path, size)
    except FileNotFoundError:
        return dangling(path)


def fresh_read(path: str, limit: int = 1 << 16) -> tuple[float, bytes] | None:
    """The file's mtime and first bytes as the filesystem holds them now, past every cache of
    this client (see `fresh_head`, `synced_mtime`); None if there is no such file. Read
    before the mtime is taken, so that a renewal in between makes the claim look younger,
    never its new bytes older."""
    try:
        return _fresh_read(path, limit)
    except FileNotFoundError:
        gone = dangling(path)
        if gone is None:
            return None
        try:
            return os.lstat(path).st_mtime, gone
        except FileNotFoundError:
            return None


@reread
def _fresh_read(path: str, limit: int) -> tuple[float, bytes]:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _DROP_CACHE is not None:
            _DROP_CACHE(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        raw = os.read(fd, limit)
        return synced_mtime(fd), raw
    finally:
        os.close(fd)


def synced_mtime(fd: int) -> float:
    """The mtime of the open file `fd` asked of the filesystem, not of this client's attribute
    cache, which a caching client (FUSE, NFS) trusts for a while even when another client has
    replaced the file by another that it gives the same inode number: statx with
    AT_STATX_FORCE_SYNC where Linux has it, else fstat (fresh after open on NFS)."""
    global _statx
    if _statx is False:
        _statx = _find_statx()
    if _statx is not None:
        import ctypes
        buf = ctypes.create_string_buffer(256)
        if _statx(fd, b"", _AT_EMPTY_PATH | _AT_STATX_FORCE_SYNC, _STATX_MTIME, buf) == 0:
            sec, nsec = struct.unpack_from("=qI", buf, _STX_MTIME_OFFSET)
            return sec + nsec / 1e9
    return os.fstat(fd).st_mtime


def synced_size(fd: int) -> int:
    """The size of the open file `fd` asked of the filesystem, past this client's attribute cache
    (as `synced_mtime`): opened just before, it is what the server holds now, also where a
    client caches attributes (sshfs refreshes them on open, NFS revalidates them)."""
    global _statx
    if _statx is False:
        _statx = _find_statx()
    if _statx is not None:
        import ctypes
        buf = ctypes.create_string_buffer(256)
        if _statx(fd, b"", _AT_EMPTY_PATH | _AT_STATX_FORCE_SYNC, _STATX_SIZE, buf) == 0:
            return struct.unpack_from("=Q", buf, _STX_SIZE_OFFSET)[0]
    return os.fstat(fd).st_size


def fresh_head(path: str, size: int) -> bytes | None:
    """The first `size` bytes of the file as the server holds them now, or None if there is none.

    For takeovers only: a caching client (sshfs with kernel_cache, and any client between
    revalidations) may answer a plain read from the pages of the file that had this name
    before, even after another client replaced it, and gives both files one inode number.
    Dropping the cached pages first makes the read go to the filesystem; one local system
    call, no round trip.
    """
    try:
        return _read_head(path, size, fresh=True)
    except FileNotFoundError:
        return dangling(path)


@reread
def _read_head(path: str, size: int, fresh: bool = False) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        if fresh and _DROP_CACHE is not None:
            _DROP_CACHE(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return os.read(fd, size)
    finally:
        os.close(fd)


@reread
def open_for_renewal(path: str) -> int:
    return os.open(path, os.O_RDWR)


def renew_at(c: FolderClaim, path: str) -> bool | None:
    """Renew `c` by writing to the file at `path` (its own, or another name of it); False when
    that file is not ours (left as it is), None when there is none."""
    try:
        fd = open_for_renewal(path)
    except FileNotFoundError:
        return None
    renewals = (c.renewals + 1) % 10 ** RENEWAL_DIGITS
    digits = b"%0*d" % (RENEWAL_DIGITS, renewals)
    try:
        # Check and renew through one descriptor: if a takeover renames the
        # file meanwhile, the write still lands on our own file.
        if not same_claim(os.pread(fd, len(c.content) + 1, 0), c.content):
            return False
        os.pwrite(fd, digits, R0)
    finally:
        os.close(fd)
    # One assignment: a thread comparing meanwhile sees the old or the new bytes, both ours.
    c.content = c.content[:R0] + digits + c.content[R1:]
    c.renewals = renewals
    return True


def read_owner(path: str) -> dict | None:
    """The owner recorded in a claim file (or in what a takeover or release left of one);
    {} when unreadable or being written, None when there is no such file."""
    got = read(path)
    if got is None:
        return None
    try:
        owner = json.loads(got[1])
    except ValueError:
        return {}
    return owner if isinstance(owner, dict) else {}


def put_back(moved: str, path: str, task_hash: str, why: str) -> None:
    """Return another worker's claim, moved to `moved` by mistake, to its place."""
    try:
        os.link(moved, path, follow_symlinks=False)  # a link to nothing goes back as itself
    except OSError as e:
        if not isinstance(e, FileExistsError) and not os.path.lexists(path):
            raise  # sshfs reports an existing target as EPERM: only that is a third claim
        log.warning("the claim on %s %s, and could not be put back: a third worker claimed the task "
                    "meanwhile; the worker it belonged to will find it lost", task_hash, why)
    os.unlink(moved)
