"""File operations every part of the folder store uses: removal, listings, reads of records
(atomic writes are in stores/localfiles.py, which job records use too)."""
from __future__ import annotations

import json
import os
from typing import Any

from ...stale import reread


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
