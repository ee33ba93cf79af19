"""The checksums of results: XXH3 where the xxhash package is installed, else CRC-32.

A result's header names its checksum (see encoding.py), so a store may mix
both. XXH3_64 (xxhash) runs at memory speed on one core, so a large result
is checked in one pass on the calling thread, chunk by chunk while each
chunk is in cache. Where xxhash cannot be imported, new results get zlib's
CRC-32, as older taskflow wrote them; there, checking a result that names
xxh3_64 is a one-line error saying so (loading it memory-mapped, which
checks nothing, still works). README.md, "Dependencies", has the figures.

zlib's CRC-32 runs at 2 to 6 GB/s on one core (depending on the CPU), about
as fast as writing to the page cache, so a large result's CRC-32 is cut into
pieces checked on several threads (zlib lets go of the GIL), and the pieces' CRCs are joined into the
CRC of the whole: the same number as one `zlib.crc32` over everything.

Joining uses the algebra of CRCs: with the polynomial arithmetic over GF(2)
that defines them, crc(A + B) is crc(A) multiplied by x to the power of 8
times the length of B, modulo the CRC polynomial, added to crc(B) (zlib's
pre- and post-inversion cancel out in that sum). Numbers here keep zlib's
reflected bit order: the top bit stands for x**0.
"""
from __future__ import annotations

import os
import threading
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from ._version import __version__
from .errors import StoreError

CRC32 = "crc32"
XXH3 = "xxh3_64"

_POLY = 0xEDB88320  # x**32 + x**26 + ... + 1, reflected, without the x**32 term
_X0 = 1 << 31       # the polynomial 1
PIECE = 8 << 20     # bytes per piece: large enough that threads cost nothing next to it


def _multiply(a: int, b: int) -> int:
    """a * b modulo the CRC polynomial."""
    product = 0
    bit = _X0
    while a:
        if a & bit:
            product ^= b
            a ^= bit
        bit >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1
    return product


def _powers() -> list[int]:
    # x**(2**k) modulo the polynomial, for k = 0..63: squaring gives the next one.
    table = [_X0 >> 1]  # x**1
    for _ in range(63):
        table.append(_multiply(table[-1], table[-1]))
    return table


_X_POW_2K = _powers()


def _x_pow_bytes(n: int) -> int:
    """x**(8 n) modulo the polynomial."""
    result, k, exponent = _X0, 0, 8 * n
    while exponent:
        if exponent & 1:
            result = _multiply(_X_POW_2K[k], result)
        exponent >>= 1
        k += 1
    return result


def combine(crc_a: int, crc_b: int, length_b: int) -> int:
    """CRC-32 of A followed by B, from crc(A), crc(B) and the length of B."""
    return _multiply(_x_pow_bytes(length_b), crc_a) ^ crc_b


def threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def join(crcs: Sequence[int], lengths: Sequence[int]) -> int:
    """The CRC of consecutive pieces, from each piece's CRC and length."""
    total = 0
    for crc, length in zip(crcs, lengths, strict=True):
        total = combine(total, crc, length)
    return total


class Parallel:
    """The CRC-32 of pieces handed over in order, computed on helper threads meanwhile.

    Hand over what was just read or is about to be written (`add`), go on
    reading or writing, then ask for the CRC of it all (`result`).
    """

    def __init__(self, workers: int | None = None):
        import queue  # here: only large results need it, and every worker imports this module

        self._todo: queue.SimpleQueue = queue.SimpleQueue()
        self._crcs: list[int] = []
        self._lengths: list[int] = []
        self._helpers = [threading.Thread(target=self._work, name="taskflow-crc", daemon=True)
                         for _ in range(workers or threads())]
        for helper in self._helpers:
            helper.start()

    def _work(self) -> None:
        while True:
            item = self._todo.get()
            if item is None:
                return
            i, piece = item
            self._crcs[i] = zlib.crc32(piece)

    def add(self, buffer) -> None:
        view = memoryview(buffer).cast("B")
        for start in range(0, view.nbytes, PIECE):
            piece = view[start:start + PIECE]
            self._crcs.append(0)
            self._lengths.append(piece.nbytes)
            self._todo.put((len(self._crcs) - 1, piece))

    def result(self) -> int:
        for _ in self._helpers:
            self._todo.put(None)
        for helper in self._helpers:
            helper.join()
        return join(self._crcs, self._lengths)


def crc32(buffers: Iterable, workers: int | None = None) -> int:
    """`zlib.crc32` of the buffers one after another, computed on `workers` threads."""
    crc = Parallel(workers)
    for buf in buffers:
        crc.add(buf)
    return crc.result()


_xxhash: Any = None


def _xxhash_module() -> Any:
    """The xxhash module, or False where it cannot be imported; imported on first use."""
    global _xxhash
    if _xxhash is None:
        try:
            import xxhash
            _xxhash = xxhash if hasattr(xxhash, "xxh3_64") else False
        except ImportError:
            _xxhash = False
    return _xxhash


def preferred() -> str:
    """The checksum new results get: XXH3 with xxhash installed, else CRC-32."""
    # Asked once per result written: the import is looked up only the first time.
    return XXH3 if (_xxhash if _xxhash is not None else _xxhash_module()) else CRC32


class _Crc32:
    """CRC-32 on the calling thread, chunk by chunk."""

    def __init__(self) -> None:
        self._crc = 0

    def add(self, buffer) -> None:
        self._crc = zlib.crc32(buffer, self._crc)

    def result(self) -> int:
        return self._crc


class _Xxh3:
    def __init__(self, xxhash: Any) -> None:
        self._state = xxhash.xxh3_64()

    def add(self, buffer) -> None:
        self._state.update(buffer)

    def result(self) -> int:
        return self._state.intdigest()


def checker(algorithm: str, path: str, parallel: bool = False) -> Any:
    """Something to hand the checked data to in order (`add`), then ask for its checksum (`result`).

    `parallel` (CRC-32 only, for large data): pieces are checked on helper threads while the
    caller goes on, so what was handed over must stay unchanged until `result`. Raises
    StoreError naming `path` when the checksum is one this taskflow does not know, or needs
    a package that is not installed.
    """
    if algorithm == XXH3:
        xxhash = _xxhash_module()
        if not xxhash:
            raise StoreError(f"result {path} is checked with {XXH3}, which needs the xxhash package: "
                             "install it (pip install xxhash) to read this result", path=path)
        return _Xxh3(xxhash)
    if algorithm == CRC32:
        return Parallel() if parallel else _Crc32()
    raise StoreError(f"result {path} is checked with {algorithm!r}, a checksum taskflow {__version__} does not "
                     "know: it was written by a newer taskflow; upgrade taskflow to read it", path=path)


def of(algorithm: str, buffers: Sequence, path: str, parallel: bool = False) -> int:
    """The checksum of the buffers one after another (see `checker`)."""
    # Most results are one small pickle, written and read once per task: no checker object for them.
    if algorithm == XXH3 and len(buffers) == 1 and _xxhash:
        return _xxhash.xxh3_64_intdigest(buffers[0])
    if algorithm == CRC32 and not parallel:
        crc = 0
        for buf in buffers:
            crc = zlib.crc32(buf, crc)
        return crc
    check = checker(algorithm, path, parallel)
    for buf in buffers:
        check.add(buf)
    return check.result()
