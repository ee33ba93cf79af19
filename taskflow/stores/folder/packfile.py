"""The bytes of a pack: small results kept together in one file, each in a self-checking record.

    packs/<n>.pack   records, appended by one writer only
    packs/<n>.idx    where each record is: entries appended in batches

Packs are numbered: a writer takes the first free number above the highest
it knows with O_EXCL, so a reader finds a pack made since it last looked by
opening the next number by name, which revalidates a client's caches, where
a listing of packs/ may come from a cache for many seconds (sshfs, NFS).
A number is never given again: a pack merged into another is replaced by
an empty file (a marker), and `taskflow pack` removes only old markers.

A record is a fixed head, then its body:

    b"TFPK" | kind u8 | 3 zero bytes | body length u32 | task hash (32 ASCII) | aux u64 | check u32

`check` is the CRC-32 of the head before it, and for tombstones and seals
of the body too. A result's body is the result exactly as a result file
holds it (encoding.py), checked against its own checksum when it is read;
a tombstone's body names the pack whose record at offset `aux` it removes;
a seal says its writer appends nothing more; a pack's first record, its
opening, names its writer ("<host> <pid>").

Only the writer appends to its pack (O_APPEND, one write per record), so a
reader that meets an incomplete record or a head that fails its check is at
the end of what it may trust: a record still being written, or the torn
tail a killed writer left. Nothing is ever rewritten in place: a result is
removed by a tombstone, and packs are merged (`compact.py`) into a new file
renamed into place before the old ones are removed.

An index entry (`.idx`) is a fixed 52 bytes, itself checked:

    task hash (32 ASCII) | offset u64 | body length u32 | kind u8 | 3 zero bytes | check u32

The index is a cache that spares readers reading a pack through: the pack
is the truth, and a reader reads past the last indexed record to the end.
"""
from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import NamedTuple

MAGIC = b"TFPK"
RESULT, TOMBSTONE, SEAL, OPENING = 1, 2, 3, 4
HASH_SIZE = 32
HEAD = struct.Struct("<4sB3xI32sQ")
CHECK = struct.Struct("<I")
HEAD_SIZE = HEAD.size + CHECK.size
ENTRY = struct.Struct("<32sQIB3x")
ENTRY_SIZE = ENTRY.size + CHECK.size
PACK, INDEX = ".pack", ".idx"


class Record(NamedTuple):
    kind: int
    task_hash: str
    offset: int       # of the record's head in its pack
    length: int       # of the body
    aux: int = 0      # a tombstone's target offset
    target: str = ""  # a tombstone's target pack


def packable(task_hash: str) -> bool:
    """Whether a hash fits a record (taskflow's own hashes do; anything else stays a file)."""
    return len(task_hash) == HASH_SIZE and task_hash.isascii()


def record(kind: int, task_hash: str, body: bytes = b"", aux: int = 0) -> bytes:
    head = HEAD.pack(MAGIC, kind, len(body), task_hash.encode("ascii"), aux)
    crc = zlib.crc32(head)
    if kind != RESULT:
        crc = zlib.crc32(body, crc)
    return head + CHECK.pack(crc) + body


def entry(rec: Record) -> bytes:
    data = ENTRY.pack(rec.task_hash.encode("ascii"), rec.offset, rec.length, rec.kind)
    return data + CHECK.pack(zlib.crc32(data))


def parse_head(data: bytes | memoryview, at: int = 0) -> tuple[int, str, int, int] | None:
    """(kind, hash, body length, aux) of the head at `at`; None unless it is whole and checks."""
    if len(data) - at < HEAD_SIZE:
        return None
    magic, kind, length, raw, aux = HEAD.unpack_from(data, at)
    if magic != MAGIC or kind not in (RESULT, TOMBSTONE, SEAL, OPENING):
        return None
    crc = zlib.crc32(data[at:at + HEAD.size])
    if kind != RESULT:
        body_at = at + HEAD_SIZE
        if len(data) < body_at + length:
            return None
        crc = zlib.crc32(data[body_at:body_at + length], crc)
    if CHECK.unpack_from(data, at + HEAD.size)[0] != crc:
        return None
    try:
        return kind, raw.decode("ascii"), length, aux
    except UnicodeDecodeError:
        return None


def scan(data: bytes | memoryview, base: int) -> tuple[list[Record], int]:
    """The whole, checked records in `data` (read from offset `base` of a pack) and the offset after
    the last of them: where the next read starts. An incomplete or failing record ends the scan."""
    found = []
    at = 0
    while True:
        head = parse_head(data, at)
        if head is None:
            break
        kind, task_hash, length, aux = head
        end = at + HEAD_SIZE + length
        if end > len(data):
            break  # still being written, or torn
        target = bytes(data[at + HEAD_SIZE:end]).decode("utf-8", "replace") if kind in (TOMBSTONE, OPENING) else ""
        found.append(Record(kind, task_hash, base + at, length, aux, target))
        at = end
    return found, base + at


def entries(data: bytes | memoryview) -> Iterator[tuple[int, str, int, int]]:
    """(kind, hash, offset, body length) of each checked index entry, up to the first that fails."""
    for at in range(0, len(data) - len(data) % ENTRY_SIZE, ENTRY_SIZE):
        if CHECK.unpack_from(data, at + ENTRY.size)[0] != zlib.crc32(data[at:at + ENTRY.size]):
            return
        raw, offset, length, kind = ENTRY.unpack_from(data, at)
        try:
            yield kind, raw.decode("ascii"), offset, length
        except UnicodeDecodeError:
            return


def pack_name(number: int) -> str:
    return f"{number:08d}{PACK}"


def number_of(name: str) -> int | None:
    """The number of a pack's file name; None for a name not of this form."""
    stem = name[:-len(PACK)]
    return int(stem) if name.endswith(PACK) and stem.isdigit() else None
