"""Results in the store interface: saving, loading, listing and checking them.

Part of the contract of `stores.base` (see there for what errors mean). Nothing
here promises one file per result: results may be packed many to a file.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from .. import encoding
from ..errors import CorruptResultError


class ResultStore(ABC):
    """The results and their damage marks, as every store keeps them."""

    # -- results ----------------------------------------------------------

    @abstractmethod
    def save_payload(self, task_hash: str, payload: encoding.Payload) -> int:
        """Store an encoded result atomically; returns its size in bytes.

        Readers see the whole result or none, also when the writer is killed
        mid-write; a save over an existing result replaces it whole. Records
        the code marker of `payload.meta` (see `code_tags`). StoreAccessError
        when the store cannot be written.
        """

    def save_payloads(self, items: Sequence[tuple[str, encoding.Payload]]) -> list[int]:
        """`save_payload` each (task hash, payload): the results of a batch, which a store may
        write together. Each is saved whole or not at all, as by `save_payload`; their sizes."""
        return [self.save_payload(h, payload) for h, payload in items]

    @property
    def saves_together(self) -> bool:
        """Whether `save_payloads` costs less than a `save_payload` each now: only then does a
        worker hold a batch's results to save them together, rather than each as it comes."""
        return False

    def expect_results(self, count: int) -> None:
        """A hint: this process is about to save up to `count` results (a worker: the size of its
        graph). A store may then keep small results together (the folder store packs them);
        what every other method promises is the same either way."""
        return None

    def close_results(self) -> None:
        """Done saving for now (a worker stops): write out what saving kept back. Every result
        saved is readable before this, by every process; this only spares readers work."""
        return None

    def compact(self) -> dict[str, int]:
        """Keep the results in as few places as the store can (`taskflow pack`), safe while workers
        run: every result readable throughout, none lost, none removed come back. Counts of what
        was done, for a report (none for a store that keeps results as keys)."""
        return {}

    def save_result(self, task_hash: str, value: Any, meta: dict) -> int:
        """`save_payload` of `value` with `meta`; what pickle raises for a value it cannot encode."""
        return self.save_payload(task_hash, encoding.Payload(value, meta))

    @abstractmethod
    def load_value(self, task_hash: str, mmap: bool = False, fresh: bool = False) -> Any:
        """The stored value, checked against its length and checksum.

        FileNotFoundError when absent; CorruptResultError when damaged.
        `fresh` bypasses this client's caches. `mmap` maps arrays instead of
        reading them (checked by header and length only); a backend that
        cannot raises UsageError saying so.
        """

    @abstractmethod
    def raw_result(self, task_hash: str) -> memoryview:
        """The stored result's bytes as saved, header and data, unchecked (for `taskflow store sign`,
        which checks them). FileNotFoundError when absent."""

    def replace_result(self, task_hash: str, payload: encoding.Payload) -> int:
        """`save_payload` over a stored result, wherever the store keeps it: afterwards readers see
        only the new one. Safe while workers run."""
        return self.save_payload(task_hash, payload)

    @abstractmethod
    def result_meta(self, task_hash: str) -> dict:
        """The metadata saved with the result (reads no data). FileNotFoundError, CorruptResultError."""

    def metas(self, tasks: Iterable[Any], finished: set[str] | None = None,
              on_damaged: Callable[[Any, CorruptResultError], None] | None = None) -> Iterator[tuple[Any, dict]]:
        """(task, metadata) of each finished task among `tasks` (objects with `.hash`); absent
        ones are left out, damaged ones too (and passed to `on_damaged`)."""
        finished = self.finished_hashes() if finished is None else finished
        for task in tasks:
            if task.hash in finished:
                try:
                    yield task, self.result_meta(task.hash)
                except FileNotFoundError:
                    continue
                except CorruptResultError as e:
                    if on_damaged is not None:
                        on_damaged(task, e)

    @abstractmethod
    def has_result(self, task_hash: str) -> bool:
        """Whether a result is stored for the task (one round trip; not checked)."""

    def finished_among(self, hashes: Sequence[str]) -> set[str]:
        """Those of `hashes` that `has_result` would find now: for a worker that just claimed them
        as a batch, which a store may look up together."""
        return {h for h in hashes if self.has_result(h)}

    @abstractmethod
    def present(self, hashes: Iterable[str]) -> set[str]:
        """Those of `hashes` whose result is there, each looked up by name so that a client's
        stale listing cache does not hide it (see confirm.py)."""

    @abstractmethod
    def finished_hashes(self) -> set[str]:
        """Hashes of every stored result, damaged or not; the cost grows with the store, not with
        a round trip per result. May lag behind other clients' saves (see `present`)."""

    @abstractmethod
    def remove_result(self, task_hash: str) -> bool:
        """Remove the result; False if it was not there. Safe while workers run."""

    @abstractmethod
    def verify_result(self, task_hash: str, fresh: bool = False) -> None:
        """Read the whole result and check it: CorruptResultError when damaged, FileNotFoundError when
        absent. `fresh` bypasses this client's caches."""

    def damaged(self, hashes: Iterable[str]) -> Iterator[tuple[str, str]]:
        """(hash, why) of each stored result among `hashes` that fails its full check; absent ones
        are passed over."""
        for task_hash in hashes:
            try:
                self.verify_result(task_hash)
            except FileNotFoundError:
                continue
            except CorruptResultError as e:
                yield task_hash, str(e)

    @abstractmethod
    def move_aside(self, task_hash: str) -> str | None:
        """Move a damaged result where a human can look at it, so that it counts as missing.

        Checked again (fresh) first: a result that reads intact stays, and
        None is returned; so is None when there was nothing to move. Racing
        movers move it once; a result saved again meanwhile is kept. Drops
        the suspect mark. Returns where it went, for messages. OSError or
        StoreAccessError when the store cannot be written.
        """

    @abstractmethod
    def moved_aside(self) -> set[str]:
        """Hashes of results moved aside as damaged (one listing)."""

    # -- suspect marks ----------------------------------------------------

    @abstractmethod
    def mark_suspect(self, task_hash: str, record: dict) -> None:
        """Mark the result as found damaged (`record`: what was wrong, who, when), so it counts as
        missing until execute checks it. OSError naming what could not be written."""

    @abstractmethod
    def unmark_suspect(self, task_hash: str) -> bool:
        """Drop the mark; False if there was none."""

    @abstractmethod
    def suspect_hashes(self) -> set[str]:
        """Hashes of results marked suspect (one listing)."""

    @abstractmethod
    def is_suspect(self, task_hash: str) -> bool:
        """Whether the result is marked suspect (one round trip)."""
