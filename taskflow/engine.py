"""What runs on an engine of a cluster taskflow does not start itself (ipyparallel): one whole attempt.

An executor with `claims` set ships `attempt` by reference (it is importable
as `taskflow.engine.attempt`) with an `EngineSpec` and a task hash. On the
engine, `attempt` claims the task through the store interface, renews the
claim from a heartbeat thread while the task runs, saves its result or its
failure, and releases the claim, exactly as a worker would: a normal
`taskflow execute` worker on the same store sees an engine as one more
worker, and a dead engine leaves a claim that goes stale like any other.

Each engine process loads the taskfile once (again only when a barrier
opened and a hash is new to it), from the folder the driver ran in, and
keeps the store, its claims and the heartbeat for every task after.
Inputs are read from the store there: nothing but the hash and a short
report travel between the driver and the engine.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from . import taskfile as taskfile_module
from .encoding import Payload
from .errors import CorruptResultError, EngineError, StoreError, TaskflowError
from .executors.base import (FAILED_BEFORE, FINISHED, LOST, RECORDED, RELEASED, SAVED, TAKEN, Failure, InputGone,
                             InputUnreadable, run_task)
from .stores import open_store
from .stores.base import Claims, Store
from .stores.identity import HOST, failure_record, result_meta
from .stores.lease import Heartbeat
from .task import Task
from .worker import died, retries

log = logging.getLogger(__name__)

# The report of an attempt that raised one of taskflow's errors or an OSError on the engine: the
# driver raises it again, and stops as a worker would (exit 4 for the store, 2 for the taskfile).
RAISED = "raised"


@dataclass(frozen=True)
class EngineSpec:
    """What an engine needs to run tasks of one taskfile on one store, as the driver sees them."""

    taskfile: str                 # absolute path
    cwd: str                      # the driver's working folder: the taskfile's relative paths mean the same
    store: str                    # the store's url (no password)
    lease: float
    argv: tuple = ()
    fsync: bool = False
    environment: tuple = field(default=())  # (name, value) pairs the store needs (Store.worker_environment)
    max_attempts: int = 3         # --max-attempts: a task whose worker died this often is failed


class Session:
    """One engine process's taskfile, store, claims and heartbeat for one EngineSpec."""

    def __init__(self, spec: EngineSpec):
        self.spec = spec
        os.environ.update(dict(spec.environment))
        self.store: Store = open_store(spec.store, fsync=spec.fsync)
        self.claims: Claims = self.store.claims(spec.lease)
        self.heartbeat = Heartbeat(self.claims)
        self.tasks: dict[str, Task] = {}
        self.load()

    def load(self) -> None:
        """(Re)load the taskfile: every task it declares up to the first closed barrier."""
        # Always: the folder the engine was in may be another run's, removed since (getcwd fails there).
        os.chdir(self.spec.cwd)
        loaded = taskfile_module.load(self.spec.taskfile, self.store, self.spec.argv)
        self.tasks = {t.hash: t for t in loaded.tasks}

    def task(self, task_hash: str) -> Task:
        if task_hash not in self.tasks:
            self.load()  # a barrier opened since the last load
        try:
            return self.tasks[task_hash]
        except KeyError:
            raise EngineError(f"the engine on {HOST} (pid {os.getpid()}) loaded {self.spec.taskfile} and found no "
                              f"task {task_hash[:12]}: does it see the same files, arguments and Python packages "
                              f"as the driver?", engine=HOST) from None

    def lookup(self, dep: Task) -> Any:
        """A dependency's value, from the store (the engine holds no result of its own)."""
        try:
            return self.store.load_value(dep.hash)
        except FileNotFoundError:
            raise InputGone(dep.hash) from None
        except StoreError as e:
            raise InputUnreadable(e) from None
        except CorruptResultError as e:
            try:
                return self.store.load_value(dep.hash, fresh=True)  # this client may have cached stale pages
            except FileNotFoundError:
                raise InputGone(dep.hash) from None
            except CorruptResultError:
                from .damage import move_aside
                if move_aside(self.store, dep.hash) is not None:
                    log.warning("%s; moved aside, to be computed again", e)
                raise InputGone(dep.hash) from None


_sessions: dict[EngineSpec, Session] = {}
_lock = threading.Lock()


def session(spec: EngineSpec) -> Session:
    """The engine's session for `spec`, made (and the taskfile loaded) on first use."""
    with _lock:
        found = _sessions.get(spec)
        if found is None:
            found = _sessions[spec] = Session(spec)
        return found


def attempt(spec: EngineSpec, task_hash: str, take_over: bool = False,
            retry_cutoff: float | None = None) -> tuple:
    """Claim, run, save and release task `task_hash` here; a report the executor turns into a Done.

    The report is (settled, started, seconds, peak_bytes, detail): detail is
    the gone input's hash for RELEASED, (type name, message, traceback) for
    RECORDED, else None. `take_over` and `retry_cutoff` are as in `Job`.
    A store that cannot be read or written raises (StoreError, OSError): the
    driver stops, as a worker would: the report is then (RAISED, 0, 0, 0, the error).
    """
    try:
        return _attempt(session(spec), task_hash, take_over, retry_cutoff)
    except (TaskflowError, OSError) as e:
        e.__traceback__ = None  # pickled back to the driver: tracebacks do not pickle
        return RAISED, 0.0, 0.0, 0, e


def attempt_all(spec: EngineSpec, items: list[tuple[str, bool, float | None]]) -> list[tuple]:
    """`attempt` for each (hash, take_over, retry_cutoff), in order: one message for several short tasks.
    Stops after a RAISED report, which is then the last."""
    reports = []
    for task_hash, take_over, retry_cutoff in items:
        reports.append(attempt(spec, task_hash, take_over, retry_cutoff))
        if reports[-1][0] == RAISED:
            break
    return reports


def _attempt(s: Session, task_hash: str, take_over: bool, retry_cutoff: float | None) -> tuple:
    task = s.task(task_hash)
    store, claims = s.store, s.claims
    if store.has_result(task_hash):
        return FINISHED, 0.0, 0.0, 0, None
    claim = claims.claim(task_hash, take_over=take_over)
    if claim is None:
        return TAKEN, 0.0, 0.0, 0, None
    s.heartbeat.watch(claim)
    try:
        if store.has_result(task_hash):
            return FINISHED, 0.0, 0.0, 0, None
        recorded = store.failure_time(task_hash)
        if recorded is not None and (retry_cutoff is None or recorded >= retry_cutoff):
            return FAILED_BEFORE, 0.0, 0.0, 0, None
        if claim.died >= s.spec.max_attempts:  # workers died running it --max-attempts times
            record = died.failure_record(task, store.deaths(task_hash), claim.died, claims.worker)
            store.save_failure(task_hash, record)
            store.forget_deaths(task_hash)
            return RECORDED, 0.0, 0.0, 0, ("WorkerDied", record["message"], "")
        tries: dict[str, list[dict]] = {}
        done = run_task(task, s.lookup)
        while done.failure is not None and retries.again(done, tries):  # retries=: again, in this claim
            done = run_task(task, s.lookup)
        earlier = retries.recorded(tries.get(task_hash))
        if done.gone is not None:
            return RELEASED, done.started, 0.0, 0, done.gone
        failure = done.failure
        if failure is None:
            try:
                payload = Payload(done.value, result_meta(task, done.started, done.seconds, claims.worker,
                                                          {"max_rss_bytes": done.peak_bytes, **earlier}))
            except Exception as e:  # a result that cannot be encoded is the task's failure
                failure = Failure.of(e)
        if not claims.holds(claim):
            log.warning("lost the claim on %s (%s) while running it: %s", task.name, task_hash[:12],
                        claim.why or "another worker took it over")
            return LOST, done.started, done.seconds, done.peak_bytes, None
        if failure is not None:
            raised = failure.exception
            store.save_failure(task_hash, {**failure_record(task, raised, failure.traceback, done.started,
                                                            claims.worker), **earlier})
            return (RECORDED, done.started, done.seconds, done.peak_bytes,
                    (type(raised).__name__, str(raised) or type(raised).__name__, failure.traceback))
        store.save_payload(task_hash, payload)
        if claim.died:  # finished at last: earlier deaths count no more
            store.forget_deaths(task_hash)
        return SAVED, done.started, done.seconds, done.peak_bytes, None
    finally:
        s.heartbeat.watch(None)
        claims.release(claim)


def spec_for(taskfile: str, store: Store, lease: float, argv: tuple = (), fsync: bool = False,
             max_attempts: int = 3) -> EngineSpec:
    """The EngineSpec of running `taskfile` on `store` from here (this folder, this store's secrets)."""
    return EngineSpec(os.path.abspath(taskfile), os.getcwd(), store.url, lease, tuple(argv), fsync,
                      tuple(sorted(store.worker_environment().items())), max_attempts)
