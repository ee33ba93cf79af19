"""Re-signing a store with a new key (`taskflow store sign`): every result and failure record that
the old key signed (or, asked for, that nobody signed) is signed again with the store's key.

A result is re-signed without decoding it: its data and the part of its header a MAC covers stay
as they are, byte for byte, and only the MAC in its header changes (signing.py). Nothing is
unpickled, so re-signing a store runs none of its code, and a result the old key did not sign is
left as it is and counted, never signed.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from . import encoding
from .errors import CorruptResultError, UsageError
from .resultheader import MAGIC, PREFIX, parse
from .signing import Key, Seal
from .stores.base import Store

log = logging.getLogger(__name__)

_MAC_FIELD = re.compile(rb'"mac":"[^"\\]*",$')


class Resigned:
    """A stored result as it was read, to be saved again with another MAC: what a store's
    `save_payload` asks of an `encoding.Payload`."""

    def __init__(self, name: str, raw: memoryview):
        header, offset = parse(name, raw, len(raw))
        encoding.check(name, raw)  # its checksum: a damaged result is not signed again
        if header.signed_part is None:
            raise CorruptResultError(name, "its header is not laid out as taskflow signs results")
        self.header = header
        self.kind = header.kind
        self.sizes = header.segments
        self.meta = header.meta
        self._data = raw[offset:]
        head = bytes(raw[PREFIX.size:offset])
        self._before = _MAC_FIELD.sub(b"", head[:len(head) - len(header.signed_part)])
        self._head = b""

    def signed_with(self, seal: Seal) -> bool:
        """Whether the result is signed with `seal` (its key, for its task)."""
        try:
            seal.check(self.header.path, self.header.mac, self.header.signed_part, [self._data])
        except CorruptResultError:
            return False
        return True

    def sign(self, seal: Seal | None) -> None:
        if seal is None:
            raise UsageError("re-signing needs the store's new key: --key-file or TASKFLOW_KEY_FILE")
        assert self.header.signed_part is not None
        mac = seal.field(self.header.signed_part, [self._data]).encode()
        header = self._before + b'"mac":"' + mac + b'",' + self.header.signed_part
        self._head = PREFIX.pack(MAGIC, len(header)) + header

    def pieces(self) -> tuple[bytes, Iterator[memoryview], int]:
        return self._head, iter([self._data]), len(self._head) + len(self._data)

    def write(self, fd: int) -> int:
        return encoding.write_all(fd, [self._head, self._data])


@dataclass
class Signed:
    """What `sign_store` did: counts, and the results it left as they were."""

    results: int = 0
    failures: int = 0
    already: int = 0
    refused: list[str] = field(default_factory=list)


def sign_store(store: Store, old_key: Key | None, unsigned: bool = False) -> Signed:
    """Sign every result and failure record of `store` with its key (`store.key`) that `old_key`
    signed, or with `unsigned` that carries no signature. Results signed already are left alone;
    others (another key's, forged, damaged) are listed in `refused` and left as they are."""
    key = store.key
    if key is None:
        raise UsageError(f"{store}: no key to sign with: pass --key-file (or set TASKFLOW_KEY_FILE)")
    if old_key is None and not unsigned:
        raise UsageError("say whose signatures to replace: --old-key-file OLD, or --unsigned to sign results "
                         "no key signed (a store made before it had a key)")
    done = Signed()
    for task_hash in sorted(store.finished_hashes()):
        try:
            stored = Resigned(store.location("result", task_hash), store.raw_result(task_hash))
        except FileNotFoundError:
            continue
        except CorruptResultError as e:
            done.refused.append(str(e))
            continue
        if stored.signed_with(key.seal(task_hash)):
            done.already += 1
        elif (old_key is not None and stored.signed_with(old_key.seal(task_hash))
              or unsigned and stored.header.mac is None):
            store.replace_result(task_hash, stored)  # type: ignore[arg-type]
            done.results += 1
        else:
            done.refused.append(f"{stored.header.path}: signed neither with the old key nor with the new one")
    done.failures = _sign_failures(store, old_key)
    return done


def _sign_failures(store: Store, old_key: Key | None) -> int:
    # Read through the store opened with the old key (or none), written through the store.
    old = type(store).from_value(store.url, fsync=store.fsync)
    old.taskfile = store.taskfile
    old.use_key(old_key)
    signed = 0
    for task_hash in sorted(old.failed_hashes() - store.failed_hashes()):
        record = old.load_failure(task_hash)
        if record is not None:
            store.save_failure(task_hash, {k: v for k, v in record.items() if k != "mac"})
            signed += 1
    return signed
