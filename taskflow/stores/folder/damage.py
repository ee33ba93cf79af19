"""Moving a damaged result file aside, to damaged/, where a human can look at it."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ... import encoding
from ...errors import CorruptResultError
from ..identity import HOST, process
from .layout import Folder

if TYPE_CHECKING:
    from ...signing import Seal



def _intact(path: str, seal: Seal | None) -> bool:
    """Whether the file reads intact (and signed, with `seal`) from a fresh open; FileNotFoundError
    when absent."""
    try:
        encoding.verify(path, fresh=True, seal=seal)
    except CorruptResultError:
        return False
    return True


def move_aside(store: Folder, task_hash: str) -> str | None:
    """Move a damaged result to damaged/; the path it went to, or None if there was nothing to move.

    Checked again from a fresh open first, so a result that only looked
    damaged through this client's cache stays. Racing movers each move what
    is at the result's path; one that moved a result computed again meanwhile
    (intact) puts it back. The suspect mark, if any, is dropped once the
    result is gone. OSError when the store cannot be written.
    """
    final = store.result_path(task_hash)
    try:
        if _intact(final, store.seal(task_hash)):
            store.unmark_suspect(task_hash)
            return None
    except FileNotFoundError:
        store.unmark_suspect(task_hash)
        return None
    moved = os.path.join(store.damaged_dir, f"{task_hash}.{HOST}.{process.pid}.{process.unique()}")
    try:
        try:
            os.rename(final, moved)
        except FileNotFoundError:
            if os.path.isdir(store.damaged_dir):
                store.unmark_suspect(task_hash)
                return None  # another worker moved it first
            store.modes.make_folders(store.damaged_dir)
            os.rename(final, moved)
    except FileNotFoundError:
        store.unmark_suspect(task_hash)
        return None
    try:
        intact = _intact(moved, store.seal(task_hash))
    except FileNotFoundError:
        intact = False
    if intact:
        # Computed again by someone else between the check and the rename: give it back.
        try:
            os.link(moved, final)
            os.unlink(moved)
        except FileExistsError:
            os.unlink(moved)  # a newer result is in place already
        except OSError:
            # No hard links here (some FUSE filesystems): a rename may replace a newer result,
            # which is as intact as this one and of the same task.
            os.rename(moved, final)
        store.unmark_suspect(task_hash)
        return None
    store.unmark_suspect(task_hash)
    return moved
