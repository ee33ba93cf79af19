"""The small records of a folder store: failures, suspect marks, completion records, code
markers, STOP. Each is one file, written atomically (through tmp/) or created empty."""
from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING

from ...errors import StoreAccessError
from ...stale import gone
from . import attempts
from ..modes import Modes
from .files import listing, opens, read_json, remove_file

if TYPE_CHECKING:
    from ...signing import Key


log = logging.getLogger(__name__)


class Records:
    """Failure records, marks and markers of a FolderStore (whose folders it uses)."""

    path: str
    failed_dir: str
    suspect_dir: str
    damaged_dir: str
    complete_dir: str
    code_dir: str
    attempts_dir: str
    jobs_dir: str
    stop_file: str
    _noted_code: set[tuple]

    if TYPE_CHECKING:
        @property
        def modes(self) -> Modes: ...
  # FolderStore's
        def ensure(self) -> None: ...
        def write_atomic(self, final: str, data: bytes) -> None: ...
        def failure_path(self, task_hash: str) -> str: ...
        def code_tag(self, code: str | None, version: str | None) -> str: ...
        @property
        def key(self) -> Key | None: ...

    # -- failures ---------------------------------------------------------

    def save_failure(self, task_hash: str, record: dict) -> None:
        path = self.failure_path(task_hash)
        key = self.key
        try:
            self.ensure()
            if key is not None:
                record = key.sign_record("failure", task_hash, record)
            self.write_atomic(path, json.dumps(record, indent=1).encode())
        except OSError as e:
            raise StoreAccessError(f"cannot write failure record {path}: {e.strerror or e}", path=path) from e

    def load_failure(self, task_hash: str) -> dict | None:
        path = self.failure_path(task_hash)
        try:
            record = read_json(path)
        except FileNotFoundError:
            return None
        except ValueError:
            record = {"type": "?", "message": "(unreadable failure record)", "traceback": ""}
        if self.key is None:
            return record
        from ...signing import checked_record  # only where a key is used: hashlib costs every start

        return checked_record(self.key, "failure", task_hash, record, path)

    def failure_time(self, task_hash: str) -> float | None:
        # The record's mtime: the filesystem's clock, which claims are judged by too.
        if self.key is not None and self.load_failure(task_hash) is None:
            return None  # none, or one the key did not sign: no failure then
        try:
            return os.stat(self.failure_path(task_hash)).st_mtime
        except OSError as e:
            if not gone(e):
                raise
            return None

    def remove_failure(self, task_hash: str) -> bool:
        return remove_file(self.failure_path(task_hash))

    def failed_hashes(self) -> set[str]:
        hashes = {n[:-5] for n in listing(self.failed_dir) if n.endswith(".json")}
        if self.key is None:
            return hashes
        # With a key, a failure is one its record proves: one read per failed task, and they are few.
        return {h for h in hashes if self.load_failure(h) is not None}

    # -- attempts whose worker died ----------------------------------------

    def deaths(self, task_hash: str) -> list[dict]:
        return attempts.records(self.attempts_dir, task_hash)

    def forget_deaths(self, task_hash: str) -> int:
        return attempts.forget(self.attempts_dir, task_hash)

    def died_hashes(self) -> set[str]:
        return attempts.hashes(self.attempts_dir)

    # -- damaged results --------------------------------------------------

    def mark_suspect(self, task_hash: str, record: dict) -> None:
        # Made on first use, so that writing the mark does not report it as a vanished folder.
        self.modes.make_folders(self.suspect_dir)
        self.write_atomic(os.path.join(self.suspect_dir, task_hash), json.dumps(record).encode())

    def unmark_suspect(self, task_hash: str) -> bool:
        return remove_file(os.path.join(self.suspect_dir, task_hash))

    def suspect_hashes(self) -> set[str]:
        """Hashes of results marked damaged (see damage.py): one listing."""
        return set(listing(self.suspect_dir))

    def is_suspect(self, task_hash: str) -> bool:
        return os.path.exists(os.path.join(self.suspect_dir, task_hash))

    def moved_aside(self) -> set[str]:
        """Hashes of results moved to damaged/: one listing."""
        return {name.split(".", 1)[0] for name in listing(self.damaged_dir)}

    # -- completion records -----------------------------------------------

    def record_complete(self, digest: str, record: dict) -> None:
        path = os.path.join(self.complete_dir, digest)
        try:
            if os.path.exists(path):
                return
            self.modes.make_folders(self.complete_dir)
            self.write_atomic(path, json.dumps(record).encode())
        except OSError as e:
            log.debug("cannot write %s: %s", path, e)

    def complete_recorded(self, digest: str) -> bool:
        return opens(os.path.join(self.complete_dir, digest))

    def complete_digests(self) -> set[str]:
        return set(listing(self.complete_dir))

    def forget_complete(self, digest: str) -> bool:
        return remove_file(os.path.join(self.complete_dir, digest))

    # -- which code produced results -------------------------------------

    def _note_code(self, meta: dict) -> None:
        """Mark that some result of this name came from this code and version.

        One empty file per (name, code, version), written once per process, lets
        `status` see cheaply whether any stored result may come from other code.
        """
        key = (meta.get("name"), meta.get("code"), meta.get("version"))
        if key in self._noted_code or key[0] is None or key[1] is None:
            return
        self._noted_code.add(key)
        folder = os.path.join(self.code_dir, key[0])
        self.modes.make_folders(folder)
        marker = os.path.join(folder, self.code_tag(key[1], key[2]))
        if not os.path.exists(marker):
            self.modes.make_empty(marker)

    def code_tags(self, name: str) -> set[str]:
        return set(listing(os.path.join(self.code_dir, name)))

    def forget_code(self, name: str, tag: str) -> None:
        try:
            os.unlink(os.path.join(self.code_dir, name, tag))
        except FileNotFoundError:
            pass
        except OSError as e:  # a read-only store: the marker only costs header reads while it stays
            log.debug("cannot remove code marker %s/%s: %s", name, tag, e.strerror)

    # -- jobs and STOP ----------------------------------------------------

    def jobs_folder(self) -> str:
        return self.jobs_dir

    def stop_requested(self) -> bool:
        return os.path.exists(self.stop_file)

    def request_stop(self, on: bool = True) -> None:
        if on:
            self.ensure()
            self.modes.make_empty(self.stop_file)
        else:
            remove_file(self.stop_file)
