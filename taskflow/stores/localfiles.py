"""Atomic writes of local files: the folder store's records and results, and the job records
every kind of store keeps in its local jobs folder (`Store.jobs_folder`)."""
from __future__ import annotations

import logging
import os

from .modes import PRIVATE, Modes
from .identity import HOST, process

log = logging.getLogger(__name__)


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


def remake(folder: str, modes: Modes | None = None) -> None:
    """Make a folder of the store that should be there, saying so if it was not."""
    if not os.path.isdir(folder):
        (modes or PRIVATE).make_folders(folder)
        log.warning("%s vanished from the store; made it again", folder)


def write_atomic(final: str, data: bytes, tmp_dir: str, fsync: bool = False, modes: Modes | None = None) -> None:
    """Write `data` to a temp file in `tmp_dir` and rename it to `final`: readers see the old
    file or the new one, whole. Folders deleted meanwhile are made again. The file gets the mode
    `modes` gives files (a private store's by default), whatever the umask."""
    modes = modes or PRIVATE
    tmp = unique_name(tmp_dir, os.path.basename(final))
    try:
        fd = modes.create(tmp)
    except FileNotFoundError:
        remake(tmp_dir, modes)
        fd = modes.create(tmp)
    with open(fd, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(fd)
    try:
        os.replace(tmp, final)
    except FileNotFoundError:
        remake(os.path.dirname(final), modes)
        os.replace(tmp, final)
    if fsync:
        fsync_dir(os.path.dirname(final))
