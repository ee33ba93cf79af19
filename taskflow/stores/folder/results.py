"""The results of a folder store: one file per result in results/<shard>/, written atomically, or
records in packs/ for small results (see packed.py); a store may hold both."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ... import encoding
from ...errors import StoreAccessError
from . import writes
from ..localfiles import fsync_dir, remake
from .files import opens, remove_file
from .packed import PACK_FROM, Packs
from .trust import Trust
from ..modes import Modes

if TYPE_CHECKING:
    from ...signing import Seal

# Writes into a folder of the store that vanished (deleted while we run) make it again and try
# again, this many times in all.
_ATTEMPTS = 3


class Results:
    """Saving, loading and listing the result files of a FolderStore."""

    results_dir: str
    tmp_dir: str
    fsync: bool
    _shards_made: set[str]
    _packs: Packs | None
    packs_dir: str
    path: str
    trusted: bool
    _trust: Trust | None

    if TYPE_CHECKING:  # FolderStore's
        @property
        def modes(self) -> Modes: ...
        def ensure(self) -> None: ...
        def result_path(self, task_hash: str) -> str: ...
        def location(self, kind: str, task_hash: str = "") -> str: ...
        def _note_code(self, meta: dict) -> None: ...
        def seal(self, task_hash: str) -> Seal | None: ...

    # -- results ----------------------------------------------------------

    @property
    def packs(self) -> Packs:
        if self._packs is None:
            self._packs = Packs(self.packs_dir, self.fsync, self.modes)
        return self._packs

    def expect_results(self, count: int) -> None:
        # Asked for (TASKFLOW_PACK=1): a caching client may hand a reader a pack's size from before
        # another client appended to it (README). Each new pack waits out its grace (grace.py)
        # first, asked for here so that a bad TASKFLOW_PACK_GRACE stops the worker before it runs.
        if count >= PACK_FROM and os.environ.get("TASKFLOW_PACK") == "1":
            from .packed import PACK_BELOW

            self.packs.below = PACK_BELOW
            _ = self.packs.grace

    def close_results(self) -> None:
        if self._packs is not None:
            self._packs.writer.seal()

    def save_payload(self, task_hash: str, payload: encoding.Payload) -> int:
        payload.sign(self.seal(task_hash))
        if self._packs is not None and self._packs.below:
            try:
                self.ensure()
                if self._packs.wanted(task_hash, payload):
                    size = self._packs.save(task_hash, payload)
                    self._note_code(payload.meta)
                    return size
            except OSError as e:
                where = self.location("result", task_hash)
                raise StoreAccessError(f"cannot write result {where}: {e.strerror or e}", path=where) from e
        final = self.result_path(task_hash)
        try:
            self.ensure()
            shard_dir = final[:-len(task_hash) - 1]
            for attempt in range(1, _ATTEMPTS + 1):
                try:
                    size = self._place(final, payload)
                    break
                except FileNotFoundError:
                    # Shards are made on first use: asking every worker to make sure of
                    # each shard up front would cost two system calls per shard and worker.
                    # Another worker may be making this one right now, hence exist_ok.
                    # tmp/ (or results/ with every shard) may have been deleted while we run.
                    if attempt == _ATTEMPTS:
                        raise
                    remake(self.tmp_dir, self.modes)
                    self.modes.make_folders(shard_dir)
                    self._shards_made.add(shard_dir)
            if self.fsync:
                fsync_dir(shard_dir)
            self._note_code(payload.meta)
        except OSError as e:
            raise StoreAccessError(f"cannot write result {final}: {e.strerror or e}", path=final) from e
        return size

    @property
    def saves_together(self) -> bool:
        return self._packs is not None and self._packs.below > 0  # one write to the pack for a batch

    def save_payloads(self, items: Sequence[tuple[str, encoding.Payload]]) -> list[int]:
        packs = self._packs
        packed = [i for i, (h, payload) in enumerate(items) if packs is not None and packs.wanted(h, payload)]
        if len(packed) < 2 or packs is None:
            return [self.save_payload(h, payload) for h, payload in items]
        sizes = [0] * len(items)
        for h, payload in items:
            payload.sign(self.seal(h))
        try:
            self.ensure()
            for i, size in zip(packed, packs.save_many([items[i] for i in packed]), strict=True):
                sizes[i] = size
            for i in packed:
                self._note_code(items[i][1].meta)
        except OSError as e:
            where = self.location("result", items[packed[0]][0])
            raise StoreAccessError(f"cannot write result {where}: {e.strerror or e}", path=where) from e
        rest = set(packed)
        for i, (h, payload) in enumerate(items):
            if i not in rest:
                sizes[i] = self.save_payload(h, payload)
        return sizes

    def _place(self, final: str, payload: encoding.Payload) -> int:
        return writes.place(final, payload, self.tmp_dir, self.fsync, self._shards_made, self.modes)

    def has_result(self, task_hash: str) -> bool:
        index = self.packs.index
        if index.lookup(task_hash) is not None or os.path.exists(self.result_path(task_hash)):
            return True
        index.refresh()  # packs made or appended to since this process last looked
        return index.lookup(task_hash) is not None

    def finished_among(self, hashes: Sequence[str]) -> set[str]:
        # The packs read on once for the whole batch, then one look per task not found in them.
        packs = self.packs
        packs.index.refresh()
        found = {h for h in hashes if packs.index.lookup(h) is not None}
        # Each result file looked up by its own name: a listing of results/ may come from a
        # client's cache older than a shard folder another node just made.
        found.update(h for h in hashes if h not in found and os.path.exists(self.result_path(h)))
        return found

    def _read(self, task_hash: str, fresh: bool, loose, packed) -> Any:
        """`loose(path)` of the result's file or `packed(name, body)` of its record, wherever it is."""
        packs = self.packs
        if packs.index.lookup(task_hash) is None or fresh:
            try:
                return loose(self.result_path(task_hash))
            except FileNotFoundError:
                pass
        try:
            return packs.read(task_hash, fresh, packed)
        except FileNotFoundError:
            return loose(self.result_path(task_hash))

    def load_value(self, task_hash: str, mmap: bool = False, fresh: bool = False) -> Any:
        judge = None if self.trusted else self.trust.check
        seal = self.seal(task_hash)
        return self._read(task_hash, fresh,
                          lambda path: encoding.load_value(path, mmap=mmap, fresh=fresh, guard=judge, seal=seal),
                          lambda name, body: encoding.decode(name, body, guard=self._pack_guard(name, judge),
                                                             seal=seal)[0])

    def _pack_guard(self, name: str, judge: object) -> Callable[[], None] | None:
        """What checks the pack holding the record `name` before its pickle is loaded (None: trusted)."""
        return None if judge is None else (lambda: self.trust.check_pack(name.rpartition("@")[0]))

    @property
    def trust(self) -> Trust:
        if self._trust is None:
            self._trust = Trust(self.modes.gid)
        return self._trust

    def verify_result(self, task_hash: str, fresh: bool = False) -> None:
        seal = self.seal(task_hash)
        self._read(task_hash, fresh, lambda path: encoding.verify(path, fresh=fresh, seal=seal),
                   lambda name, body: encoding.check(name, body, seal))

    def raw_result(self, task_hash: str) -> memoryview:
        return self._read(task_hash, True, _file_bytes, lambda name, body: body)

    def replace_result(self, task_hash: str, payload: encoding.Payload) -> int:
        # Saved as a file of its own, then the packed copy buried: a reader finds the one or the other.
        packs = self.packs
        below, packs.below = packs.below, 0
        try:
            size = self.save_payload(task_hash, payload)
        finally:
            packs.below = below
        packs.remove(task_hash)
        return size

    def result_meta(self, task_hash: str) -> dict:
        return self._read(task_hash, False, encoding.read_meta,
                          lambda name, body: encoding.parse_header(name, body, len(body)).meta)

    def remove_result(self, task_hash: str) -> bool:
        removed = remove_file(self.result_path(task_hash))
        return self.packs.remove(task_hash) or removed

    def finished_hashes(self) -> set[str]:
        """Hashes of every stored result: one listing per shard, no stat per file, and what the packs
        hold (their indexes read once, then what was appended since)."""
        packs = self.packs
        packs.index.refresh(full=True)
        found = packs.index.hashes()
        try:
            shards = os.listdir(self.results_dir)
        except FileNotFoundError:
            return found
        for shard in shards:
            try:
                found.update(os.listdir(os.path.join(self.results_dir, shard)))
            except (FileNotFoundError, NotADirectoryError):
                continue
        return found

    def present(self, hashes: Iterable[str]) -> set[str]:
        index = self.packs.index
        index.refresh(full=True, fresh=True)
        return {h for h in hashes if index.lookup(h) is not None or opens(self.result_path(h))}


def _file_bytes(path: str) -> memoryview:
    with open(path, "rb") as f:
        return memoryview(f.read())
