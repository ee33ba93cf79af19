"""The on-disk format of one result: a checked header, then raw segments.

    b"TFR1" | u32 header length | JSON header | segment 0 | segment 1 | ...

The header names the checksum over all segments, lists the segment lengths,
and holds the task's metadata (name, timing, host...). It starts with the
checksum, of fixed width:

    {"checksum":"xxh3_64:<16 hex digits>","kind":...,"segments":[...],"meta":{...}}
    {"crc32":<decimal, padded to 10 characters>,"kind":...}

The first is what results get where the xxhash package is installed; the
second, what taskflow wrote before and still writes without xxhash (and what
older taskflow reads). A "checksum" this taskflow does not know (from a
newer one) is an error naming the result, not damage: the file is left alone.

A numpy array (non-object dtype) is stored as a .npy header segment plus its
raw data, so it is written straight from the array's memory and can be
memory-mapped back. Anything else is pickled with protocol 5, its large
buffers (arrays nested in containers) written out of band as their own
segments; cloudpickle takes over when plain pickle cannot (lambdas, closures
in results).

Every read is checked against the checksum, so a file torn by a crash or
truncated by a full disk is caught. Large data is checksummed chunk by chunk
as it is written or read, each chunk while it is in cache (see checksum.py).
"""
from __future__ import annotations

import io
import json
import mmap as mmap_module
import os
import pickle
import re
import struct
import sys
from collections.abc import Iterator
from typing import Any, BinaryIO

from . import checksum as checksums
from .stale import reread
from .errors import CorruptResultError

MAGIC = b"TFR1"
_PREFIX = struct.Struct("<4sI")
# Headers are small; read this much first so most results need one read call.
_FIRST_READ = 64 * 1024
# Above this size an array result is read straight into place, in chunks.
_LARGE = 1 << 20
# Large data is read and written, and checksummed, in chunks of this size: small enough to stay
# in a core's cache between the checksum and the copy (see bench/checksum.py chunks).
_CHUNK = 1 << 20
# From this size on, data is checksummed chunk by chunk while it is written.
_STREAM = 4 << 20
# One encoder for every header: json.dumps with options builds a new one per call.
_HEADER_JSON = json.JSONEncoder(separators=(",", ":"))


def _is_plain_array(value: Any) -> bool:
    np = sys.modules.get("numpy")
    return (np is not None and type(value) in (np.ndarray, np.memmap)
            and not value.dtype.hasobject)


def _npy_segments(arr) -> tuple[str, list]:
    import numpy as np

    header = np.lib.format.header_data_from_array_1_0(arr)
    buf = io.BytesIO()
    np.lib.format.write_array_header_2_0(buf, header)
    data = arr.T if header["fortran_order"] else arr
    # A contiguous array is written from its own memory; any other large one is copied chunk by
    # chunk as it is written (see _c_order_chunks), never into a whole new array.
    if not data.flags.c_contiguous and data.nbytes < _STREAM:
        data = np.ascontiguousarray(data)
    return "npy", [buf.getvalue(), _bytes_of(data) if data.flags.c_contiguous else data]


def _bytes_of(arr) -> memoryview:
    """The memory of a C-contiguous array as bytes (also with a zero in its shape, which cast refuses)."""
    import numpy as np

    return arr.reshape(-1).view(np.uint8).data


def _c_order_chunks(arr, size: int) -> Iterator[memoryview]:
    """The bytes of a non-contiguous array in C order, as contiguous pieces of about `size` bytes."""
    import numpy as np

    if arr.ndim == 0 or arr.flags.c_contiguous:
        whole = _bytes_of(np.ascontiguousarray(arr))
        for start in range(0, whole.nbytes, size):
            yield whole[start:start + size]
        return
    row = arr[0].nbytes if len(arr) else 0
    if row > size:
        for i in range(len(arr)):
            yield from _c_order_chunks(arr[i], size)
        return
    step = max(1, size // max(row, 1))
    for start in range(0, len(arr), step):
        yield _bytes_of(np.ascontiguousarray(arr[start:start + step]))


def _pickle_segments(value: Any) -> tuple[str, list]:
    buffers: list = []
    try:
        main = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
        kind = "pickle"
    except (pickle.PicklingError, TypeError, AttributeError):
        import cloudpickle

        buffers = []
        main = cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
        kind = "cloudpickle"
    # pickle hands out of band only buffers that are contiguous, so raw() works.
    return kind, [main] + [pb.raw() for pb in buffers]


class Payload:
    """One result, encoded and ready to be written (more than once if need be).

    Small results are checksummed, then written in one call. Large data is
    written chunk by chunk, each chunk checksummed just before it is written,
    while it is in the CPU's cache: one pass over the data from memory, not
    one to checksum it and another to write it, and a non-contiguous array is
    copied one chunk at a time, never as a whole. The header, whose length
    does not depend on the checksum, goes in last at the start of the file:
    the file is not in place until it is whole anyway.

    `checksum` is checksum.XXH3 or checksum.CRC32 (what older taskflow
    writes and reads); by default XXH3 where the xxhash package is installed.
    """

    def __init__(self, value: Any, meta: dict, checksum: str | None = None):
        self.kind, self.segments = _npy_segments(value) if _is_plain_array(value) else _pickle_segments(value)
        self.sizes = [len(seg) if isinstance(seg, bytes) else seg.nbytes for seg in self.segments]
        self.meta = meta
        self.checksum = checksum or checksums.preferred()
        self._digest: int | None = None

    def _head(self, digest: int) -> bytes:
        # The checksum first and of fixed width, so the header's length is known before the checksum.
        # CRC-32 results keep the header older taskflow writes and reads.
        rest = _HEADER_JSON.encode({"kind": self.kind, "segments": self.sizes, "meta": self.meta})[1:].encode()
        if self.checksum == checksums.CRC32:
            header = f'{{"crc32":{digest:<10d},'.encode() + rest
        else:
            header = f'{{"checksum":"{self.checksum}:{digest:016x}",'.encode() + rest
        return _PREFIX.pack(MAGIC, len(header)) + header

    def _chunks(self) -> Iterator[memoryview]:
        for seg in self.segments:
            if isinstance(seg, (bytes, memoryview)):
                view = memoryview(seg)
                for start in range(0, view.nbytes, _CHUNK):
                    yield view[start:start + _CHUNK]
            else:
                yield from _c_order_chunks(seg, _CHUNK)

    def write(self, fd: int) -> int:
        """Write the whole file to `fd`, a new empty file; returns its size."""
        total = sum(self.sizes)
        if total < _STREAM:  # then every segment is bytes or a memoryview (see _npy_segments)
            if self._digest is None:
                self._digest = checksums.of(self.checksum, self.segments, "(being written)")
            return write_all(fd, [self._head(self._digest), *self.segments])
        head_size = len(self._head(0))
        os.lseek(fd, head_size, os.SEEK_SET)
        if self._digest is None:
            # CRC-32 is slower than the write: it runs on helper threads meanwhile.
            check = checksums.checker(self.checksum, "(being written)", parallel=self.checksum == checksums.CRC32)
            try:
                for chunk in self._chunks():
                    check.add(chunk)
                    write_all(fd, [chunk])
            finally:
                digest = check.result()
            self._digest = digest
        else:
            for chunk in self._chunks():
                write_all(fd, [chunk])
        head = memoryview(self._head(self._digest))
        written = 0
        while written < head_size:
            written += os.pwrite(fd, head[written:], written)
        return head_size + total


def _check(header: Header, segments: list) -> None:
    """Raise CorruptResultError unless the segments match the header's checksum."""
    large = sum(memoryview(seg).nbytes for seg in segments) >= _STREAM
    if checksums.of(header.checksum, segments, header.path, parallel=large) != header.digest:
        raise CorruptResultError(header.path, "checksum mismatch (the file was altered or torn)")


def write_all(fd: int, buffers: list) -> int:
    """Write every buffer to `fd`, in as few system calls as the kernel allows."""
    if len(buffers) == 2 and type(buffers[1]) is bytes and len(buffers[1]) < _LARGE:
        # The usual small pickled result: one joined write beats building views.
        data = buffers[0] + buffers[1]
        n = os.write(fd, data)
        if n == len(data):
            return n
        buffers = [memoryview(data)[n:]]
        return n + write_all(fd, buffers)
    views = [v for v in (memoryview(b).cast("B") for b in buffers) if v.nbytes]
    total = sum(v.nbytes for v in views)
    while views:
        n = os.writev(fd, views[:1024])
        while n and views:
            if n >= views[0].nbytes:
                n -= views[0].nbytes
                views.pop(0)
            else:
                views[0] = views[0][n:]
                n = 0
    return total


# What our own writer puts first (see Payload._head), read without a JSON parser:
# loading a small result otherwise spends a third of its time parsing metadata it drops.
_FIXED_HEAD = re.compile(rb'\{(?:"crc32":(\d+) *|"checksum":"([^"\\]+)"),"kind":"(\w+)","segments":\[([0-9,]*)\],'
                         rb'"meta":')


class Header:
    """A result's header: what the data needs, and the task's metadata, parsed when asked for.

    `checksum` names the algorithm (checksum.CRC32, checksum.XXH3 or one this taskflow does not
    know), `digest` is its value (None for an unknown algorithm).
    """

    __slots__ = ("checksum", "digest", "kind", "segments", "path", "_meta_json", "_meta")

    def __init__(self, path: str, checksum: str, digest: int | None, kind: str, segments: list[int],
                 meta_json: bytes = b"", meta: dict | None = None):
        self.path = path
        self.checksum = checksum
        self.digest = digest
        self.kind = kind
        self.segments = segments
        self._meta_json = meta_json
        self._meta = meta

    @property
    def meta(self) -> dict:
        if self._meta is None:
            try:
                meta = json.loads(self._meta_json[:-1])  # less the header's own closing brace
            except ValueError:
                meta = None
            if not isinstance(meta, dict):
                raise CorruptResultError(self.path, "header is unreadable")
            self._meta = meta
        return self._meta


def _parse_header(path: str, first: bytes | memoryview, size: int) -> tuple[Header, int]:
    if len(first) < _PREFIX.size:
        raise CorruptResultError(path, f"file is {size} bytes, too short for a header")
    magic, hlen = _PREFIX.unpack_from(first)
    if magic != MAGIC:
        raise CorruptResultError(path, "not a taskflow result (bad magic bytes)")
    end = _PREFIX.size + hlen
    if end > len(first):
        raise CorruptResultError(path, "header is truncated")
    raw = bytes(first[_PREFIX.size:end])
    fixed = _FIXED_HEAD.match(raw)
    try:
        if fixed is not None:
            algorithm, digest = _checksum_field(fixed[2].decode()) if fixed[1] is None \
                else (checksums.CRC32, int(fixed[1]))
            header = Header(path, algorithm, digest, fixed[3].decode(),
                            [int(n) for n in fixed[4].split(b",") if n], raw[fixed.end():])
        else:
            parsed = json.loads(raw)
            algorithm, digest = _checksum_field(str(parsed["checksum"])) if "checksum" in parsed \
                else (checksums.CRC32, int(parsed["crc32"]))
            header = Header(path, algorithm, digest, str(parsed["kind"]), [int(n) for n in parsed["segments"]],
                            meta=parsed["meta"])
        expected = end + sum(header.segments)
    except (ValueError, KeyError, TypeError):
        raise CorruptResultError(path, "header is unreadable") from None
    if expected != size:
        raise CorruptResultError(path, f"length is {size} bytes, header says {expected} (truncated or torn write)")
    return header, end


def _checksum_field(field: str) -> tuple[str, int | None]:
    """(algorithm, digest) of a header's "checksum": "<algorithm>:<hex digits>"."""
    algorithm, digits = field.split(":")  # ValueError (an unreadable header) unless exactly one colon
    if algorithm != checksums.XXH3:
        return algorithm, None  # unknown here: checking it says so, naming the result
    if len(digits) != 16:
        raise ValueError(f"{algorithm} digest of {len(digits)} digits")
    return algorithm, int(digits, 16)


def _read_head(f: BinaryIO, path: str, size: int) -> tuple[bytes, Header, int]:
    """(bytes read so far, header, offset of the first segment), the header whole and checked."""
    first = f.read(_FIRST_READ)
    if len(first) >= _PREFIX.size:
        end = _PREFIX.size + _PREFIX.unpack_from(first)[1]
        if end > len(first):
            first += f.read(end - len(first))
    header, offset = _parse_header(path, first, size)
    return first, header, offset


@reread
def read_meta(path: str) -> dict:
    """The metadata of a result, reading only its header (length checked, not the CRC)."""
    with open(path, "rb") as f:
        return _read_head(f, path, os.fstat(f.fileno()).st_size)[1].meta


def drop_cache(fd: int) -> None:
    """Forget this client's cached pages of an open file, so that reads come from the filesystem.

    A client of NFS or FUSE may keep pages of a file that another client has
    since replaced; a fresh open revalidates its attributes, not those pages.
    """
    if hasattr(os, "posix_fadvise"):
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass  # not every filesystem takes advice; the read is then as fresh as it can be


@reread
def verify(path: str, fresh: bool = False) -> None:
    """Check a result's header, length and CRC without decoding it.

    Raises CorruptResultError when damaged, FileNotFoundError when absent, StoreError when its
    checksum is one this taskflow cannot compute (see checksum.checker).
    Reads in chunks, so checking a large array costs no more memory than a chunk.
    With `fresh`, cached pages are dropped first (see drop_cache).
    """
    with open(path, "rb", buffering=0) as f:
        if fresh:
            drop_cache(f.fileno())
        first, header, offset = _read_head(f, path, os.fstat(f.fileno()).st_size)
        check = checksums.checker(header.checksum, path)
        check.add(memoryview(first)[offset:])
        chunk = memoryview(bytearray(_CHUNK))
        while True:
            n = f.readinto(chunk)
            if not n:
                break
            check.add(chunk[:n])
    if check.result() != header.digest:
        raise CorruptResultError(path, "checksum mismatch (the file was altered or torn)")


def load(path: str, mmap: bool = False, fresh: bool = False) -> tuple[Any, dict]:
    """(value, meta) of the result at `path`.

    Every byte is checked against the CRC unless `mmap` is true: then arrays
    come back memory-mapped and read-only, and only the header and the total
    length are checked, since reading every byte is what mmap avoids.
    """
    value, header = _load(path, mmap, fresh)
    return value, header.meta


def load_value(path: str, mmap: bool = False, fresh: bool = False) -> Any:
    """The value of the result at `path`, checked as by `load`, its metadata left unread.

    With `fresh`, this client's cached pages of the file are dropped first (see drop_cache).
    """
    return _load(path, mmap, fresh)[0]


@reread
def _load(path: str, mmap: bool, fresh: bool = False) -> tuple[Any, Header]:
    fd = os.open(path, os.O_RDONLY)
    try:
        if fresh:
            drop_cache(fd)
        size = os.fstat(fd).st_size
        if mmap and size > 0:
            buf = memoryview(mmap_module.mmap(fd, 0, access=mmap_module.ACCESS_READ))
        elif size > _LARGE:
            with open(fd, "rb", buffering=0, closefd=False) as f:
                loaded = _load_large_array(f, path, size)
            if loaded is not None:
                return loaded
            buf = _read_whole(fd, path, size)
        else:
            buf = _read_whole(fd, path, size)
    finally:
        os.close(fd)
    header, offset = _parse_header(path, buf, size)
    segments = []
    for n in header.segments:
        segments.append(buf[offset:offset + n])
        offset += n
    if not mmap:
        _check(header, segments)
    elif header.checksum not in (checksums.CRC32, checksums.XXH3):
        checksums.checker(header.checksum, path)  # a newer format: say so rather than guess at its data
    try:
        value = _decode(header.kind, segments)
    except CorruptResultError:
        raise
    except Exception as e:
        if header.kind == "npy" or mmap:
            raise CorruptResultError(path, f"cannot decode ({type(e).__name__}: {e})") from None
        raise
    return value, header


def _read_whole(fd: int, path: str, size: int) -> memoryview:
    # A bytearray, so that arrays pickled out of band come back writable.
    buf = memoryview(bytearray(size))
    got = 0
    while got < size:
        n = os.preadv(fd, [buf[got:]], got)
        if not n:
            raise CorruptResultError(path, "file changed size while being read")
        got += n
    return buf


def _read_exactly(f: io.FileIO, into: memoryview, path: str) -> None:
    got = 0
    while got < len(into):
        n = f.readinto(into[got:])
        if not n:
            raise CorruptResultError(path, "file changed size while being read")
        got += n


def _load_large_array(f: io.FileIO, path: str, size: int) -> tuple[Any, Header] | None:
    """A large .npy result read straight into a new array, checked chunk by chunk.

    No intermediate buffer: the array's pages are filled once by the read, and
    each chunk is checked on other cores while the next one is read. None if
    the result is not an array.
    """
    first, header, offset = _read_head(f, path, size)
    if header.kind != "npy" or len(header.segments) != 2:
        return None
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
    except Exception as e:
        raise CorruptResultError(path, f"cannot decode ({type(e).__name__}: {e})") from None
    if count * dtype.itemsize != data_size:
        raise CorruptResultError(path, "array header does not match the data length")
    # CRC-32 is slower than the read: it runs on helper threads meanwhile. XXH3 is not, and checks
    # each chunk right after the read put it in cache.
    check = checksums.checker(header.checksum, path, parallel=header.checksum == checksums.CRC32)
    flat = np.empty(data_size, dtype=np.uint8)
    target = flat.data
    check.add(npy_header)
    have = first[offset + npy_size:]
    target[:len(have)] = have
    pos = len(have)
    try:
        check.add(target[:pos])
        while pos < data_size:
            chunk = target[pos:pos + _CHUNK]
            _read_exactly(f, chunk, path)
            check.add(chunk)
            pos += len(chunk)
    finally:
        digest = check.result()
    if digest != header.digest:
        raise CorruptResultError(path, "checksum mismatch (the file was altered or torn)")
    return flat.view(dtype).reshape(shape, order="F" if fortran else "C"), header


def _decode(kind: str, segments: list) -> Any:
    if kind == "npy":
        import numpy as np

        stream = io.BytesIO(segments[0])
        np.lib.format.read_magic(stream)
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        arr = np.frombuffer(segments[1], dtype=dtype)
        return arr.reshape(shape, order="F" if fortran else "C")
    if kind in ("pickle", "cloudpickle"):
        if kind == "cloudpickle":
            import cloudpickle  # noqa: F401  (registers what its pickles need)
        return pickle.loads(segments[0], buffers=segments[1:])
    raise ValueError(f"unknown result kind {kind!r}")
