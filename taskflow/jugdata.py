"""Reading results from a jug 2.x file store (a `*.jugdata` folder), for `taskflow import-jug`.

A result of key K lives in `K[:2]/K[2:]`, as a numpy `.npy` file, a parquet
file, an empty file (None), or a zlib stream that is empty (None too) or starts with `P` (a pickle)
or `N` (`.npy` data). Small results may instead sit in `packs/jugpack`, one
such zlib stream holding a dict of all of them. Nothing here writes to the
folder.
"""
from __future__ import annotations

import io
import os
import pickle
import zlib
from typing import Any

from .errors import UsageError
from .jugalias import jug_alias

NPY_MAGIC = b"\x93NUMPY"
_JUG_FOLDERS = {"locks", "packs", "tempfiles"}
_HEX = set("0123456789abcdef")


class Unreadable(Exception):
    """A jug result file that cannot be read as jug wrote it; says why."""


class JugData:
    """A jugdata folder, opened for reading."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        if not os.path.isdir(self.path):
            raise UsageError(f"{path}: no such jugdata folder" if not os.path.exists(path)
                             else f"{path}: not a folder")
        # Jug writes only these (its keys are hex digests); anything else means a wrong folder,
        # whose tasks would all be reported as not finished under jug.
        foreign = sorted(n for n in os.listdir(self.path)
                         if n not in _JUG_FOLDERS and not (len(n) == 2 and set(n) <= _HEX))
        if foreign:
            raise UsageError(f"{path}: not a jugdata folder (it holds {foreign[0]!r}, which jug does not write)")
        self._pack: dict | None = None

    def file_of(self, key: str) -> str:
        return os.path.join(self.path, key[:2], key[2:])

    def pack(self) -> dict:
        if self._pack is None:
            path = os.path.join(self.path, "packs", "jugpack")
            try:
                with open(path, "rb") as f:
                    packed = _decode(f.read(), path)
            except FileNotFoundError:
                packed = {}
            if not isinstance(packed, dict):
                raise Unreadable(f"{path} holds a {type(packed).__name__}, not jug's pack")
            self._pack = {(k.decode("ascii") if isinstance(k, bytes) else k): v for k, v in packed.items()}
        return self._pack

    def has(self, key: str) -> bool:
        return os.path.exists(self.file_of(key)) or key in self.pack()

    def load(self, key: str) -> Any:
        """The result jug stored under `key`; raises Unreadable (or FileNotFoundError when there is none).

        A result file wins over the pack, as in jug (it is the newer one).
        """
        path = self.file_of(key)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            pack = self.pack()
            if key in pack:
                return pack[key]
            raise
        if data.startswith(NPY_MAGIC):
            return _load_npy(data, path)
        if data.startswith(b"PAR1"):
            raise Unreadable(f"{path} is a parquet file (a polars DataFrame), which taskflow does not read")
        return _decode(data, path)


def _decode(data: bytes, path: str) -> Any:
    if not data:
        return None  # jug writes None as an empty file
    try:
        raw = zlib.decompress(data)
    except zlib.error as e:
        raise Unreadable(f"{path}: not a complete zlib stream ({e})") from None
    if not raw:
        return None
    kind, body = raw[:1], raw[1:]
    if kind == b"P":
        try:
            with jug_alias():  # jug's pickles may name jug.* classes
                return pickle.loads(body)
        except Exception as e:
            raise Unreadable(f"{path}: cannot unpickle ({type(e).__name__}: {e})") from None
    if kind == b"N":
        return _load_npy(body, path)
    raise Unreadable(f"{path}: unknown jug encoding {kind!r}")


def _load_npy(data: bytes, path: str) -> Any:
    try:
        import numpy as np
        return np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:
        raise Unreadable(f"{path}: not a readable .npy array ({type(e).__name__}: {e})") from None
