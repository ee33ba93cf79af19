"""The ipyparallel executor: ready tasks run on the engines of a running IPython-parallel cluster.

`taskflow execute FILE --ipp [PROFILE | CONNECTION_FILE]`. The driver keeps
the ready set; each task goes to a load-balanced view as a call of
`taskflow.engine.attempt` with the task's hash, and the engine that takes it
claims it in the store, runs it, saves its result or failure and releases
the claim (this executor sets `claims`). Only the hash and a short report
travel through the controller: inputs and results stay in the store, which
engines and driver share.

ipyparallel is imported only here, and only when an executor is made
(`pip install 'taskflow[ipp]'`).
"""
from __future__ import annotations

import concurrent.futures
import logging
import os
import time
from typing import Any

from ..errors import EngineError
from ..signals import Signals
from .base import RECORDED, RELEASED, TAKEN, Done, Executor, Failure, Job

RAISED = "raised"  # taskflow.engine.RAISED: an error of taskflow's on the engine, raised again here

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'taskflow[ipp]'"
FIRST_ENGINE_WAIT = 600.0  # seconds to wait for a first engine (engines started as batch jobs may queue)
CHECK_ENGINES_EVERY = 30.0  # seconds without a finished task after which the executor looks for engines
JOBS_PER_ENGINE = 2  # tasks handed out per engine: one running, one queued at the controller


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
    store. Slots: two per engine connected when the pass starts, so that an
    engine finds its next task waiting when it finishes one; engines that
    connect later are used too. On Ctrl-C or SIGTERM, jobs not yet started
    are aborted; running ones finish on their engines, which save them.
    """

    name = "ipp"
    claims = True

    def __init__(self, signals: Signals, spec: Any = None, cluster: str | None = None,
                 first_engine_wait: float = FIRST_ENGINE_WAIT) -> None:
        super().__init__(signals)
        if spec is None:
            raise EngineError("the ipp executor needs the taskfile and store its engines work on "
                              "(taskflow execute FILE --ipp)")
        from ..engine import attempt  # shipped by reference: engines import taskflow.engine

        self._attempt = attempt
        self.spec = spec
        self.client = connect(cluster)
        try:
            engines = self._wait_for_engines(first_engine_wait)
            self.view = self.client.load_balanced_view()
        except BaseException:
            self.client.close()
            raise
        self.slots = JOBS_PER_ENGINE * engines
        self._running: dict[concurrent.futures.Future, Job] = {}
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
        future = self.view.apply_async(self._attempt, self.spec, job.task.hash, job.take_over, job.retry_cutoff)
        self._running[future] = job

    def complete(self) -> list[Done]:
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
            if not self.client.ids:  # every engine died or left: the tasks wait at the controller
                log.warning("no ipyparallel engine is connected: %d tasks wait at the controller (%.0fs so far)",
                            len(self._running), waited)
        return [self._done(self._running.pop(future), future) for future in finished]

    def _done(self, job: Job, future: Any) -> Done:
        ipp = import_ipyparallel()
        try:
            report = future.get()
        except (ipp.error.RemoteError, ipp.error.EngineError) as e:
            name = getattr(e, "ename", type(e).__name__)
            if name != "EngineError":  # not the task's (attempt records those): taskflow's on the engine
                raise EngineError(f"on an ipyparallel engine, attempting {job.task.name}: {name}: "
                                  f"{getattr(e, 'evalue', e)}") from None
            # The engine died with the task: its claim goes stale like any dead worker's, and the
            # worker takes the task over once it has.
            log.warning("the ipyparallel engine running %s (%s) died (%s); its claim goes stale and the task "
                        "runs again", job.task.name, job.task.hash[:12], getattr(e, "evalue", e))
            return Done(job.task, time.time(), settled=TAKEN)
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
        try:
            if waiting:
                self.client.abort(waiting, block=False)  # not started yet: never claimed
        except Exception as e:  # the controller went away: nothing is left to abort
            log.debug("could not abort %d queued tasks: %s", len(waiting), e)
        finally:
            self.client.close()
