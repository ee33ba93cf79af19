"""Worker records in the store interface: what each worker may run, and what it skipped.

Part of the contract of `stores.base`. A worker publishes one small record
(JSON-able) when it starts, again every few seconds while it runs, and when it
exits either withdraws it or, where the record counts something `report` sums,
publishes it a last time saying it exited; `taskflow status` reads them to say which workers run and
what they could take, and `taskflow report` sums what they skipped. Records
are hints: a failing write is logged, never raised, and a worker killed with
kill -9 simply stops refreshing its record, which then grows old.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass
class WorkerRecord:
    """One worker's record as the store holds it."""

    ident: str
    record: dict
    age: float  # seconds since it was last published, on the store's clock

    @property
    def live(self) -> bool:
        """Published by a worker that has not said it exited, recently enough for it to be running:
        within three of the intervals it promised to publish at."""
        interval = self.record.get("interval")
        if not self.record.get("running") or not isinstance(interval, (int, float)):
            return False
        return self.age <= 3 * interval


class WorkerRecords(ABC):
    """The records workers publish about themselves."""

    @abstractmethod
    def publish_worker(self, ident: str, record: dict) -> None:
        """Write (replacing) the record of worker `ident`, noting the time on the store's clock.
        A write that fails is only logged."""

    @abstractmethod
    def withdraw_worker(self, ident: str) -> None:
        """Remove the record of worker `ident` (no error when there is none, or when the store
        cannot be written)."""

    @abstractmethod
    def worker_records(self) -> list[WorkerRecord]:
        """Every worker record there now, of running workers and of ones that exited or died,
        each with its age on the store's clock (one listing and a read per record)."""
