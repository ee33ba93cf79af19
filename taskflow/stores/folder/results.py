"""The results of a folder store: one file per result in results/<shard>/, written atomically."""
from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ... import encoding
from ...errors import StoreAccessError
from . import writes
from .files import fsync_dir, opens, remake, remove_file

# Writes into a folder of the store that vanished (deleted while we run) make it again and try
# again, this many times in all.
_ATTEMPTS = 3


class Results:
    """Saving, loading and listing the result files of a FolderStore."""

    results_dir: str
    tmp_dir: str
    fsync: bool
    _shards_made: set[str]

    if TYPE_CHECKING:  # FolderStore's
        def ensure(self) -> None: ...
        def result_path(self, task_hash: str) -> str: ...
        def _note_code(self, meta: dict) -> None: ...

    # -- results ----------------------------------------------------------

    def save_payload(self, task_hash: str, payload: encoding.Payload) -> int:
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
                    remake(self.tmp_dir)
                    os.makedirs(shard_dir, exist_ok=True)
                    self._shards_made.add(shard_dir)
            if self.fsync:
                fsync_dir(shard_dir)
            self._note_code(payload.meta)
        except OSError as e:
            raise StoreAccessError(f"cannot write result {final}: {e.strerror or e}", path=final) from e
        return size

    def _place(self, final: str, payload: encoding.Payload) -> int:
        return writes.place(final, payload, self.tmp_dir, self.fsync, self._shards_made)

    def has_result(self, task_hash: str) -> bool:
        return os.path.exists(self.result_path(task_hash))

    def load_value(self, task_hash: str, mmap: bool = False, fresh: bool = False) -> Any:
        return encoding.load_value(self.result_path(task_hash), mmap=mmap, fresh=fresh)

    def verify_result(self, task_hash: str, fresh: bool = False) -> None:
        encoding.verify(self.result_path(task_hash), fresh=fresh)

    def result_meta(self, task_hash: str) -> dict:
        return encoding.read_meta(self.result_path(task_hash))

    def remove_result(self, task_hash: str) -> bool:
        return remove_file(self.result_path(task_hash))

    def finished_hashes(self) -> set[str]:
        """Hashes of every stored result: one listing per shard, no stat per file."""
        found: set[str] = set()
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
        return {h for h in hashes if opens(self.result_path(h))}
