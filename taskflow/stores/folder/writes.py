"""Writing a result file atomically: an unnamed file linked into place, or a temp file renamed.

Readers see a whole file or none. A crashed writer leaves nothing behind
(unnamed file) or at most a temp file in tmp/, which cleanup removes.
"""
from __future__ import annotations

import errno
import os

from ... import encoding
from ..localfiles import unique_name
from ..modes import PRIVATE, Modes

# What filesystems and kernels answer when they cannot make or link unnamed files.
_UNSUPPORTED = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT, errno.EPERM, errno.EACCES,
                errno.EXDEV, errno.ENOSYS}


class _Anonymous:
    """Whether unnamed files (O_TMPFILE + linkat) work here; learned on first use."""

    def __init__(self) -> None:
        # linkat() with a source directory fd is what links /proc/self/fd/N by its target.
        self.usable = (hasattr(os, "O_TMPFILE") and os.link in os.supports_dir_fd
                       and os.path.isdir("/proc/self/fd"))
        self._root: int | None = None

    def root_fd(self) -> int:
        # linkat() follows /proc/self/fd/N only when given a directory fd.
        if self._root is None:
            self._root = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
        return self._root


_anonymous = _Anonymous()


def place(final: str, payload: encoding.Payload, tmp_dir: str, fsync: bool, shards_made: set[str],
          modes: Modes = PRIVATE) -> int:
    """Write `payload` at `final` atomically, with the mode `modes` gives files; its size. A missing
    shard folder is made here, once the file is written; FileNotFoundError when tmp/ is missing (the
    caller makes it and tries again)."""
    size = write_anonymous(final, payload, tmp_dir, fsync, shards_made, modes) if _anonymous.usable else None
    return write_via_tmp(final, payload, tmp_dir, fsync, shards_made, modes) if size is None else size


def write_anonymous(final: str, payload: encoding.Payload, tmp_dir: str, fsync: bool,
                    shards_made: set[str], modes: Modes = PRIVATE) -> int | None:
    """Write an unnamed file and link it in place once complete.

    The file has no name until it is whole, so a crash leaves nothing
    behind, and it costs one directory entry instead of two plus a rename.
    It is made in tmp/, not in the result's shard: filesystems place a new
    inode near its folder's, and one folder keeps them together instead
    of spreading them over every shard's part of the disk. Returns None
    where the filesystem cannot (NFS has no O_TMPFILE): the caller then
    writes a named file in tmp/ and renames it.
    """
    try:
        fd = os.open(tmp_dir, os.O_TMPFILE | os.O_WRONLY, modes.file)
    except OSError as e:
        if e.errno not in _UNSUPPORTED or (e.errno == errno.ENOENT and not os.path.isdir(tmp_dir)):
            raise  # no tmp/ (deleted while we run) says nothing of O_TMPFILE: the caller makes it
        _anonymous.usable = False
        return None
    try:
        modes.made(fd)
        size = payload.write(fd)
        if fsync:
            os.fsync(fd)
        source = f"/proc/self/fd/{fd}"
        try:
            _in_shard(final, shards_made, lambda: _link(source, final, tmp_dir), modes)
        except OSError as e:
            if e.errno not in _UNSUPPORTED or e.errno == errno.ENOENT and not os.path.isdir(os.path.dirname(final)):
                raise  # a full disk or an I/O error is the caller's to see, and so is a shard that keeps vanishing
            _anonymous.usable = False  # no /proc, or linkat refused: use tmp/ from now on
            return None
    finally:
        os.close(fd)
    return size


def _link(source: str, final: str, tmp_dir: str) -> None:
    try:
        os.link(source, final, src_dir_fd=_anonymous.root_fd(), follow_symlinks=True)
    except FileExistsError:
        # Replacing a damaged result, or a retry: link under a temp name, rename over.
        tmp = unique_name(tmp_dir, os.path.basename(final))
        os.link(source, tmp, src_dir_fd=_anonymous.root_fd(), follow_symlinks=True)
        try:
            os.replace(tmp, final)
        except BaseException:
            os.unlink(tmp)  # the shard vanished meanwhile: linking again must not leave this name behind
            raise


def _in_shard(final: str, shards_made: set[str], put, modes: Modes) -> None:
    """`put()` the whole file at `final`, making its shard folder and putting it again if the folder
    is missing (made on first use, or removed by a cleanup): writing the file again instead would cost
    as much as the first time, 50 MB for a 50 MB array."""
    try:
        put()
    except FileNotFoundError:
        shard = os.path.dirname(final)
        if shard in shards_made and os.path.isdir(shard):
            raise  # the folder is there: what is missing is something else (/proc, for a link)
        modes.make_folders(shard)  # another worker may be making it right now
        shards_made.add(shard)
        put()


def write_via_tmp(final: str, payload: encoding.Payload, tmp_dir: str, fsync: bool,
                  shards_made: set[str] | None = None, modes: Modes = PRIVATE) -> int:
    tmp = unique_name(tmp_dir, os.path.basename(final))
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, modes.file)
        try:
            modes.made(fd)
            size = payload.write(fd)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        _in_shard(final, set() if shards_made is None else shards_made, lambda: os.replace(tmp, final), modes)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return size
