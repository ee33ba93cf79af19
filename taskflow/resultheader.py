"""The header of a stored result: magic bytes, its length, then JSON naming the checksum, the kind,
the segment lengths and the task's metadata (the format is described in encoding.py).

Parsed without a JSON parser when it is what taskflow's own writer puts first, since loading a
small result otherwise spends a third of its time parsing metadata it drops.
"""
from __future__ import annotations

import json
import re
import struct

from . import checksum as checksums
from .errors import CorruptResultError

MAGIC = b"TFR1"
PREFIX = struct.Struct("<4sI")

# What our own writer puts first (see Payload._head), read without a JSON parser:
# loading a small result otherwise spends a third of its time parsing metadata it drops.
FIXED_HEAD = re.compile(rb'\{(?:"crc32":(\d+) *|"checksum":"([^"\\]+)"),(?:"mac":"([^"\\]+)",)?'
                         rb'(?P<signed>"kind":"(\w+)","segments":\[([0-9,]*)\],"meta":)')


class Header:
    """A result's header: what the data needs, and the task's metadata, parsed when asked for.

    `checksum` names the algorithm (checksum.CRC32, checksum.XXH3 or one this taskflow does not
    know), `digest` is its value (None for an unknown algorithm). `mac` is the result's signature
    (signing.py), None when unsigned; `signed_part` the header's bytes it covers (None in a header
    not laid out as taskflow writes them, which is then taken as unsigned).
    """

    __slots__ = ("checksum", "digest", "kind", "segments", "path", "_meta_json", "_meta", "mac", "signed_part")

    def __init__(self, path: str, checksum: str, digest: int | None, kind: str, segments: list[int],
                 meta_json: bytes = b"", meta: dict | None = None, mac: str | None = None,
                 signed_part: bytes | None = None):
        self.path = path
        self.mac = mac
        self.signed_part = signed_part
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


def parse(path: str, first: bytes | memoryview, size: int) -> tuple[Header, int]:
    if len(first) < PREFIX.size:
        raise CorruptResultError(path, f"file is {size} bytes, too short for a header")
    magic, hlen = PREFIX.unpack_from(first)
    if magic != MAGIC:
        raise CorruptResultError(path, "not a taskflow result (bad magic bytes)")
    end = PREFIX.size + hlen
    if end > len(first):
        raise CorruptResultError(path, "header is truncated")
    raw = bytes(first[PREFIX.size:end])
    fixed = FIXED_HEAD.match(raw)
    try:
        if fixed is not None:
            algorithm, digest = checksum_field(fixed[2].decode()) if fixed[1] is None \
                else (checksums.CRC32, int(fixed[1]))
            header = Header(path, algorithm, digest, fixed[5].decode(), [int(n) for n in fixed[6].split(b",") if n],
                            raw[fixed.end():], mac=None if fixed[3] is None else fixed[3].decode(),
                            signed_part=raw[fixed.start("signed"):])
        else:
            parsed = json.loads(raw)
            algorithm, digest = checksum_field(str(parsed["checksum"])) if "checksum" in parsed \
                else (checksums.CRC32, int(parsed["crc32"]))
            header = Header(path, algorithm, digest, str(parsed["kind"]), [int(n) for n in parsed["segments"]],
                            meta=parsed["meta"], mac=parsed.get("mac"))
        expected = end + sum(header.segments)
    except (ValueError, KeyError, TypeError):
        raise CorruptResultError(path, "header is unreadable") from None
    if expected != size:
        raise CorruptResultError(path, f"length is {size} bytes, header says {expected} (truncated or torn write)")
    return header, end


def checksum_field(field: str) -> tuple[str, int | None]:
    """(algorithm, digest) of a header's "checksum": "<algorithm>:<hex digits>"."""
    algorithm, digits = field.split(":")  # ValueError (an unreadable header) unless exactly one colon
    if algorithm != checksums.XXH3:
        return algorithm, None  # unknown here: checking it says so, naming the result
    if len(digits) != 16:
        raise ValueError(f"{algorithm} digest of {len(digits)} digits")
    return algorithm, int(digits, 16)
