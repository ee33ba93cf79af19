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
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from . import checksum as checksums
from .segments import STREAM as _STREAM, c_order_chunks, decode_segments, is_plain_array, npy_segments, pickle_segments
from .resultheader import MAGIC, PREFIX as _PREFIX, Header, parse as _parse_header
from .bigread import load_array, read_checked
from .stale import drop_cache, reread
from .errors import CorruptResultError

if TYPE_CHECKING:  # signing.py is imported where a key is used: hashlib and threads cost every start
    from .signing import Seal

# Headers are small; read this much first so most results need one read call.
_FIRST_READ = 64 * 1024
# Above this size an array result is read straight into place, in chunks.
_LARGE = 1 << 20
# Large data is read and written, and checksummed, in chunks of this size: small enough to stay
# in a core's cache between the checksum and the copy (see bench/checksum.py chunks).
_CHUNK = 1 << 20
# Called with a result file's path and the stat of the descriptor it is read from, before its
# pickle is loaded: raises to refuse it (see stores/folder/trust.py).
FileGuard = Callable[[str, os.stat_result], None]
# One encoder for every header: json.dumps with options builds a new one per call.
_HEADER_JSON = json.JSONEncoder(separators=(",", ":"))


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
        self.kind, self.segments = npy_segments(value) if is_plain_array(value) else pickle_segments(value)
        self.sizes = [len(seg) if isinstance(seg, bytes) else seg.nbytes for seg in self.segments]
        self.meta = meta
        self.checksum = checksum or checksums.preferred()
        self._digest: int | None = None
        self.seal: Seal | None = None
        self._mac = ""
        self._rest_bytes: bytes | None = None

    def sign(self, seal: Seal | None) -> None:
        """Sign the result with `seal` (a store's key and the task's hash) when written; None: unsigned."""
        if seal is not self.seal:
            self.seal = seal
            self._digest = None  # computed again along with the MAC
            self._mac = ""

    def _rest(self) -> bytes:
        # What follows the checksum and the MAC: what the MAC covers of the header (signing.py).
        if self._rest_bytes is None:
            self._rest_bytes = _HEADER_JSON.encode({"kind": self.kind, "segments": self.sizes, "meta": self.meta}
                                                   )[1:].encode()
        return self._rest_bytes

    def _head(self, digest: int, mac: str = "") -> bytes:
        # The checksum first and of fixed width, so the header's length is known before the checksum;
        # so is the MAC of a signed result. CRC-32 results keep the header older taskflow writes and reads.
        rest = self._rest()
        signed = f'"mac":"{mac}",'.encode() if self.seal is not None else b""
        if self.checksum == checksums.CRC32:
            header = f'{{"crc32":{digest:<10d},'.encode() + signed + rest
        else:
            header = f'{{"checksum":"{self.checksum}:{digest:016x}",'.encode() + signed + rest
        return _PREFIX.pack(MAGIC, len(header)) + header

    def _chunks(self) -> Iterator[memoryview]:
        for seg in self.segments:
            if isinstance(seg, (bytes, memoryview)):
                view = memoryview(seg)
                for start in range(0, view.nbytes, _CHUNK):
                    yield view[start:start + _CHUNK]
            else:
                yield from c_order_chunks(seg, _CHUNK)

    def pieces(self) -> tuple[bytes, Iterator[memoryview], int]:
        """(header, the data in chunks, size of the whole): the result for a store that sends it
        elsewhere than into a file. The checksum is computed first, in one pass over the data, so
        that the header can go first."""
        if self._digest is None:
            check = checksums.checker(self.checksum, "(being sent)", parallel=self.checksum == checksums.CRC32)
            mac = None if self.seal is None else self.seal.stream(self._rest(), threaded=sum(self.sizes) >= _STREAM)
            try:
                for chunk in self._chunks():
                    check.add(chunk)
                    if mac is not None:
                        mac.add(chunk)
            finally:
                digest = check.result()
                self._mac = "" if mac is None else mac.field()
            self._digest = digest
        head = self._head(self._digest, self._mac)
        return head, self._chunks(), len(head) + sum(self.sizes)

    def write(self, fd: int) -> int:
        """Write the whole file to `fd`, a new empty file; returns its size."""
        total = sum(self.sizes)
        if total < _STREAM:  # then every segment is bytes or a memoryview (see npy_segments)
            if self._digest is None:
                self._digest = checksums.of(self.checksum, self.segments, "(being written)")
                if self.seal is not None:
                    self._mac = self.seal.field(self._rest(), self.segments)
            return write_all(fd, [self._head(self._digest, self._mac), *self.segments])
        head_size = len(self._head(0, "" if self.seal is None else self.seal.placeholder()))
        os.lseek(fd, head_size, os.SEEK_SET)
        if self._digest is None:
            # CRC-32 is slower than the write: it runs on helper threads meanwhile; so does the MAC.
            check = checksums.checker(self.checksum, "(being written)", parallel=self.checksum == checksums.CRC32)
            mac = None if self.seal is None else self.seal.stream(self._rest(), threaded=True)
            try:
                for chunk in self._chunks():
                    check.add(chunk)
                    if mac is not None:
                        mac.add(chunk)
                    write_all(fd, [chunk])
            finally:
                digest = check.result()
                self._mac = "" if mac is None else mac.field()
            self._digest = digest
        else:
            for chunk in self._chunks():
                write_all(fd, [chunk])
        head = memoryview(self._head(self._digest, self._mac))
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


@reread
def verify(path: str, fresh: bool = False, seal: Seal | None = None) -> None:
    """Check a result's header, length and CRC without decoding it, and its signature with `seal`.

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
        mac = None if seal is None else seal.verifier(path, header.mac, header.signed_part)
        check.add(memoryview(first)[offset:])
        if mac is not None:
            mac.add(memoryview(first)[offset:])
        while True:
            chunk = f.read(_CHUNK)  # a new buffer each time: the MAC may still be reading the last one
            if not chunk:
                break
            check.add(chunk)
            if mac is not None:
                mac.add(chunk)
    if check.result() != header.digest:
        raise CorruptResultError(path, "checksum mismatch (the file was altered or torn)")
    if mac is not None:
        mac.check()


def load_value(path: str, mmap: bool = False, fresh: bool = False, guard: FileGuard | None = None,
               seal: Seal | None = None) -> Any:
    """The value of the result at `path`, its metadata left unread (`read_meta` reads it).

    Every byte is checked against the checksum unless `mmap` is true: then arrays
    come back memory-mapped and read-only, and only the header and the total
    length are checked, since reading every byte is what mmap avoids.

    With `fresh`, this client's cached pages of the file are dropped first (see drop_cache).

    `guard(path, stat)`, given the stat of the descriptor read from, is called before a pickled
    value is unpickled (not for an array, whose loading runs no code) and raises to refuse it.

    With `seal`, the result must be signed with its key for its task (signing.py), or
    UnsignedResultError: before anything of it is decoded. That reads every byte, also with
    `mmap` (the array then still maps the file; the mapping holds the file that was checked).
    """
    return _load(path, mmap, fresh, guard, seal)[0]


@reread
def _load(path: str, mmap: bool, fresh: bool = False, guard: FileGuard | None = None, seal: Seal | None = None
          ) -> tuple[Any, Header]:
    fd = os.open(path, os.O_RDONLY)
    try:
        if fresh:
            drop_cache(fd)
        st = os.fstat(fd)
        size = st.st_size
        before = None if guard is None else (lambda: guard(path, st))
        if mmap and size > 0:
            buf = memoryview(mmap_module.mmap(fd, 0, access=mmap_module.ACCESS_READ))
        elif size > _LARGE:
            with open(fd, "rb", buffering=0, closefd=False) as f:
                return _load_large(f, path, size, before, seal)
        else:
            buf = _read_whole(fd, path, size)
    finally:
        os.close(fd)
    return decode(path, buf, check=not mmap, guard=before, seal=seal)


def decode(name: str, buf: memoryview, check: bool = True, guard: Callable[[], None] | None = None,
           seal: Seal | None = None) -> tuple[Any, Header]:
    """(value, header) of a whole result held in memory (a file's bytes; a result from a server);
    `name` says where it came from in errors. With `check` every byte is checked against the checksum
    its header names. `guard()` is called before a pickled value is unpickled, to refuse it. With
    `seal`, its signature is checked first (see load_value)."""
    header, offset = _parse_header(name, buf, len(buf))
    return _decode(name, buf, header, offset, check=check, guard=guard, seal=seal)


def _decode(name: str, buf: memoryview, header: Header, offset: int, check: bool, checked: bool = False,
            guard: Callable[[], None] | None = None, seal: Seal | None = None) -> tuple[Any, Header]:
    """`decode` of a parsed header; `checked`: every byte was checked already, while it was read
    (its signature too)."""
    segments = []
    for n in header.segments:
        segments.append(buf[offset:offset + n])
        offset += n
    if check and not checked:
        _check(header, segments)
    elif header.checksum not in (checksums.CRC32, checksums.XXH3):
        checksums.checker(header.checksum, name)  # a newer format: say so rather than guess at its data
    if seal is not None and not checked:
        seal.check(name, header.mac, header.signed_part, segments)
    if guard is not None and header.kind != "npy":
        guard()
    try:
        value = decode_segments(header.kind, segments)
    except CorruptResultError:
        raise
    except Exception as e:
        if header.kind == "npy" or not check:
            raise CorruptResultError(name, f"cannot decode ({type(e).__name__}: {e})") from None
        raise
    return value, header


def check(name: str, buf: memoryview, seal: Seal | None = None) -> Header:
    """The header of a whole result held in memory, after checking its length and checksum (and its
    signature, with `seal`)."""
    header, offset = _parse_header(name, buf, len(buf))
    _check(header, [buf[offset:]])
    if seal is not None:
        seal.check(name, header.mac, header.signed_part, [buf[offset:]])
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


def _load_large(f: io.FileIO, path: str, size: int, guard: Callable[[], None] | None, seal: Seal | None
                ) -> tuple[Any, Header]:
    """A large result, read and checked in one pass (see bigread.read_checked).

    An array goes straight into a new array (bigread.load_array). Anything else is read into one
    buffer that its pickle's large arrays then keep as their memory.
    """
    first, header, offset = _read_head(f, path, size)
    # CRC-32 is slower than the read: it runs on helper threads meanwhile. XXH3 is not, and checks
    # each chunk right after the read put it in cache.
    check = checksums.checker(header.checksum, path, parallel=header.checksum == checksums.CRC32)
    if seal is not None:
        from .signing import WithMac

        check = WithMac(check, seal.verifier(path, header.mac, header.signed_part, threaded=True))
    if header.kind == "npy" and len(header.segments) == 2:
        value, header = load_array(f, path, first, header, offset, check)
        if seal is not None:
            check.mac.check()  # a forged array runs no code, but must not be handed out either
        return value, header
    # A bytearray, so that arrays pickled out of band come back writable.
    buf = memoryview(bytearray(size))
    buf[:len(first)] = first
    try:
        check.add(buf[offset:len(first)])
        read_checked(f, buf[len(first):], check, path)
    finally:
        digest = check.result()
    if digest != header.digest:
        raise CorruptResultError(path, "checksum mismatch (the file was altered or torn)")
    if seal is not None:
        check.mac.check()
    return _decode(path, buf, header, offset, check=True, checked=True, guard=guard)

