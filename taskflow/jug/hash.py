"""jug.hash: `hash_one` for custom hash functions (see CustomHash), with taskflow's encoding.

`hash_one(obj)` gives the hex digest (bytes) of `obj` as taskflow hashes
arguments. While `taskflow import-jug` computes jug's keys it gives jug's
digest instead, so a `__jug_hash__` or CustomHash function built on it
names the same results jug stored.
"""
from __future__ import annotations

import contextvars
from typing import Any

from ..errors import JugFeatureError
from ..hashing import value_hash

__all__ = ["hash_one"]

# Set by taskflow.jugkey while it computes jug's own keys.
jug_scheme: contextvars.ContextVar = contextvars.ContextVar("jug_scheme", default=None)


def hash_one(obj: Any) -> bytes:
    """A hex digest (bytes) identifying `obj`."""
    scheme = jug_scheme.get()
    if scheme is not None:
        return scheme(obj)
    return value_hash(obj).encode("ascii")


def __getattr__(name: str) -> Any:
    if name in ("hash_update", "new_hash_object"):
        raise JugFeatureError(f"jug.hash.{name}", "give the class a __jug_hash__() or __taskflow_hash__() "
                              "method returning bytes, or use jug.hash.hash_one")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
