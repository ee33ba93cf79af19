"""Worker records of a folder store: STORE/workers/<worker>.json, one file per worker,
replaced atomically (through tmp/) each time the worker publishes it.

The file's mtime, set by the filesystem, is when it was published; its age is judged on the
filesystem's clock (clock.py), like claims, so hosts whose clocks disagree agree on it.
"""
from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING

from ..workers import WorkerRecord
from .files import listing, read_json, remove_file

if TYPE_CHECKING:
    from ..modes import Modes
    from ..claims import Claims

log = logging.getLogger(__name__)


def _file_name(ident: str) -> str:
    return ident.replace(os.sep, "_") + ".json"


class WorkerFiles:
    """The worker records of a FolderStore (whose `workers_dir`, `write_atomic` and `claims` it uses)."""

    workers_dir: str

    if TYPE_CHECKING:  # FolderStore's
        @property
        def modes(self) -> Modes: ...
        def write_atomic(self, final: str, data: bytes) -> None: ...
        def claims(self, lease: float | None = None, worker: str | None = None, reader: bool = False) -> Claims: ...

    def publish_worker(self, ident: str, record: dict) -> None:
        path = os.path.join(self.workers_dir, _file_name(ident))
        try:
            self.modes.make_folders(self.workers_dir)
            self.write_atomic(path, json.dumps(dict(record, ident=ident)).encode())
        except OSError as e:
            log.debug("cannot write worker record %s: %s", path, e.strerror or e)

    def withdraw_worker(self, ident: str) -> None:
        try:
            remove_file(os.path.join(self.workers_dir, _file_name(ident)))
        except OSError as e:
            log.debug("cannot remove worker record of %s: %s", ident, e.strerror or e)

    def worker_records(self) -> list[WorkerRecord]:
        found: list[tuple[str, dict, float]] = []
        for name in listing(self.workers_dir):
            if not name.endswith(".json"):
                continue
            path = os.path.join(self.workers_dir, name)
            try:
                mtime = os.stat(path).st_mtime
                record = read_json(path)
            except (OSError, ValueError):
                continue  # replaced or removed meanwhile, or not ours
            if isinstance(record, dict):
                found.append((str(record.get("ident", name[:-5])), record, mtime))
        if not found:
            return []
        claims = self.claims(reader=True)
        try:
            now = claims.now()
        finally:
            claims.close()
        return [WorkerRecord(ident, record, max(0.0, now - mtime)) for ident, record, mtime in found]
