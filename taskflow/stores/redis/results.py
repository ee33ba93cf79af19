"""Results in a Redis store: the bytes of a folder store's result file, in chunks.

A result is the same encoded file as in a folder store (encoding.py: a
header with the CRC-32, then the data), held in one Redis hash:

    P:r:<hash>   h -> the header (metadata without the data, for `report` and `show`)
                 s -> the size of the whole file, in bytes
                 0, 1, ... -> the file's bytes, CHUNK bytes each (the last one shorter)

Redis refuses a value over 512 MB; chunks make any size work. A result that
fits one chunk is written by the commit script itself, in one step. A larger
one is first written chunk by chunk under a key of its own writer,
P:tmp:<hash>:<writer>, which expires unless renewed (so a writer killed
halfway leaves nothing behind for long, and nothing that counts), then
renamed into place by the commit script. That script also adds the hash to
the set of finished tasks, and, given a claim, writes nothing at all when the
claim is no longer its caller's. Readers see the old
result or the new one, never part of one.

Every read is checked against the CRC, as for a file; a chunked result read
while another writer replaced it fails that check and is read once more.
"""
from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from ... import encoding
from ...errors import CorruptResultError, StoreServerError
from ..identity import HOST, process
from . import scripts
from .connection import Connection
from .keys import Keys

if TYPE_CHECKING:
    from ...signing import Seal

log = logging.getLogger(__name__)

CHUNK = 8 << 20
# Chunks sent or fetched per round trip.
_BATCH = 4
# A large result's chunks expire unless made visible within this long after the last one was written.
TMP_LIFETIME_MS = 6 * 3600 * 1000


def _chunks(buffers: Iterable, size: int | None = None):
    """The concatenation of `buffers`, cut in pieces of `size` bytes (CHUNK by default; the last one
    shorter), copying only the pieces that straddle two buffers."""
    size = size or CHUNK
    pending: list[memoryview] = []
    have = 0
    for buf in buffers:
        view = memoryview(buf).cast("B")
        while view.nbytes:
            if not pending and view.nbytes >= size:
                yield view[:size]
                view = view[size:]
                continue
            take = min(size - have, view.nbytes)
            pending.append(view[:take])
            have += take
            view = view[take:]
            if have == size:
                yield b"".join(pending)
                pending, have = [], 0
    if pending:
        yield b"".join(pending)


class Results:
    """Writing and reading results of one Redis store."""

    def __init__(self, connection: Connection, keys: Keys):
        self.connection = connection
        self.keys = keys
        self._commit: Any = None
        self._commit_client: Any = None

    def _committer(self):
        client = self.connection.client
        if self._commit is None or self._commit_client is not client:
            self._commit = client.register_script(scripts.COMMIT)
            self._commit_client = client
        return self._commit

    def name(self, task_hash: str) -> str:
        """Where a result lives, for messages: the server (without password) and the key."""
        return f"{self.connection.address.display} key {self.keys.result(task_hash)}"

    def save(self, task_hash: str, payload: encoding.Payload, token: str = "") -> int | None:
        """Make the encoded result visible; its size in bytes. Given the `token` of the caller's claim
        on the task: None, and nothing written, when that claim is not held any more."""
        head, data, size = payload.pieces()
        result_key = self.keys.result(task_hash)
        keys = [result_key, self.keys.finished, self.keys.claim(task_hash)]
        doing = f"saving the result of {task_hash[:12]} ({size} bytes)"
        commit = self._committer()
        if size <= CHUNK:
            whole = b"".join([head, *data])
            with self.connection.guard(doing):
                done = commit(keys=keys + [result_key], args=[token, task_hash, head, size, whole])
        else:
            tmp = self.keys.tmp(task_hash, f"{HOST}.{process.pid}.{process.unique()}")
            try:
                with self.connection.guard(doing) as r:
                    pipe = r.pipeline(transaction=False)
                    queued = 0
                    for i, chunk in enumerate(_chunks(itertools.chain([head], data))):
                        # HSET of a numbered field: sending it twice writes the same thing.
                        pipe.hset(tmp, str(i), chunk)
                        queued += 1
                        if queued == _BATCH:
                            pipe.pexpire(tmp, TMP_LIFETIME_MS)
                            pipe.execute()
                            queued = 0
                    pipe.hset(tmp, mapping={"h": head, "s": size})
                    pipe.pexpire(tmp, TMP_LIFETIME_MS)
                    pipe.execute()
                    done = commit(keys=keys + [tmp], args=[token, task_hash])
            except BaseException:
                self._drop(tmp)
                raise
            if done == 0:
                self._drop(tmp)
        if done == -1:
            raise StoreServerError(f"the chunks of the result of {task_hash[:12]} expired on "
                                   f"{self.connection.address.server} before they were complete "
                                   f"(written for more than {TMP_LIFETIME_MS // 3_600_000} h)",
                                   path=self.connection.address.display)
        return size if done == 1 else None

    def _drop(self, tmp: str) -> None:
        try:
            with self.connection.guard() as r:
                r.delete(tmp)
        except StoreServerError as e:
            log.debug("cannot remove %s: %s (it expires on its own)", tmp, e)

    def exists(self, task_hash: str) -> bool:
        with self.connection.guard(f"looking for the result of {task_hash[:12]}") as r:
            return bool(r.exists(self.keys.result(task_hash)))

    def read(self, task_hash: str) -> memoryview:
        """The whole encoded result, length checked; FileNotFoundError when there is none."""
        key = self.keys.result(task_hash)
        with self.connection.guard(f"reading the result of {task_hash[:12]}") as r:
            size_field, first = cast(list[bytes | None], r.hmget(key, ["s", "0"]))
            if size_field is None or first is None:
                raise FileNotFoundError(key)
            size = int(size_field)
            if len(first) >= size:
                if len(first) != size:
                    raise CorruptResultError(self.name(task_hash), f"length is {len(first)} bytes, "
                                             f"its record says {size}")
                # A bytearray, so that arrays pickled out of band come back writable, as from a file.
                return memoryview(bytearray(first))
            buf = memoryview(bytearray(size))
            step = len(first)
            buf[:step] = first
            count = -(-size // step)
            for start in range(1, count, _BATCH):
                fields = [str(i) for i in range(start, min(count, start + _BATCH))]
                pieces = cast(list[bytes | None], r.hmget(key, fields))
                for i, piece in zip(range(start, start + len(fields)), pieces, strict=True):
                    want = min(step, size - i * step)
                    if piece is None:
                        raise FileNotFoundError(key)  # replaced by a smaller one, or removed, meanwhile
                    if len(piece) != want:
                        raise CorruptResultError(self.name(task_hash),
                                                 f"chunk {i} is {len(piece)} bytes, expected {want}")
                    buf[i * step:i * step + want] = piece
        return buf

    def load(self, task_hash: str, seal: Seal | None = None) -> tuple[Any, encoding.Header]:
        """(value, header), checked against the CRC (and signed with `seal`); read once more if that
        fails (a replace may have come between two chunks)."""
        try:
            return encoding.decode(self.name(task_hash), self.read(task_hash), seal=seal)
        except CorruptResultError:
            log.debug("result of %s failed its check; reading it again", task_hash[:12])
        return encoding.decode(self.name(task_hash), self.read(task_hash), seal=seal)

    def verify(self, task_hash: str, seal: Seal | None = None) -> None:
        """Check a result's length and CRC (and its signature, with `seal`) without decoding it;
        FileNotFoundError when absent."""
        try:
            encoding.check(self.name(task_hash), self.read(task_hash), seal)
            return
        except CorruptResultError:
            pass
        encoding.check(self.name(task_hash), self.read(task_hash), seal)

    def meta(self, task_hash: str) -> dict:
        """The metadata of a result, reading only its header."""
        key = self.keys.result(task_hash)
        with self.connection.guard(f"reading the header of {task_hash[:12]}") as r:
            head, size = cast(list[bytes | None], r.hmget(key, ["h", "s"]))
        if head is None or size is None:
            raise FileNotFoundError(key)
        return encoding.parse_header(self.name(task_hash), head, int(size)).meta

    def remove(self, task_hash: str) -> bool:
        with self.connection.guard(f"removing the result of {task_hash[:12]}") as r:
            script = r.register_script(scripts.REMOVE_RESULT)
            return bool(script(keys=[self.keys.result(task_hash), self.keys.finished], args=[task_hash]))

    def header(self, task_hash: str) -> bytes | None:
        with self.connection.guard(f"reading the header of {task_hash[:12]}") as r:
            return r.hget(self.keys.result(task_hash), "h")

    def move_aside(self, task_hash: str, judged: bytes) -> str | None:
        """Move the result whose header is `judged` to a P:damaged: key; that key, or None if there
        was no result or another one is in its place (saved again since it was judged)."""
        where = self.keys.damaged(task_hash, f"{HOST}.{process.pid}.{process.unique()}")
        with self.connection.guard(f"moving aside the result of {task_hash[:12]}") as r:
            script = r.register_script(scripts.MOVE_ASIDE)
            moved = script(keys=[self.keys.result(task_hash), self.keys.finished, where], args=[task_hash, judged])
        return where if moved else None

    def present(self, hashes: list[str]) -> set[str]:
        """Those of `hashes` with a result: one pipelined EXISTS each, one round trip in all."""
        if not hashes:
            return set()
        with self.connection.guard("looking for results") as r:
            pipe = r.pipeline(transaction=False)
            for h in hashes:
                pipe.exists(self.keys.result(h))
            answers = pipe.execute()
        return {h for h, there in zip(hashes, answers, strict=True) if there}

    def finished(self) -> set[str]:
        """Hashes of every stored result: one SMEMBERS of the finished set."""
        with self.connection.guard("listing finished tasks") as r:
            members = cast(set[bytes], r.smembers(self.keys.finished))
        return {h.decode("ascii", "replace") for h in members}
