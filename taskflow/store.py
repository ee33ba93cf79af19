"""The store: one folder on a filesystem every worker sees.

    STORE/
      taskflow-store.json     format marker, written once
      results/ab/<hash>       result + metadata of task <hash> (see encoding.py)
      failed/<hash>.json      failure record: exception, traceback, host, time
      locks/<hash>            claim of a running task (see lease.py)
      tmp/                    files being written; renamed into place when complete
      clock/                  files touched to read the filesystem's own time
      done/<host>.<pid>.<n>   journal of one worker: the tasks it finished, for other clients (see journal.py)
      jobs/                   array jobs submitted for this store
      code/<name>/<tag>       which code versions produced results of each task name
      suspect/<hash>          a result some command found damaged: checked again by the next execute
      damaged/<hash>.<host>.<pid>.<random>  damaged results moved aside by execute or check --verify, for a human
      complete/<digest>       a worker saw every task of one graph finished (a hint for other clients)
      doctor/                 scratch folders of a running `taskflow doctor`
      doctor.json             what `taskflow doctor` measured and recommends (see fsneeds.py)
      STOP                    if present, workers take no new task

Writes are atomic: a result is written to an anonymous file (O_TMPFILE) and
linked into place or, where the filesystem cannot, written to a uniquely named
file in tmp/ and renamed into place; readers see a whole file or none, and a
crashed writer leaves at most a temp file, which `taskflow cleanup` removes.
"""
from __future__ import annotations

import json
import logging
import os
import errno
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from . import encoding
from .fingerprint import fingerprint
from ._version import __version__
from .errors import CorruptResultError, StoreAccessError, StoreError
from .stale import reread

log = logging.getLogger(__name__)

FORMAT = 1
MARKER = "taskflow-store.json"
_OWN_ENTRIES = {MARKER, "results", "failed", "locks", "tmp", "clock", "done", "jobs", "code", "suspect", "damaged",
                "complete", "STOP", "doctor", "doctor.json"}
HOST = os.uname().nodename  # gethostname(), without importing socket on every start


class _Process:
    """This process's pid and a unique-name source, renewed after fork.

    Both are asked for several times per task; caching them saves system calls
    (getpid, getrandom) on the hot path.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.pid = os.getpid()
        self._prefix = os.urandom(4).hex()
        self._counter = itertools.count()

    def unique(self) -> str:
        return f"{self._prefix}{next(self._counter):x}"


process = _Process()
os.register_at_fork(after_in_child=process.reset)


# What a write into a store answers when the store cannot be written at all, or no more.
UNWRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT}

# Writes into a folder of the store that vanished (deleted while we run) make it again and try
# again, this many times in all.
_ATTEMPTS = 3

# What filesystems and kernels answer when they cannot make or link unnamed files.
_UNSUPPORTED = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT, errno.EPERM, errno.EACCES,
                errno.EXDEV, errno.ENOSYS}


class _Anonymous:
    """Whether unnamed files (O_TMPFILE + linkat) work here; learned on first use."""

    def __init__(self) -> None:
        # linkat() with a source directory fd is what links /proc/self/fd/N by its target.
        self.usable = (hasattr(os, "O_TMPFILE") and os.link in os.supports_dir_fd
                       and os.path.isdir("/proc/self/fd"))
        self._root: int | None = None

    def root_fd(self) -> int:
        # linkat() follows /proc/self/fd/N only when given a directory fd.
        if self._root is None:
            self._root = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
        return self._root


_anonymous = _Anonymous()


def remove_file(path: str) -> bool:
    """Remove a file; False if it was already gone (another worker or cleanup may have been first)."""
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


@reread  # failure records are replaced by rename, maybe through another client
def _read_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Store:
    """A taskflow store folder. Creating the object touches nothing on disk."""

    def __init__(self, path: str, fsync: bool = False):
        self.path = os.path.abspath(path)
        self.fsync = fsync
        self.results_dir = os.path.join(self.path, "results")
        self.failed_dir = os.path.join(self.path, "failed")
        self.locks_dir = os.path.join(self.path, "locks")
        self.tmp_dir = os.path.join(self.path, "tmp")
        self.clock_dir = os.path.join(self.path, "clock")
        self.done_dir = os.path.join(self.path, "done")
        self.jobs_dir = os.path.join(self.path, "jobs")
        self.stop_file = os.path.join(self.path, "STOP")
        self.code_dir = os.path.join(self.path, "code")
        self.suspect_dir = os.path.join(self.path, "suspect")
        self.damaged_dir = os.path.join(self.path, "damaged")
        self.complete_dir = os.path.join(self.path, "complete")
        self.taskfile: str | None = None  # the taskfile last loaded with this store, for messages
        self._ready = False
        self._format_ok = False
        self._noted_code: set[tuple] = set()
        self._shards_made: set[str] = set()  # shards this process made or saw made after a failed write

    def __repr__(self) -> str:
        return f"Store({self.path!r})"

    # -- layout ---------------------------------------------------------

    def exists(self) -> bool:
        return os.path.exists(os.path.join(self.path, MARKER))

    def check_format(self) -> None:
        """Refuse a folder that is not a taskflow store of a format we read.

        Once the marker was read and found right, later calls cost nothing:
        every path that loads results calls this.
        """
        if self._format_ok:
            return
        marker = os.path.join(self.path, MARKER)
        if os.path.isfile(self.path):
            raise StoreError(f"{self.path} is a file, not a store folder", path=self.path)
        try:
            with open(marker) as f:
                fmt = json.load(f).get("format")
        except FileNotFoundError:
            # A store being created by another worker right now holds only our own folders.
            if os.path.isdir(self.path) and not set(os.listdir(self.path)) <= _OWN_ENTRIES:
                raise StoreError(f"{self.path} exists and is not a taskflow store (no {MARKER})",
                                 path=self.path) from None
            return
        except (ValueError, OSError) as e:
            raise StoreError(f"{marker}: unreadable store marker ({e})", path=marker) from None
        if fmt != FORMAT:
            raise StoreError(f"{self.path} has store format {fmt!r}; this taskflow {__version__} "
                             f"reads format {FORMAT}", path=self.path)
        self._format_ok = True

    def ensure(self) -> None:
        """Create the store's folders (idempotent, safe when workers race)."""
        if self._ready:
            return
        self.check_format()
        try:
            # The marker first (through tmp/), so that a folder other workers see
            # half-created is already recognisably a store.
            os.makedirs(self.tmp_dir, exist_ok=True)
            marker = os.path.join(self.path, MARKER)
            if not os.path.exists(marker):
                self.write_atomic(marker, json.dumps({"format": FORMAT, "created_by": __version__}).encode())
            for d in (self.results_dir, self.failed_dir, self.locks_dir, self.clock_dir):
                os.makedirs(d, exist_ok=True)
        except OSError as e:
            kind = StoreAccessError if e.errno in UNWRITABLE else StoreError
            raise kind(f"cannot create store {self.path}: {e.strerror}", path=self.path) from None
        self._ready = True

    # Asked for several times per task: plain concatenation, not os.path.join.

    def result_path(self, task_hash: str) -> str:
        return f"{self.results_dir}{os.sep}{task_hash[:2]}{os.sep}{task_hash}"

    def failure_path(self, task_hash: str) -> str:
        return f"{self.failed_dir}{os.sep}{task_hash}.json"

    def lock_path(self, task_hash: str) -> str:
        return f"{self.locks_dir}{os.sep}{task_hash}"

    def tmp_name(self, label: str) -> str:
        # Host, pid and a per-process random part: unique across every worker
        # sharing the store, and cleanup can tell whose it was.
        return os.path.join(self.tmp_dir, f"{label}.{HOST}.{process.pid}.{process.unique()}")

    # -- atomic writes --------------------------------------------------

    def _remake(self, folder: str) -> None:
        """Make a folder of the store that should be there, saying so if it was not."""
        if not os.path.isdir(folder):
            os.makedirs(folder, exist_ok=True)
            log.warning("%s vanished from the store; made it again", folder)

    def write_atomic(self, final: str, data: bytes) -> None:
        tmp = self.tmp_name(os.path.basename(final))
        try:
            f = open(tmp, "wb")
        except FileNotFoundError:
            self._remake(self.tmp_dir)
            f = open(tmp, "wb")
        with f:
            f.write(data)
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        try:
            os.replace(tmp, final)
        except FileNotFoundError:
            self._remake(os.path.dirname(final))
            os.replace(tmp, final)
        if self.fsync:
            _fsync_dir(os.path.dirname(final))

    # -- results ----------------------------------------------------------

    def save_result(self, task_hash: str, value: Any, meta: dict) -> int:
        """Atomically store `value`; returns its size in bytes.

        A value that cannot be pickled raises what pickle raised; a write that
        fails (full disk, quota, permissions) raises StoreAccessError.
        """
        return self.save_payload(task_hash, encoding.Payload(value, meta))

    def save_payload(self, task_hash: str, payload: encoding.Payload) -> int:
        """Atomically store an encoded result; returns its size in bytes."""
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
                    self._remake(self.tmp_dir)
                    os.makedirs(shard_dir, exist_ok=True)
                    self._shards_made.add(shard_dir)
            if self.fsync:
                _fsync_dir(shard_dir)
            self._note_code(payload.meta)
        except OSError as e:
            raise StoreAccessError(f"cannot write result {final}: {e.strerror or e}", path=final) from e
        return size

    def _place(self, final: str, payload: encoding.Payload) -> int:
        size = self._write_anonymous(final, payload) if _anonymous.usable else None
        return self._write_via_tmp(final, payload) if size is None else size

    def _write_anonymous(self, final: str, payload: encoding.Payload) -> int | None:
        """Write an unnamed file and link it in place once complete.

        The file has no name until it is whole, so a crash leaves nothing
        behind, and it costs one directory entry instead of two plus a rename.
        It is made in tmp/, not in the result's shard: filesystems place a new
        inode near its folder's, and one folder keeps them together instead
        of spreading them over every shard's part of the disk. Returns None
        where the filesystem cannot (NFS has no O_TMPFILE): the caller then
        writes a named file in tmp/ and renames it.
        """
        try:
            fd = os.open(self.tmp_dir, os.O_TMPFILE | os.O_WRONLY, 0o644)
        except OSError as e:
            if e.errno not in _UNSUPPORTED or (e.errno == errno.ENOENT and not os.path.isdir(self.tmp_dir)):
                raise  # no tmp/ (deleted while we run) says nothing of O_TMPFILE: the caller makes it
            _anonymous.usable = False
            return None
        try:
            size = payload.write(fd)
            if self.fsync:
                os.fsync(fd)
            source = f"/proc/self/fd/{fd}"
            try:
                os.link(source, final, src_dir_fd=_anonymous.root_fd(), follow_symlinks=True)
            except FileExistsError:
                # Replacing a damaged result, or a retry: link under a temp name, rename over.
                tmp = self.tmp_name(os.path.basename(final))
                os.link(source, tmp, src_dir_fd=_anonymous.root_fd(), follow_symlinks=True)
                os.replace(tmp, final)
            except OSError as e:
                shard = os.path.dirname(final)
                if e.errno == errno.ENOENT and (shard not in self._shards_made or not os.path.isdir(shard)):
                    raise  # no shard folder (yet, or any more): the caller makes it and tries again
                if e.errno not in _UNSUPPORTED:
                    raise  # a full disk or an I/O error is the caller's to see
                _anonymous.usable = False  # no /proc, or linkat refused: use tmp/ from now on
                return None
        finally:
            os.close(fd)
        return size

    def _write_via_tmp(self, final: str, payload: encoding.Payload) -> int:
        tmp = self.tmp_name(os.path.basename(final))
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                size = payload.write(fd)
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return size

    # -- which code produced results -------------------------------------

    @staticmethod
    def code_tag(code: str | None, version: str | None) -> str:
        return f"{code}-v{version}" if version is not None else str(code)

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
        os.makedirs(folder, exist_ok=True)
        marker = os.path.join(folder, self.code_tag(key[1], key[2]))
        if not os.path.exists(marker):
            open(marker, "ab").close()

    def code_tags(self, name: str) -> set[str]:
        try:
            return set(os.listdir(os.path.join(self.code_dir, name)))
        except FileNotFoundError:
            return set()

    def forget_code(self, name: str, tag: str) -> None:
        try:
            os.unlink(os.path.join(self.code_dir, name, tag))
        except FileNotFoundError:
            pass
        except OSError as e:  # a read-only store: the marker only costs header reads while it stays
            log.debug("cannot remove code marker %s/%s: %s", name, tag, e.strerror)

    def has_result(self, task_hash: str) -> bool:
        return os.path.exists(self.result_path(task_hash))

    def load_value(self, task_hash: str, mmap: bool = False, fresh: bool = False) -> Any:
        """The stored value; FileNotFoundError when absent, CorruptResultError when damaged (checked against
        its checksum); `fresh` bypasses this client's page cache."""
        return encoding.load_value(self.result_path(task_hash), mmap=mmap, fresh=fresh)

    def damaged(self, hashes: Iterable[str]) -> Iterator[tuple[str, str]]:
        """(hash, why) of each stored result among `hashes` that fails its full check.

        Reads every byte of each; absent results are passed over.
        """
        for task_hash in hashes:
            try:
                encoding.verify(self.result_path(task_hash))
            except FileNotFoundError:
                continue
            except CorruptResultError as e:
                yield task_hash, str(e)

    def result_meta(self, task_hash: str) -> dict:
        return encoding.read_meta(self.result_path(task_hash))

    def metas(self, tasks: Iterable[Any], finished: set[str] | None = None,
              on_damaged: Callable[[Any, CorruptResultError], None] | None = None) -> Iterator[tuple[Any, dict]]:
        """(task, metadata) of each finished task, reading headers only; damaged ones are left out
        (and passed to `on_damaged`)."""
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

    def suspect_hashes(self) -> set[str]:
        """Hashes of results marked damaged (see damage.py): one listing."""
        try:
            return set(os.listdir(self.suspect_dir))
        except (FileNotFoundError, NotADirectoryError):
            return set()

    def moved_aside(self) -> set[str]:
        """Hashes of results moved to damaged/ (see damage.py): one listing."""
        try:
            return {name.split(".", 1)[0] for name in os.listdir(self.damaged_dir)}
        except (FileNotFoundError, NotADirectoryError):
            return set()

    # -- failures ---------------------------------------------------------

    def save_failure(self, task_hash: str, record: dict) -> None:
        path = self.failure_path(task_hash)
        try:
            self.ensure()
            self.write_atomic(path, json.dumps(record, indent=1).encode())
        except OSError as e:
            raise StoreAccessError(f"cannot write failure record {path}: {e.strerror or e}", path=path) from e

    def load_failure(self, task_hash: str) -> dict | None:
        try:
            return _read_json(self.failure_path(task_hash))
        except FileNotFoundError:
            return None
        except ValueError:
            return {"type": "?", "message": "(unreadable failure record)", "traceback": ""}

    def remove_failure(self, task_hash: str) -> bool:
        return remove_file(self.failure_path(task_hash))

    def failed_hashes(self) -> set[str]:
        try:
            return {n[:-5] for n in os.listdir(self.failed_dir) if n.endswith(".json")}
        except FileNotFoundError:
            return set()

    # -- claims and housekeeping -----------------------------------------

    def lock_names(self) -> list[str]:
        try:
            return os.listdir(self.locks_dir)
        except FileNotFoundError:
            return []

    def stop_requested(self) -> bool:
        return os.path.exists(self.stop_file)

    def tmp_files(self) -> Iterable[os.DirEntry]:
        try:
            yield from os.scandir(self.tmp_dir)
        except FileNotFoundError:
            return


def result_meta(task: Any, started: float, duration: float, worker: str, extra: dict | None = None) -> dict:
    meta = {"name": task.name, "hash": task.hash, "started": started,
            "finished": time.time(), "duration": duration, "host": HOST,
            "pid": process.pid, "worker": worker, "taskflow": __version__,
            "code": fingerprint(task.f), "version": task.version}
    if extra:
        meta.update(extra)
    return meta
