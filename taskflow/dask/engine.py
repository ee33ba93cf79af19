"""What runs on a Dask worker: one attempt at a task, claimed, run, saved and released there.

`attempt` is the function every future runs. It lives in this importable
module, never in the driver, so that Dask ships it by name; the taskfile it
needs is loaded once per Dask worker process and run (`Run`, keyed by the
driver's run id) and kept for every later task of that run. The claim is
taken here, through the store interface, under this Dask worker's identity:
a Dask worker that dies mid-task leaves a claim that goes stale like any
other worker's, and `taskflow status` counts it while it lives.

A task that fails, waits on a failure, meets a vanished input or is stopped
raises one of the `Outcome` exceptions below: Dask then runs none of its
dependents, and the driver reads which task the exception is about.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from .. import taskfile as taskfile_module
from ..encoding import Payload
from ..errors import CorruptResultError, StoreError, TaskfileError
from ..executors.base import Done, Failure, InputGone, InputUnreadable, run_task
from ..stores.base import Claim, Claims, Store
from ..stores.identity import HOST, result_meta
from ..stores.lease import Heartbeat
from ..task import Task

log = logging.getLogger(__name__)

# Results up to this size (encoded) go to their one consumer through Dask; larger ones, and
# those with several consumers, are read back from the store (see `attempt`).
HANDOFF_BYTES = 64 << 20
RUNS_KEPT = 4  # runs whose taskfile a Dask worker keeps loaded: a driver that died never says it is done
WAIT_FIRST, WAIT_MAX = 0.05, 1.0  # seconds between looks at a task another worker holds


class Outcome(Exception):
    """A task that produced no value here; `args[0]` is its hash, the rest what the driver needs.

    Plain positional arguments, so that it pickles as it is.
    """

    @property
    def task_hash(self) -> str:
        return str(self.args[0])


class TaskFailed(Outcome):
    """(hash, message, here): the task raised (recorded here) or a failure of it is recorded."""


class InputVanished(Outcome):
    """(hash, input hash): an input's result is gone from the store; the driver runs it again."""


class Stopped(Outcome):
    """(hash,): the run stopped (a failure without --keep-going, STOP, Ctrl-C) before it was claimed."""


_LOST = object()  # the claim was taken over while the task ran


class Saved:
    """What a future holds for a result its consumers read from the store."""

    __slots__ = ()

    def __reduce__(self) -> tuple:
        return (Saved, ())


@dataclass(frozen=True)
class RunRef:
    """What a Dask worker needs to run tasks of one run: sent with every task (a few hundred bytes)."""

    run_id: str
    taskfile: str       # absolute
    store: Store
    argv: tuple = ()
    lease: float = 300.0
    retry_cutoff: float = 0.0  # with --retry-failed: failures recorded before this are retried


@dataclass
class Run:
    """One run's state in one Dask worker process: the loaded taskfile, claims, journal, heartbeats."""

    ref: RunRef
    claims: Claims
    journal: Any
    index: dict[str, Task] = field(default_factory=dict)
    heartbeats: list[Heartbeat] = field(default_factory=list)  # idle ones
    all_heartbeats: list[Heartbeat] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopped: bool = False
    running: int = 0       # attempts in this process now
    finished: bool = False  # the driver is done with it: close once `running` is 0

    def task(self, h: str) -> Task:
        with self.lock:
            task = self.index.get(h)
            if task is None:
                # Below a barrier that was closed when this process last loaded the taskfile.
                self._load()
                task = self.index.get(h)
            if task is None:
                raise TaskfileError(f"no task {h[:12]} in the taskfile as this Dask worker loads it "
                                    "(does it declare tasks differently on this host?)", self.ref.taskfile)
            return task

    def _load(self) -> None:
        taskfile_module.by_command = True
        loaded = taskfile_module.load(self.ref.taskfile, self.ref.store, self.ref.argv)
        self.index = {t.hash: t for t in loaded.tasks}

    def heartbeat(self) -> Heartbeat:
        with self.lock:
            if self.heartbeats:
                return self.heartbeats.pop()
            beat = Heartbeat(self.claims)
            self.all_heartbeats.append(beat)
            return beat

    def idle(self, beat: Heartbeat) -> None:
        beat.watch(None)
        with self.lock:
            self.heartbeats.append(beat)

    def journaled(self, h: str) -> None:
        with self.lock:
            self.journal.add(h)

    def close(self) -> None:
        with self.lock:
            for beat in self.all_heartbeats:
                beat.stop()
            self.all_heartbeats.clear()
            self.heartbeats.clear()
            try:
                self.journal.close()
            finally:
                self.claims.close()


_runs: OrderedDict[str, Run] = OrderedDict()
_runs_lock = threading.Lock()
# Runs told to stop or finished, newest last: a task of theirs that comes late is not run.
_stopped: OrderedDict[str, None] = OrderedDict()
STOPPED_KEPT = 256


def engine_worker_id() -> str:
    """The id this Dask worker's claims carry: the array task or batch job it runs in, else host:pid.

    A Dask worker started by dask-jobqueue is a batch job of its own, not an
    array task: it is `<scheduler>:<job>.0`, so that `taskflow status` counts
    it against the job record `submit --dask` wrote.
    """
    from ..schedulers.environment import detect

    job = detect()
    if job.worker:
        return job.worker
    if job.scheduler and job.job_id:
        return f"{job.scheduler}:{job.job_id}.0"
    return f"{HOST}:{os.getpid()}"


def _run(ref: RunRef) -> Run:
    """This run's state in this process, made on its first task here (under _runs_lock)."""
    run = _runs.get(ref.run_id)
    if run is not None:
        return run
    run = Run(ref, ref.store.claims(ref.lease, worker=engine_worker_id()), ref.store.journal())
    run.stopped = ref.run_id in _stopped
    _runs[ref.run_id] = run
    while len(_runs) > RUNS_KEPT:
        _, old = _runs.popitem(last=False)
        old.finished = True
        if old.running == 0:
            old.close()
    return run


def stop(run_id: str) -> None:
    """Take no new task of this run in this process (the driver calls it on every Dask worker)."""
    with _runs_lock:
        _mark_stopped(run_id)
        run = _runs.get(run_id)
    if run is not None:
        run.stopped = True


def finish(run_id: str) -> None:
    """The run is over: flush its journal, stop its heartbeats, forget its taskfile, once the
    attempts still running here (cancelled ones run to their end) are done."""
    with _runs_lock:
        run = _runs.pop(run_id, None)
        _mark_stopped(run_id)
        if run is None:
            return
        run.stopped = run.finished = True
        idle = run.running == 0
    if idle:
        run.close()


def _mark_stopped(run_id: str) -> None:
    _stopped[run_id] = None
    while len(_stopped) > STOPPED_KEPT:
        _stopped.popitem(last=False)


def _enter(ref: RunRef) -> Run:
    with _runs_lock:
        run = _run(ref)
        run.running += 1
        return run


def _leave(run: Run) -> None:
    with _runs_lock:
        run.running -= 1
        last = run.finished and run.running == 0
    if last:
        run.close()


def attempt(ref: RunRef, h: str, inputs: dict[str, Any], handoff: bool, retrying: bool) -> Any:
    """Claim task `h`, run it with `inputs`, save the result or the failure, release the claim.

    `inputs` maps the hash of a dependency to what its future returned: the
    value itself, or `Saved` (read it from the store); dependencies missing
    from it finished before the run and are read from the store too. With
    `handoff` (the task has one consumer in this run) a value of at most
    HANDOFF_BYTES is returned for that consumer, else `Saved`. When another
    worker holds the task, waits for its outcome, or for its claim to go
    stale and takes it over.
    """
    run = _enter(ref)
    try:
        return _attempt(run, h, inputs, handoff, retrying)
    finally:
        _leave(run)


def _attempt(run: Run, h: str, inputs: dict[str, Any], handoff: bool, retrying: bool) -> Any:
    store = run.ref.store
    while True:
        claim = _claim(run, h, retrying)
        if claim is None:
            return Saved()  # finished elsewhere
        beat = run.heartbeat()
        try:
            beat.watch(claim)
            if store.has_result(h):
                return Saved()
            task = run.task(h)
            done = run_task(task, _lookup(store, inputs))
            outcome = _save(run, task, claim, done, handoff, retrying)
        finally:
            run.idle(beat)
            run.claims.release(claim)
        if outcome is not _LOST:
            return outcome
        # Another worker took the claim over while the task ran: its outcome counts; wait for it.


def _claim(run: Run, h: str, retrying: bool) -> Claim | None:
    """Our claim on `h`, or None when its result is in place; raises an Outcome when it failed
    elsewhere or the run stopped."""
    store, claims = run.ref.store, run.claims
    wait = WAIT_FIRST
    take_over = False
    while True:
        if store.has_result(h):
            return None
        recorded = store.failure_time(h)
        if recorded is not None and not (retrying and recorded < run.ref.retry_cutoff):
            raise TaskFailed(h, "a failure of it is recorded", False)
        if run.stopped:
            raise Stopped(h)
        claim = claims.claim(h, take_over=take_over)
        if claim is not None:
            return claim
        info = claims.inspect(h)
        if info is None:
            continue  # released just now
        if info.stale:
            take_over = True
            continue
        take_over = False
        time.sleep(wait)
        wait = min(WAIT_MAX, wait * 2, run.ref.lease / 8)


def _lookup(store: Store, inputs: dict[str, Any]) -> Any:
    def lookup(dep: Task) -> Any:
        given = inputs.get(dep.hash, Saved)
        if not isinstance(given, Saved) and given is not Saved:
            return given
        try:
            return store.load_value(dep.hash)
        except FileNotFoundError:
            raise InputGone(dep.hash) from None
        except StoreError as e:
            raise InputUnreadable(e) from None
        except CorruptResultError:
            try:  # this client's cache may hold pages of a file another client replaced
                return store.load_value(dep.hash, fresh=True)
            except FileNotFoundError:
                raise InputGone(dep.hash) from None
            except CorruptResultError:
                store.move_aside(dep.hash)
                raise InputGone(dep.hash) from None
    return lookup


def _save(run: Run, task: Task, claim: Claim, done: Done, handoff: bool, retrying: bool) -> Any:
    store, claims = run.ref.store, run.claims
    if done.gone is not None:
        raise InputVanished(task.hash, done.gone)
    if done.failure is None:
        try:
            payload = Payload(done.value, result_meta(task, done.started, done.seconds, claims.worker,
                                                      {"max_rss_bytes": done.peak_bytes}))
        except BaseException as e:  # a result that cannot be encoded is the task's failure
            done.failure = Failure.of(e)
    if not claims.holds(claim):
        log.warning("lost the claim on %s (%s) while running it: %s; discarding this outcome",
                    task.name, task.hash[:12], claim.why or "another worker took it over")
        return _LOST
    if done.failure is not None:
        error = done.failure.exception
        message = str(error) or type(error).__name__
        store.save_failure(task.hash, {
            "name": task.name, "hash": task.hash, "type": type(error).__name__, "message": message,
            "traceback": done.failure.traceback, "host": HOST, "pid": os.getpid(), "worker": claims.worker,
            "started": done.started, "time": time.time()})
        raise TaskFailed(task.hash, f"{type(error).__name__}: {message}", True)
    size = store.save_payload(task.hash, payload)
    if retrying:
        store.remove_failure(task.hash)
    run.journaled(task.hash)
    _report(run.ref.run_id, task.hash, done.seconds)
    return done.value if handoff and size <= HANDOFF_BYTES else Saved()


def _report(run_id: str, h: str, seconds: float) -> None:
    """Tell the driver this process ran `h`, and for how long: a Dask event, which reaches the
    driver before the future's own news (both travel the worker's one batched stream)."""
    from distributed import get_worker

    try:
        get_worker().log_event(topic(run_id), (h, seconds))
    except ValueError:  # not on a Dask worker (a test calling `attempt` itself)
        pass


def topic(run_id: str) -> str:
    """The Dask event topic on which the Dask workers of a run say what they ran."""
    return f"taskflow-ran-{run_id}"
