"""ESTALE: a file that another client of a network filesystem replaced or removed.

On NFS and sshfs, opening or reading a file while another client renames a
new one over it (or removes it) can fail with ESTALE: the handle this client
held for the name is no longer valid. For a reader this is the same news as
FileNotFoundError, with one difference: a file renamed over the name is there
again under it. So a read that meets ESTALE is made again from the name (a
fresh lookup), a few times, and if the name still answers ESTALE it is taken
for gone: the caller sees FileNotFoundError, which every reader of the store
already handles. A read that succeeds costs nothing more.
"""
from __future__ import annotations

import errno
import functools
import logging
import os
from typing import TypeVar
from collections.abc import Callable

log = logging.getLogger(__name__)

T = TypeVar("T")

# Reads made from the name in all before a name that keeps answering ESTALE counts as gone.
ATTEMPTS = 3


def gone(e: OSError) -> bool:
    """Whether `e` says the file is not there (any more): ENOENT, or ESTALE from a network filesystem."""
    return e.errno in (errno.ENOENT, errno.ESTALE)


def reread(read: Callable[..., T]) -> Callable[..., T]:
    """`read(path, ...)`, made again from the name when it meets ESTALE; FileNotFoundError
    naming `path` when every attempt did."""
    @functools.wraps(read)
    def again(path, *args, **kwargs):
        for _ in range(ATTEMPTS):
            try:
                return read(path, *args, **kwargs)
            except OSError as e:
                if e.errno != errno.ESTALE:
                    raise
                log.debug("%s: stale file handle; reading it again", path)
        raise FileNotFoundError(errno.ENOENT, f"{os.strerror(errno.ESTALE)} on every read", str(path))
    return again


def drop_cache(fd: int) -> None:
    """Forget this client's cached pages of an open file, so that reads come from the filesystem.

    A client of NFS or FUSE may keep pages of a file that another client has
    since replaced; a fresh open revalidates its attributes, not those pages.
    """
    if hasattr(os, "posix_fadvise"):
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass  # not every filesystem takes advice; the read is then as fresh as it can be
