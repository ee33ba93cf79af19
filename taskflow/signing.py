"""Signed results: a keyed MAC over every result and failure record, so that what was written or
changed by someone without the store's key is refused (README, "Signed results"; SECURITY.md).

The key is a file only its owner can read (`--key-file`, TASKFLOW_KEY_FILE, `key_file` of
`[tool.taskflow.store]`). A result's MAC is HMAC-SHA256 over the task's hash, the result's header
after its checksum (kind, segment lengths, metadata) and every byte of its data: a signed result
copied over another task's result is refused like a forged one. It is kept in the header beside
the checksum, as "hmac-sha256:<key id>:<64 hex digits>", the key id naming the key in messages
(the first 8 hex digits of a hash of the key, which says nothing of the key itself).

Why HMAC-SHA256: in the standard library, and with the SHA extensions of current CPUs it runs at
1.8 GB/s on one core, faster than keyed BLAKE2b (1.2 GB/s; README has the figures). Large data is
hashed on a helper thread while the calling thread reads or writes it (hashlib lets go of the GIL).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import queue
import stat
import threading
from collections.abc import Sequence
from typing import Any

from .errors import KeyFileError, UnsignedResultError

log = logging.getLogger(__name__)

MAC = "hmac-sha256"
FIELD_WIDTH = len(MAC) + 1 + 8 + 1 + 64
_RESULT = b"taskflow result\0"
_RECORD = b"taskflow record\0"
_CLAIM = b"taskflow claim\0"
# A helper thread hashes data from this size up: below, handing it over costs more than it saves.
_THREADED = 4 << 20
# The least a key file may hold; `taskflow store new-key` writes 32 random bytes.
_SHORTEST = 16


class Key:
    """A store's signing key."""

    __slots__ = ("_secret", "path", "id")

    def __init__(self, secret: bytes, path: str):
        self._secret = secret
        self.path = path
        self.id = hashlib.sha256(b"taskflow key id\0" + secret).hexdigest()[:8]

    def __repr__(self) -> str:
        return f"Key(id={self.id}, path={self.path!r})"  # never the secret

    def __reduce__(self) -> tuple:
        raise TypeError("a signing key is not sent to other processes: they read its file")

    def seal(self, task_hash: str) -> Seal:
        return Seal(self, task_hash)

    def _field(self, digest: bytes) -> str:
        return f"{MAC}:{self.id}:{digest.hex()}"

    def sign_record(self, kind: str, task_hash: str, record: dict) -> dict:
        """`record` with its MAC (the "mac" entry) over its other entries, the kind and the task."""
        body = {k: v for k, v in record.items() if k != "mac"}
        return dict(body, mac=self._field(self._record_digest(kind, task_hash, body)))

    def _record_digest(self, kind: str, task_hash: str, body: dict) -> bytes:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
        return hmac.digest(self._secret, b"".join([_RECORD, kind.encode(), b"\0", task_hash.encode(), b"\0", text]),
                           "sha256")

    def record_problem(self, kind: str, task_hash: str, record: dict) -> str | None:
        """Why `record` is not signed with this key, or None when it is."""
        problem = self._field_problem(record.get("mac"))
        if problem is not None:
            return problem
        body = {k: v for k, v in record.items() if k != "mac"}
        if not hmac.compare_digest(record["mac"], self._field(self._record_digest(kind, task_hash, body))):
            return "its signature does not match (written or changed without the store's key)"
        return None

    def sign_claim(self, content: bytes, skip: int) -> bytes:
        """A claim file's bytes (a JSON object) with its MAC as their last entry, over all but the
        first `skip` bytes (the renewal counter, rewritten in place while the claim is held)."""
        body = content.rstrip()[:-1]  # less the closing brace
        mac = self._field(hmac.digest(self._secret, _CLAIM + body[skip:], "sha256"))
        return body + f', "mac": "{mac}"}}'.encode()

    def claim_problem(self, raw: bytes, skip: int) -> str | None:
        """Why the claim file's bytes `raw` are not signed with this key, or None when they are."""
        at = raw.rfind(b', "mac": "')
        field = raw[at + 10:].rstrip().rstrip(b"}").rstrip(b'"').decode("ascii", "replace") if at >= 0 else None
        problem = self._field_problem(field)
        if problem is None:
            expected = self._field(hmac.digest(self._secret, _CLAIM + raw[skip:at], "sha256"))
            if not hmac.compare_digest(expected, str(field)):
                problem = "its signature does not match (written or changed without the store's key)"
        return problem

    def _field_problem(self, field: Any) -> str | None:
        if not field:
            return f"not signed, and this store's results must be signed with key {self.id}"
        parts = str(field).split(":")
        if len(parts) != 3 or parts[0] != MAC:
            return f"signed in a way taskflow does not know ({str(field)[:24]!r})"
        if parts[1] != self.id:
            return f"signed with key {parts[1]}, not with this store's key {self.id}"
        return None


def _mac_of(key: Key, task_hash: str, signed_part: bytes) -> Any:
    return hmac.new(key._secret, _RESULT + task_hash.encode() + b"\0" + signed_part, "sha256")


class Seal:
    """What one task's result must be signed with: a key and the task's hash."""

    __slots__ = ("key", "task_hash")

    def __init__(self, key: Key, task_hash: str):
        self.key = key
        self.task_hash = task_hash

    def field(self, signed_part: bytes, segments: Sequence) -> str:
        """The header's "mac" of a small result: `signed_part` is its header after the checksum."""
        mac = _mac_of(self.key, self.task_hash, signed_part)
        for seg in segments:
            mac.update(seg)
        return self.key._field(mac.digest())

    def placeholder(self) -> str:
        return "0" * FIELD_WIDTH

    def stream(self, signed_part: bytes, threaded: bool = False) -> MacStream:
        """A MAC fed the data in order (`add`), for a result too large to hold in one buffer."""
        return MacStream(self.key, _mac_of(self.key, self.task_hash, signed_part), threaded)

    def verifier(self, name: str, field: str | None, signed_part: bytes | None, threaded: bool = False
                 ) -> MacStream:
        """A MAC to hand a stored result's data to (`add`), then `check`: UnsignedResultError naming
        `name` unless it matches `field`. Refused at once when `field` names no MAC of this key."""
        problem = self.key._field_problem(field)
        if problem is None and signed_part is None:
            problem = "its header is not one taskflow signs"
        if problem is not None:
            raise UnsignedResultError(name, problem)
        assert signed_part is not None and field is not None
        stream = self.stream(signed_part, threaded)
        stream.expected = field
        stream.name = name
        return stream

    def check(self, name: str, field: str | None, signed_part: bytes | None, segments: Sequence) -> None:
        """`verifier` fed every segment of a result held in memory, checked."""
        stream = self.verifier(name, field, signed_part, threaded=sum(memoryview(s).nbytes for s in segments)
                               >= _THREADED)
        for seg in segments:
            stream.add(seg)
        stream.check()


class MacStream:
    """A result's MAC, fed its data chunk by chunk; on a helper thread with `threaded`, so that what
    was handed over must stay unchanged until `field` or `check`."""

    def __init__(self, key: Key, mac: Any, threaded: bool):
        self._key = key
        self._mac = mac
        self.expected = ""
        self.name = ""
        self._todo: queue.SimpleQueue | None = None
        self._helper: threading.Thread | None = None
        if threaded:
            self._todo = queue.SimpleQueue()
            self._helper = threading.Thread(target=self._work, name="taskflow-mac", daemon=True)
            self._helper.start()

    def _work(self) -> None:
        assert self._todo is not None
        while (chunk := self._todo.get()) is not None:
            self._mac.update(chunk)

    def add(self, chunk: Any) -> None:
        if self._todo is None:
            self._mac.update(chunk)
        else:
            self._todo.put(chunk)

    def field(self) -> str:
        if self._helper is not None and self._todo is not None:
            self._todo.put(None)
            self._helper.join()
            self._helper = self._todo = None
        return self._key._field(self._mac.digest())

    def check(self) -> None:
        if not hmac.compare_digest(self.field(), self.expected):
            raise UnsignedResultError(self.name, "its signature does not match (written or changed without the "
                                                 "store's key, or another task's result)")


class WithMac:
    """A checksum's checker that feeds a signature's MAC (`mac`) the same data."""

    def __init__(self, check: Any, mac: Any):
        self.check = check
        self.mac = mac

    def add(self, buffer: Any) -> None:
        self.check.add(buffer)
        self.mac.add(buffer)

    def result(self) -> int:
        self.mac.field()  # lets the MAC's helper thread go, also when the read failed
        return self.check.result()


def read_key(path: str) -> Key:
    """The key in the file at `path`, which only its owner may read; KeyFileError (one line naming the
    file) otherwise."""
    path = os.path.abspath(os.path.expanduser(path))
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as e:
        raise KeyFileError(f"key file {path}: cannot read it: {e.strerror}", path=path) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"key file {path}: not a regular file", path=path)
        if st.st_uid != os.geteuid():
            raise KeyFileError(f"key file {path}: owned by uid {st.st_uid}, not by you: a key is a file of your own",
                               path=path)
        if st.st_mode & 0o077:
            raise KeyFileError(f"key file {path}: mode {stat.S_IMODE(st.st_mode):04o} lets others read or change it: "
                               f"chmod 600 {path}", path=path)
        secret = os.read(fd, 1 << 16).strip()
    finally:
        os.close(fd)
    if len(secret) < _SHORTEST:
        raise KeyFileError(f"key file {path}: holds {len(secret)} bytes, fewer than {_SHORTEST}: "
                           "`taskflow store new-key FILE` makes one", path=path)
    return Key(secret, path)


def new_key(path: str) -> Key:
    """Make a key file at `path` (mode 0600, never over an existing file) and return its key."""
    path = os.path.abspath(os.path.expanduser(path))
    secret = os.urandom(32).hex().encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        raise KeyFileError(f"key file {path}: exists already; a new key is never written over one "
                           "(results signed with it would all be refused)", path=path) from None
    except OSError as e:
        raise KeyFileError(f"key file {path}: cannot make it: {e.strerror}", path=path) from None
    try:
        os.fchmod(fd, 0o600)  # whatever the umask took, and nothing more
        os.write(fd, secret + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    return Key(secret, path)


_refused_records: set[tuple[str, str]] = set()


def checked_record(key: Key | None, kind: str, task_hash: str, record: dict | None, where: str) -> dict | None:
    """`record` (a failure record, read from `where`) when it is signed with `key` or there is no key;
    else None, as if there were no record, and a warning naming it (once per process)."""
    if key is None or record is None:
        return record
    problem = key.record_problem(kind, task_hash, record)
    if problem is None:
        return record
    if (where, problem) not in _refused_records:
        _refused_records.add((where, problem))
        log.warning("%s record %s ignored: %s", kind, where, problem)
    return None
