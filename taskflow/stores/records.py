"""The small records in the store interface: failures, completion records, code markers, STOP.

Part of the contract of `stores.base` (see there for what errors mean).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence


class RecordStore(ABC):
    """Failure records and the hints workers leave each other."""

    # -- failure records --------------------------------------------------

    @abstractmethod
    def save_failure(self, task_hash: str, record: dict) -> None:
        """Store the failure record (JSON-able) atomically, replacing any. StoreAccessError."""

    @abstractmethod
    def load_failure(self, task_hash: str) -> dict | None:
        """The failure record; None when there is none; a placeholder record when unreadable."""

    @abstractmethod
    def failure_time(self, task_hash: str) -> float | None:
        """When the failure record was written, on the claims' clock (`Claims.now`); None if none."""

    def failed_among(self, hashes: Sequence[str]) -> set[str]:
        """Those of `hashes` with a failure record now (`failure_time` tells when): for a worker that
        just claimed them as a batch, which a store may look up together."""
        return {h for h in hashes if self.failure_time(h) is not None}

    @abstractmethod
    def remove_failure(self, task_hash: str) -> bool:
        """Remove the failure record; False if there was none."""

    @abstractmethod
    def failed_hashes(self) -> set[str]:
        """Hashes of every task with a failure record (one listing)."""

    # -- attempts whose worker died (counted by takeovers, see claims.Claims) --

    @abstractmethod
    def deaths(self, task_hash: str) -> list[dict]:
        """One record per attempt at the task whose worker died, oldest first: `owner` (what the
        dead claim recorded: host, pid, worker...), `reason` (why it was judged stale), `time`."""

    @abstractmethod
    def forget_deaths(self, task_hash: str) -> int:
        """Forget the task's dead attempts (a retry starts counting again); how many there were."""

    @abstractmethod
    def died_hashes(self) -> set[str]:
        """Hashes of every task with dead attempts recorded (one listing)."""

    # -- completion records -----------------------------------------------

    @abstractmethod
    def record_complete(self, digest: str, record: dict) -> None:
        """Note that every task of the graph `digest` was seen finished (a hint: a failing write
        is only logged). Written once: an existing record is kept."""

    @abstractmethod
    def complete_recorded(self, digest: str) -> bool:
        """Whether the graph is recorded complete, looked up by name (revalidating caches)."""

    @abstractmethod
    def complete_digests(self) -> set[str]:
        """Digests of every completion record (one listing)."""

    @abstractmethod
    def forget_complete(self, digest: str) -> bool:
        """Remove one completion record; False if it was not there."""

    # -- code markers -----------------------------------------------------

    @staticmethod
    def code_tag(code: str | None, version: str | None) -> str:
        return f"{code}-v{version}" if version is not None else str(code)

    @abstractmethod
    def code_tags(self, name: str) -> set[str]:
        """`code_tag`s of every code version that saved results of the task name."""

    @abstractmethod
    def forget_code(self, name: str, tag: str) -> None:
        """Drop a code marker (no error when absent, or when the store cannot be written)."""

    # -- job records and STOP -------------------------------------

    @abstractmethod
    def jobs_folder(self) -> str:
        """A local folder for the job scripts, logs and records of array jobs run on this store."""

    @abstractmethod
    def stop_requested(self) -> bool:
        """Whether STOP is requested: workers take no new task (one round trip)."""

    @abstractmethod
    def request_stop(self, on: bool = True) -> None:
        """Request STOP, or with `on=False` withdraw it (no error when there was none)."""
