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
from dataclasses import dataclass, field

from ...stale import reread
from ..claims import Claim, ClaimInfo

log = logging.getLogger(__name__)

RENEWAL_HEAD = b'{"renewal": "'
RENEWAL_DIGITS = 8
R0 = len(RENEWAL_HEAD)
R1 = R0 + RENEWAL_DIGITS


@dataclass
class FolderClaim(Claim):
    """A claim file: where it is and the bytes it was written with (at its current renewal)."""

    path: str = ""
    content: bytes = field(default=b"", repr=False)


@dataclass
class LockInfo(ClaimInfo):
    """A claim file as judged, with its attributes when read."""

    stat: os.stat_result | None = field(default=None, repr=False)


# Exclusive creates tried at most this often when the answer is neither success nor EEXIST.
_CREATE_ATTEMPTS = 4


def same_claim(raw: bytes | None, content: bytes) -> bool:
    """Whether the bytes `raw` are the claim `content` at any renewal."""
    return raw is not None and len(raw) == len(content) and raw[R1:] == content[R1:] \
        and raw[:R0] == content[:R0]


def exclusive(path: str) -> int | None:
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


def write_new(path: str, content: bytes) -> bool:
    """Create `path` exclusively holding `content`; False if it exists."""
    fd = exclusive(path)
    if fd is None:
        return False
    try:
        os.write(fd, content)
    finally:
        os.close(fd)
    return True


def read(path: str, limit: int = 1 << 16) -> tuple[os.stat_result, bytes] | None:
    """The file's attributes and first bytes, or None if there is no such file."""
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


def head(path: str, size: int) -> bytes | None:
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
def open_for_renewal(path: str) -> int:
    return os.open(path, os.O_RDWR)


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
        os.link(moved, path)
    except OSError as e:
        if not isinstance(e, FileExistsError) and not os.path.lexists(path):
            raise  # sshfs reports an existing target as EPERM: only that is a third claim
        log.warning("the claim on %s %s, and could not be put back: a third worker claimed the task "
                    "meanwhile; the worker it belonged to will find it lost", task_hash, why)
    os.unlink(moved)
