"""One machine shared by the worker processes of `execute --jobs N`: the declared cpus, memory and
GPUs of the tasks running side by side never add up to more than the machine has.

The pool makes a folder holding `ledger.json`: the machine's cpus, memory and GPU devices, and
every reservation, by holder. Each worker process is a holder: it creates `holder.<pid>.<random>`
and keeps an exclusive flock on it while it lives. Before it claims a task that declares
resources it reserves them (`reserve`), and it returns them when the task is back (`release`).
Every change happens under an exclusive flock of `ledger.lock`, so reading what is free and
taking it are one step for the processes of the machine.

A holder killed with kill -9 cannot return what it reserved, but the kernel drops its flock as
it dies: whoever changes the ledger next finds it can lock that holder's file, and drops its
reservations then. Nothing is needed from the dead process, nor from the pool.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import UsageError
from ..resources import Resources
from ..stores.identity import process

log = logging.getLogger(__name__)

LEDGER = "ledger.json"
LOCK = "ledger.lock"


@dataclass(frozen=True)
class Reservation:
    key: str
    cpus: int = 0
    memory: int = 0                 # megabytes
    gpus: tuple[str, ...] = ()      # device ids handed to the task


def limited(needs: Resources) -> bool:
    """Whether a task declaring `needs` takes anything from the share (undeclared is unlimited)."""
    return needs.cpus is not None or needs.memory is not None or bool(needs.gpus)


def new_folder() -> str:
    """A new private folder for a share, in this machine's temporary folder ($TMPDIR, $TEMP or $TMP, else /tmp):
    local, as the flocks need. UsageError when no temporary folder can be written."""
    # Made here rather than with tempfile, whose imports (shutil, random) cost every --jobs run 2 ms.
    tried = []
    candidates = [os.environ.get(name) for name in ("TMPDIR", "TEMP", "TMP")] + ["/tmp", "/var/tmp"]
    # Absolute: a task that changes the working folder must not lose the share.
    for parent in dict.fromkeys(os.path.abspath(p) for p in candidates if p):
        while True:
            folder = os.path.join(parent, f"taskflow-share-{process.pid}-{process.unique()}")
            try:
                os.mkdir(folder, 0o700)
                return folder
            except FileExistsError:
                continue
            except OSError as e:
                tried.append(f"{parent}: {e.strerror}")
                break
    raise UsageError("--jobs needs a temporary folder its workers share, and none could be made ("
                     + "; ".join(tried) + "): set TMPDIR to a writable folder on this machine")


def remove(folder: str) -> None:
    """Remove a share's folder, with what its holders left in it (the files of killed ones). What
    cannot be removed is left, and said in the debug log: the pool ends as it would have."""
    try:
        for name in os.listdir(folder):
            try:
                os.unlink(os.path.join(folder, name))
            except FileNotFoundError:
                pass  # a holder ending meanwhile removed its own file
        os.rmdir(folder)
    except OSError as e:
        log.debug("machine share %s not removed: %s", folder, e)


def create(folder: str, cpus: int, memory: int | None, gpus: tuple[str, ...]) -> None:
    """Write a new ledger in `folder` (made before any holder starts) for a machine of this size."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, LEDGER), "w") as f:
        json.dump({"cpus": cpus, "memory": memory, "gpus": list(gpus), "held": {}}, f)


class MachineShare:
    """One worker process's view of the ledger in `folder`."""

    def __init__(self, folder: str):
        self.folder = folder
        self.holder = f"{process.pid}.{process.unique()}"
        path = os.path.join(folder, f"holder.{self.holder}")
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # held until this process ends, however it ends
        self._count = 0
        self.devices: tuple[str, ...] = ()  # the GPUs this process had last: asked for first again

    def reserve(self, needs: Resources) -> Reservation | None:
        """Take what `needs` declares if that much is free now; None if not (try again later)."""
        with self._ledger() as ledger:
            held = ledger["held"]
            used_cpus = sum(r["cpus"] for mine in held.values() for r in mine.values())
            used_memory = sum(r["memory"] for mine in held.values() for r in mine.values())
            busy = {d for mine in held.values() for r in mine.values() for d in r["gpus"]}
            cpus, memory, gpus = needs.cpus or 0, needs.memory or 0, needs.gpus or 0
            if used_cpus + cpus > ledger["cpus"]:
                return None
            if ledger["memory"] is not None and used_memory + memory > ledger["memory"]:
                return None
            free = [d for d in self.devices if d not in busy]
            free += [d for d in ledger["gpus"] if d not in busy and d not in free]
            if gpus > len(free):
                return None
            self._count += 1
            taken = Reservation(f"{self.holder}.{self._count}", cpus, memory, tuple(free[:gpus]))
            held.setdefault(self.holder, {})[taken.key] = {"cpus": cpus, "memory": memory,
                                                           "gpus": list(taken.gpus)}
        if taken.gpus:
            self.devices = taken.gpus
        return taken

    def release(self, reservation: Reservation) -> None:
        with self._ledger() as ledger:
            mine = ledger["held"].get(self.holder, {})
            mine.pop(reservation.key, None)
            if not mine:
                ledger["held"].pop(self.holder, None)

    def close(self) -> None:
        """Return everything this process holds and stop being a holder."""
        try:
            with self._ledger() as ledger:
                ledger["held"].pop(self.holder, None)
        except OSError as e:  # the pool removed the folder already
            log.debug("machine share %s: %s", self.folder, e)
        try:
            os.unlink(os.path.join(self.folder, f"holder.{self.holder}"))
        except OSError:
            pass
        os.close(self._fd)

    @contextmanager
    def _ledger(self) -> Iterator[dict]:
        """The ledger under the lock, without the reservations of dead holders; written back after."""
        with open(os.path.join(self.folder, LOCK), "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            path = os.path.join(self.folder, LEDGER)
            with open(path) as f:
                ledger = json.load(f)
            for holder in [h for h in ledger["held"] if h != self.holder]:
                if _dead(os.path.join(self.folder, f"holder.{holder}")):
                    log.info("machine share: the reservations of a worker that died (%s) are free again",
                             holder.split(".")[0])
                    del ledger["held"][holder]
            yield ledger
            tmp = f"{path}.{self.holder}"
            with open(tmp, "w") as f:
                json.dump(ledger, f)
            os.replace(tmp, path)


def _dead(path: str) -> bool:
    """Whether the holder whose file this is has ended: its flock is gone (or the file is)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    finally:
        os.close(fd)  # also drops the lock just taken
    try:
        os.unlink(path)
    except OSError:
        pass
    return True
