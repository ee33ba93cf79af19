"""File operations every part of the folder store uses: atomic writes, removal, reads of records."""
from __future__ import annotations

import json
import logging
import os
from typing import Any

from ...stale import reread
from ..identity import HOST, process

log = logging.getLogger(__name__)


def remove_file(path: str) -> bool:
    """Remove a file; False if it was already gone (another worker or cleanup may have been first)."""
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def listing(folder: str) -> list[str]:
    """The names in `folder`; none when it is not there (yet, or any more)."""
    try:
        return os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []


@reread  # records are replaced by rename, maybe through another client
def read_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unique_name(folder: str, label: str) -> str:
    """A name in `folder` no other writer uses: label, host, pid and a per-process random part,
    so that cleanup can tell whose it was."""
    return os.path.join(folder, f"{label}.{HOST}.{process.pid}.{process.unique()}")


def remake(folder: str) -> None:
    """Make a folder of the store that should be there, saying so if it was not."""
    if not os.path.isdir(folder):
        os.makedirs(folder, exist_ok=True)
        log.warning("%s vanished from the store; made it again", folder)


def write_atomic(final: str, data: bytes, tmp_dir: str, fsync: bool = False) -> None:
    """Write `data` to a temp file in `tmp_dir` and rename it to `final`: readers see the old
    file or the new one, whole. Folders deleted meanwhile are made again."""
    tmp = unique_name(tmp_dir, os.path.basename(final))
    try:
        f = open(tmp, "wb")
    except FileNotFoundError:
        remake(tmp_dir)
        f = open(tmp, "wb")
    with f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    try:
        os.replace(tmp, final)
    except FileNotFoundError:
        remake(os.path.dirname(final))
        os.replace(tmp, final)
    if fsync:
        fsync_dir(os.path.dirname(final))


@reread  # a file replaced through another client may answer ESTALE: it is there all the same
def _open(path: str) -> None:
    os.close(os.open(path, os.O_RDONLY))


def opens(path: str) -> bool:
    """Whether the file opens: an open by name revalidates this client's cache of it."""
    try:
        _open(path)
        return True
    except OSError:
        return False
