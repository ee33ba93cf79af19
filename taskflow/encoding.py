"""The on-disk format of one result: a checked header, then raw segments.

    b"TFR1" | u32 header length | JSON header | segment 0 | segment 1 | ...

The header lists the segment lengths, a CRC-32 over all segments, and the
task's metadata (name, timing, host...). A numpy array (non-object dtype) is
stored as a .npy header segment plus its raw data, so it is written straight
from the array's memory and can be memory-mapped back. Anything else is
pickled with protocol 5, its large buffers (arrays nested in containers)
written out of band as their own segments; cloudpickle takes over when plain
pickle cannot (lambdas, closures in results).

Every read is checked against the CRC, so a file torn by a crash or truncated
by a full disk is caught. CRC-32 runs at about 2 GB/s per core, slower than
copying to or from the page cache, so large results are checked on several
cores while they are written or read (see checksum.py).
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
import zlib
from typing import Any, BinaryIO

from . import checksum
from .stale import reread
from .errors import CorruptResultError

MAGIC = b"TFR1"
_PREFIX = struct.Struct("<4sI")
# Headers are small; read this much first so most results need one read call.
_FIRST_READ = 64 * 1024
# Above this size an array result is read straight into place, in chunks that stay in cache.
_LARGE = 1 << 20
_CHUNK = 4 << 20
# From this size on, the CRC is computed while the data is written.
_OVERLAP = 4 << 20
# One encoder for every header: json.dumps with options builds a new one per call.
_HEADER_JSON = json.JSONEncoder(separators=(",", ":"))


def _is_plain_array(value: Any) -> bool:
    np = sys.modules.get("numpy")
    return (np is not None and type(value) in (np.ndarray, np.memmap)
            and not value.dtype.hasobject)


def _npy_segments(arr) -> tuple[str, list]:
    import numpy as np

    if not (arr.flags.c_contiguous or arr.flags.f_contiguous):
        arr = np.ascontiguousarray(arr)
    header = np.lib.format.header_data_from_array_1_0(arr)
    buf = io.BytesIO()
    np.lib.format.write_array_header_2_0(buf, header)
    data = arr.T if header["fortran_order"] else arr
    return "npy", [buf.getvalue(), np.ascontiguousarray(data).data.cast("B")]


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

    Large data is written while other threads compute its CRC-32 (zlib lets
    go of the GIL), and the header, whose length does not depend on the CRC,
    goes in last at the start of the file: the file is not in place until it
    is whole anyway. That hides most of the checksum's cost behind the write.
    """

    def __init__(self, value: Any, meta: dict):
        self.kind, self.segments = _npy_segments(value) if _is_plain_array(value) else _pickle_segments(value)
        self.sizes = [len(seg) if isinstance(seg, bytes) else seg.nbytes for seg in self.segments]
        self.meta = meta
        self._crc: int | None = None

    def _head(self, crc: int) -> bytes:
        # The CRC first and padded to its widest, so the header's length is known before the CRC.
        header = (f'{{"crc32":{crc:<10d},'.encode()
                  + _HEADER_JSON.encode({"kind": self.kind, "segments": self.sizes, "meta": self.meta})[1:].encode())
        return _PREFIX.pack(MAGIC, len(header)) + header

    def crc(self) -> int:
        if self._crc is None:
            self._crc = _crc_of(self.segments)
        return self._crc

    def buffers(self) -> list:
        """The whole file as buffers, in order."""
        return [self._head(self.crc()), *self.segments]

    def write(self, fd: int) -> int:
        """Write the whole file to `fd`, a new empty file; returns its size."""
        if self._crc is not None or sum(self.sizes) < _OVERLAP:
            return write_all(fd, self.buffers())
        checker = checksum.Parallel()
        for seg in self.segments:
            checker.add(seg)
        head_size = len(self._head(0))
        try:
            os.lseek(fd, head_size, os.SEEK_SET)
            size = write_all(fd, self.segments)
        finally:
            self._crc = checker.result()
        head = memoryview(self._head(self._crc))
        written = 0
        while written < head_size:
            written += os.pwrite(fd, head[written:], written)
        return head_size + size


def _crc_of(segments: list) -> int:
    """CRC-32 of the segments one after another; on several cores when they are large."""
    if sum(memoryview(seg).nbytes for seg in segments) >= _OVERLAP:
        return checksum.crc32(segments)
    crc = 0
    for seg in segments:
        crc = zlib.crc32(seg, crc)
    return crc


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
_FIXED_HEAD = re.compile(rb'\{"crc32":(\d+) *,"kind":"(\w+)","segments":\[([0-9,]*)\],"meta":')


class Header:
    """A result's header: what the data needs, and the task's metadata, parsed when asked for."""

    __slots__ = ("crc32", "kind", "segments", "path", "_meta_json", "_meta")

    def __init__(self, path: str, crc32: int, kind: str, segments: list[int], meta_json: bytes = b"",
                 meta: dict | None = None):
        self.path = path
        self.crc32 = crc32
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
            header = Header(path, int(fixed[1]), fixed[2].decode(),
                            [int(n) for n in fixed[3].split(b",") if n], raw[fixed.end():])
        else:
            parsed = json.loads(raw)
            header = Header(path, int(parsed["crc32"]), str(parsed["kind"]), [int(n) for n in parsed["segments"]],
                            meta=parsed["meta"])
        expected = end + sum(header.segments)
    except (ValueError, KeyError, TypeError):
        raise CorruptResultError(path, "header is unreadable") from None
    if expected != size:
        raise CorruptResultError(path, f"length is {size} bytes, header says {expected} (truncated or torn write)")
    return header, end


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

    Raises CorruptResultError when damaged, FileNotFoundError when absent.
    Reads in chunks, so checking a large array costs no more memory than a chunk.
    With `fresh`, cached pages are dropped first (see drop_cache).
    """
    with open(path, "rb", buffering=0) as f:
        if fresh:
            drop_cache(f.fileno())
        first, header, offset = _read_head(f, path, os.fstat(f.fileno()).st_size)
        crc = zlib.crc32(memoryview(first)[offset:])
        chunk = memoryview(bytearray(_CHUNK))
        while True:
            n = f.readinto(chunk)
            if not n:
                break
            crc = zlib.crc32(chunk[:n], crc)
    if crc != header.crc32:
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
    return decode(path, buf, check=not mmap)


def decode(name: str, buf: memoryview, check: bool = True) -> tuple[Any, Header]:
    """(value, header) of a whole result held in memory (a file's bytes; a result from a server);
    `name` says where it came from in errors. With `check` every byte is checked against the CRC."""
    header, offset = _parse_header(name, buf, len(buf))
    segments = []
    for n in header.segments:
        segments.append(buf[offset:offset + n])
        offset += n
    if check and _crc_of(segments) != header.crc32:
        raise CorruptResultError(name, "checksum mismatch (the file was altered or torn)")
    try:
        value = _decode(header.kind, segments)
    except CorruptResultError:
        raise
    except Exception as e:
        if header.kind == "npy" or not check:
            raise CorruptResultError(name, f"cannot decode ({type(e).__name__}: {e})") from None
        raise
    return value, header


def check(name: str, buf: memoryview) -> Header:
    """The header of a whole result held in memory, after checking its length and CRC."""
    header, offset = _parse_header(name, buf, len(buf))
    if zlib.crc32(buf[offset:]) != header.crc32:
        raise CorruptResultError(name, "checksum mismatch (the file was altered or torn)")
    return header


def parse_header(name: str, head: bytes | memoryview, size: int) -> Header:
    """The header at the start of `head`, for a result of `size` bytes in all (its length is checked)."""
    return _parse_header(name, head, size)[0]


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
    flat = np.empty(data_size, dtype=np.uint8)
    target = flat.data
    checker = checksum.Parallel()
    checker.add(npy_header)
    have = first[offset + npy_size:]
    target[:len(have)] = have
    pos = len(have)
    try:
        checker.add(target[:pos])
        while pos < data_size:
            chunk = target[pos:pos + _CHUNK]
            _read_exactly(f, chunk, path)
            checker.add(chunk)  # checked on other cores while the next chunk is read
            pos += len(chunk)
    finally:
        crc = checker.result()
    if crc != header.crc32:
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
