"""The ipyparallel executor: ready tasks run on the engines of a running IPython-parallel cluster.

`taskflow execute FILE --ipp [PROFILE | CONNECTION_FILE]`. The driver keeps
the ready set; each task goes (with others, when they are short) to the
engine with the fewest messages queued, as a call of
`taskflow.engine.attempt_all` with the task's hash, and that engine claims it
in the store, runs it, saves its result or failure and releases the claim
(this executor sets `claims`). Only hashes and short reports travel through
the controller: inputs and results stay in the store, which engines and
driver share.

ipyparallel is imported only here, and only when an executor is made
(`pip install 'taskflow[ipp]'`).
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import EngineError, UsageError
from ..signals import Signals
from .base import RECORDED, RELEASED, TAKEN, Done, Executor, Failure, Job, Setup

RAISED = "raised"  # taskflow.engine.RAISED: an error of taskflow's on the engine, raised again here

if TYPE_CHECKING:
    from concurrent.futures import Future

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'taskflow[ipp]'"
FIRST_ENGINE_WAIT = 600.0  # seconds to wait for a first engine (engines started as batch jobs may queue)
CHECK_ENGINES_EVERY = 30.0  # seconds without a finished task after which the executor looks for engines
# Tasks handed out per engine at most, running or queued at the controller. Short tasks go in
# batches, one message for several: a round trip through the controller costs milliseconds.
JOBS_PER_ENGINE = 32
ENGINE_QUEUE = 2  # messages an engine holds at once: the one it runs, and the next
BATCH_SECONDS = 0.05  # a batch holds about this much work, by the tasks' times so far
PER_TASK_SECONDS = 0.0005  # what an engine spends on a task besides running it: claim, save, release


class TaskRaised(Exception):
    """A task's exception on an engine, as the engine recorded it (the exception itself stays there)."""

    def __init__(self, type_name: str, message: str):
        super().__init__(message)
        self.type_name = type_name


def import_ipyparallel() -> Any:
    """The ipyparallel module; EngineError naming the install command without it."""
    try:
        import ipyparallel
    except ImportError:
        raise EngineError(f"--ipp needs ipyparallel, which is not installed: {INSTALL_HINT}") from None
    return ipyparallel


def connection_file(cluster: str | None) -> str:
    """The controller's connection file that `cluster` names: the file itself, or a profile whose
    security folder holds ipcontroller-client.json (None: the default profile)."""
    if cluster and (cluster.endswith(".json") or os.path.sep in cluster or os.path.isfile(cluster)):
        if not os.path.isfile(cluster):
            raise EngineError(f"--ipp {cluster}: no such connection file (ipcontroller writes "
                              "ipcontroller-client.json into its profile's security folder)", engine=cluster)
        return cluster
    from IPython.core.profiledir import ProfileDir, ProfileDirError
    from IPython.paths import get_ipython_dir

    name = cluster or "default"
    try:
        folder = ProfileDir.find_profile_dir_by_name(get_ipython_dir(), name).security_dir
    except ProfileDirError:
        raise EngineError(f"--ipp {name}: no IPython profile {name!r} in {get_ipython_dir()} (give the profile "
                          "that `ipcontroller --profile=NAME` uses, or its ipcontroller-client.json)",
                          engine=name) from None
    path = os.path.join(folder, "ipcontroller-client.json")
    if not os.path.isfile(path):
        raise EngineError(f"--ipp {name}: no controller is running for profile {name!r} ({path} is missing: "
                          "start `ipcontroller`, see the README)", engine=name)
    return path


def connect(cluster: str | None, timeout: float = 10.0) -> Any:
    """A Client of the cluster `cluster` names (see `connection_file`)."""
    ipp = import_ipyparallel()
    path = connection_file(cluster)
    try:
        return ipp.Client(path, timeout=timeout)
    except Exception as e:  # TimeoutError for a controller that does not answer, ValueError for a bad file
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise EngineError(f"--ipp: cannot connect to the ipyparallel controller of {path}: {reason} "
                          "(is `ipcontroller` still running?)", engine=cluster) from None


class IppExecutor(Executor):
    """Hands each job to the engines of one ipyparallel cluster; the engines claim, run and save.

    `spec` (taskflow.engine.EngineSpec) tells the engines the taskfile and the
    store. Slots: JOBS_PER_ENGINE per engine connected when the pass starts
    (engines that connect later share them), sent in batches (`_send`). On
    Ctrl-C or SIGTERM, jobs not yet started are aborted; running ones finish
    on their engines, which save them.
    """

    name = "ipp"
    claims = True

    @classmethod
    def arguments(cls, setup: Setup, given: Mapping[str, str]) -> dict[str, Any]:
        """`cluster=PROFILE|CONNECTION_FILE` (the default profile without it), and the engines'
        EngineSpec of the run."""
        unknown = sorted(set(given) - {"cluster"})
        if unknown:
            raise UsageError(f"executor 'ipp' takes --executor-option cluster=PROFILE|CONNECTION_FILE, "
                             f"not {', '.join(unknown)}")
        from ..engine import spec_for

        spec = spec_for(setup.taskfile, setup.store, setup.lease, setup.argv, setup.fsync, setup.max_attempts)
        return {"spec": spec, "cluster": given.get("cluster") or None}

    def __init__(self, signals: Signals, spec: Any = None, cluster: str | None = None,
                 first_engine_wait: float = FIRST_ENGINE_WAIT) -> None:
        super().__init__(signals)
        if spec is None:
            raise EngineError("the ipp executor needs the taskfile and store its engines work on "
                              "(taskflow execute FILE --ipp)")
        from ..engine import attempt_all  # shipped by reference: engines import taskflow.engine

        self._attempt = attempt_all
        self.spec = spec
        self.client = connect(cluster)
        try:
            engines = self._wait_for_engines(first_engine_wait)
        except BaseException:
            self.client.close()
            raise
        self.engines = engines
        self.slots = JOBS_PER_ENGINE * engines
        self._pending: list[Job] = []  # submitted, not yet sent: sent in batches when complete() is called
        self._running: dict[Future, list[Job]] = {}
        self._engine_of: dict[Future, int] = {}  # which engine each message went to
        self._queued: dict[int, int] = {}  # engine id: its messages not yet back
        self._task_seconds: float | None = None  # a running mean of the tasks' times on the engines
        log.info("running tasks on %d ipyparallel engines", engines)

    def _wait_for_engines(self, limit: float) -> int:
        start = time.monotonic()
        said = 0.0
        while not self.client.ids:
            waited = time.monotonic() - start
            if waited >= limit:
                raise EngineError(f"--ipp: no engine connected to the controller within {limit:g}s "
                                  "(start some with `ipengine`, see the README)")
            if waited - said >= 30:
                log.info("waiting for an ipyparallel engine to connect (%.0fs so far)", waited)
                said = waited
            self.signals.allow()
            try:
                time.sleep(0.2)
            finally:
                self.signals.interruptible = False
        return len(self.client.ids)

    def submit(self, job: Job) -> None:
        self._pending.append(job)

    def _batch_size(self) -> int:
        """Tasks per message: about BATCH_SECONDS of work (one task until times are known), and at most
        half an engine's share of the slots, so that each engine has a batch queued behind its own."""
        if self._task_seconds is None:
            return 1
        return max(1, min(int(BATCH_SECONDS / (self._task_seconds + PER_TASK_SECONDS)), JOBS_PER_ENGINE // 2))

    def _send(self) -> None:
        """Send what is pending, in batches, each to the engine with the fewest messages queued.

        Straight to an engine, not through the controller's load balancer: that one gives an
        engine its next task only once it has the last one's result back (its high-water mark of
        1), a round trip of milliseconds, tens of them on a busy machine, between any two tasks.
        Here an engine has its next message queued while it runs one (ENGINE_QUEUE), and an
        incomplete batch waits while the engine has work.
        """
        while self._pending:
            ids = self.client.ids or list(self._queued)
            engine = min(ids, key=lambda i: self._queued.get(i, 0))
            queued = self._queued.get(engine, 0)
            size = self._batch_size()
            if queued >= ENGINE_QUEUE or (queued and len(self._pending) < size):
                return
            batch, self._pending = self._pending[:size], self._pending[size:]
            items = [(job.task.hash, job.take_over, job.retry_cutoff) for job in batch]
            future = self.client[engine].apply_async(self._attempt, self.spec, items)
            self._running[future] = batch
            self._engine_of[future] = engine
            self._queued[engine] = queued + 1

    def complete(self) -> list[Done]:
        import concurrent.futures  # here: the registry of executors is imported by every worker

        self._send()
        waited = 0.0
        while True:
            self.signals.allow()
            try:
                finished, _ = concurrent.futures.wait(list(self._running), timeout=CHECK_ENGINES_EVERY,
                                                      return_when=concurrent.futures.FIRST_COMPLETED)
            finally:
                self.signals.interruptible = False
            if finished:
                break
            waited += CHECK_ENGINES_EVERY
            if not self.client.ids:  # every engine died or left: what was sent to them comes back failed
                log.warning("no ipyparallel engine is connected: %d tasks wait at the controller (%.0fs so far)",
                            sum(map(len, self._running.values())), waited)
        done: list[Done] = []
        for future in finished:
            engine = self._engine_of.pop(future)
            self._queued[engine] -= 1
            if not self._queued[engine]:
                del self._queued[engine]
            done += self._batch_done(self._running.pop(future), future)
        return done

    def _batch_done(self, batch: list[Job], future: Any) -> list[Done]:
        ipp = import_ipyparallel()
        try:
            reports = future.get()
        except (ipp.error.RemoteError, ipp.error.EngineError) as e:
            name = getattr(e, "ename", type(e).__name__)
            if name != "EngineError":  # not the task's (attempt records those): taskflow's on the engine
                raise EngineError(f"on an ipyparallel engine, attempting {batch[0].task.name}: {name}: "
                                  f"{getattr(e, 'evalue', e)}") from None
            # The engine died: the claim of the task it ran goes stale like any dead worker's, and the
            # worker takes it over once it has; the others of the batch were never claimed.
            log.warning("the ipyparallel engine running %s (%s) died (%s); its claim goes stale and the task "
                        "runs again", batch[0].task.name, batch[0].task.hash[:12], getattr(e, "evalue", e))
            return [Done(job.task, time.time(), settled=TAKEN) for job in batch]
        for report in reports:
            seconds = report[2]
            self._task_seconds = seconds if self._task_seconds is None else 0.8 * self._task_seconds + 0.2 * seconds
        # Fewer reports than jobs only after a RAISED one, which _done raises.
        return [self._done(job, report) for job, report in zip(batch, reports, strict=False)]

    def _done(self, job: Job, report: tuple) -> Done:
        settled, started, seconds, peak, detail = report
        if settled == RAISED:
            raise detail
        if settled == RECORDED:
            type_name, message, traceback = detail
            return Done(job.task, started, seconds, peak, failure=Failure(TaskRaised(type_name, message), traceback),
                        settled=settled)
        return Done(job.task, started, seconds, peak, gone=detail if settled == RELEASED else None, settled=settled)

    def close(self) -> None:
        waiting = [f for f in self._running if not f.done()]
        self._running.clear()
        self._pending.clear()
        self._engine_of.clear()
        self._queued.clear()
        try:
            if waiting:
                self.client.abort(waiting, block=False)  # not started yet: never claimed
        except Exception as e:  # the controller went away: nothing is left to abort
            log.debug("could not abort %d queued tasks: %s", len(waiting), e)
        finally:
            self.client.close()
