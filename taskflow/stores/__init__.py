"""Stores: where results, failures and claims live. `open_store` picks the kind from `--store`.

A `--store` value is a path (or a `file://` URL): a folder store
(`stores/folder/`), or a URL whose scheme names another kind of store in
`BACKENDS`. A new kind of store is one module implementing `stores.base.Store`
and one line here.
"""
from __future__ import annotations

import importlib
import re

from ..errors import UsageError
from .base import Store

# URL scheme -> "module:class" implementing Store, imported only when a store of that kind is opened.
BACKENDS: dict[str, str] = {
    "file": "taskflow.stores.folder.store:FolderStore",
    "redis": "taskflow.stores.redis.store:RedisStore",
    "rediss": "taskflow.stores.redis.store:RedisStore",
}

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def scheme_of(value: str) -> str:
    """The URL scheme of a `--store` value; "file" for a plain path."""
    m = _SCHEME.match(value)
    return m.group(1).lower() if m else "file"


def open_store(value: str, *, fsync: bool = False) -> Store:
    """The store a `--store` value names; touches nothing (see `Store.ensure`).

    UsageError (exit 2) naming the value for a scheme no backend handles.
    """
    scheme = scheme_of(value)
    target = BACKENDS.get(scheme)
    if target is None:
        known = ", ".join(f"{s}://" for s in sorted(BACKENDS))
        raise UsageError(f"--store {value}: no kind of store is known for {scheme}:// "
                         f"(give a folder path, or one of {known})")
    module, _, name = target.partition(":")
    cls = getattr(importlib.import_module(module), name)
    if scheme == "file" and _SCHEME.match(value):
        # Here, not at the top: urllib.parse brings ipaddress, 2 ms of every worker's start for a plain path.
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(value)
        if parts.netloc not in ("", "localhost"):
            raise UsageError(f"--store {value}: a file:// store must be on this host (file:///PATH)")
        value = unquote(parts.path)
    return cls.from_value(value, fsync=fsync)
