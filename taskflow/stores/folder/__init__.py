"""The folder store: results, claims and records as files in one folder on a shared filesystem.

`store.py` holds the layout, `results.py` and `writes.py` the results,
`packed.py` (with `packfile.py`, `packindex.py`, `packwriter.py` and
`compact.py`) small results kept together in packs,
`records.py` the small records, `claims.py` the claims (with `claimfiles.py`,
`judging.py`, `clock.py` and `takeover.py`), `journal.py` the journals of
finished work, `damage.py` moving damaged results aside, `leftovers.py` what
cleanup may remove.
"""
from __future__ import annotations

from ...errors import UsageError
from ..base import Store
from .store import FolderStore

__all__ = ["FolderStore", "require_folder"]


def require_folder(store: Store, what: str) -> FolderStore:
    """`store` as a folder store, for what is inherently about a filesystem (`what`: a command);
    a one-line UsageError for any other kind of store."""
    if not isinstance(store, FolderStore):
        raise UsageError(f"{what} examines the filesystem of a folder store; {store} is not one")
    return store
