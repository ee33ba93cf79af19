"""Reading a large result in one checked pass: each chunk is checked right after the read that
brought it, while it is in cache, so the data crosses memory once (see encoding.py for the format)."""
from __future__ import annotations

import io
from typing import Any

from .errors import CorruptResultError
from .resultheader import Header

# Large data is read, and checksummed, in chunks of this size: small enough to stay in a core's
# cache between the read and the checksum (see bench/checksum.py chunks).
CHUNK = 1 << 20


def read_exactly(f: io.FileIO, into: memoryview, path: str) -> None:
    got = 0
    while got < len(into):
        n = f.readinto(into[got:])
        if not n:
            raise CorruptResultError(path, "file changed size while being read")
        got += n


def read_checked(f: io.FileIO, into: memoryview, check: Any, path: str) -> None:
    """Fill `into` from `f` chunk by chunk, each chunk handed to `check` right after its read, while
    it is in cache: one pass over the data, and none over memory it has left."""
    pos = 0
    while pos < len(into):
        chunk = into[pos:pos + CHUNK]
        read_exactly(f, chunk, path)
        check.add(chunk)
        pos += len(chunk)


def load_array(f: io.FileIO, path: str, first: bytes, header: Header, offset: int, check: Any
               ) -> tuple[Any, Header]:
    """(array, header) of a .npy result whose header and first bytes (`first`) were read: the rest
    is read straight into a new array, so its pages are filled once, by the read, with no buffer
    between. `check` is the checksum's checker, given nothing yet."""
    import numpy as np

    npy_size, data_size = header.segments
    if len(first) < offset + npy_size:
        first += f.read(offset + npy_size - len(first))
    npy_header = first[offset:offset + npy_size]
    try:
        stream = io.BytesIO(npy_header)
        np.lib.format.read_magic(stream)
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        count = int(np.prod(shape, dtype=np.int64))
        if dtype.hasobject:  # what an array of objects holds is pickled: never here (trust.py)
            raise ValueError("an array of objects where only plain data may be")
    except Exception as e:
        check.result()  # lets CRC-32's helper threads go
        raise CorruptResultError(path, f"cannot decode ({type(e).__name__}: {e})") from None
    if count * dtype.itemsize != data_size:
        check.result()
        raise CorruptResultError(path, "array header does not match the data length")
    flat = np.empty(data_size, dtype=np.uint8)
    target = flat.data
    have = first[offset + npy_size:]
    target[:len(have)] = have
    try:
        check.add(npy_header)
        check.add(target[:len(have)])
        read_checked(f, target[len(have):], check, path)
    finally:
        digest = check.result()
    if digest != header.digest:
        raise CorruptResultError(path, "checksum mismatch (the file was altered or torn)")
    return flat.view(dtype).reshape(shape, order="F" if fortran else "C"), header
