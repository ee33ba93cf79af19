"""The Dask executor: each job a future on a Dask cluster, running `engine.attempt` there.

It keeps the executor contract of `taskflow.executors.base` with one
difference the runner (runner.py) is built for: the claim is taken on the
Dask worker, inside the future, not by whoever calls `submit`. A job's
`inputs` map each dependency's hash to the future of that dependency, so
Dask starts a task only once its inputs are there and hands over the values
it holds. `complete` never fetches a value: a `DaskDone` says whether the task
ran in this run (and for how long, from the Dask worker's event) or was
finished by someone else; a failure comes back as its `Outcome` exception.
"""
from __future__ import annotations

import queue
import time
from collections.abc import Mapping
from typing import Any

from ..executors.base import Done, Executor, Failure, Job
from ..signals import Signals
from ..task import Task
from . import engine

WAKE = 0.5  # seconds: how often `complete` lets signals and the runner's checks in


class DaskJob(Job):
    """A task to run as a future: `inputs` maps dependency hashes to their futures."""

    __slots__ = ("handoff", "retrying", "attempt")

    def __init__(self, task: Task, inputs: Mapping[str, Any], handoff: bool = False, retrying: bool = False,
                 attempt: int = 0):
        super().__init__(task, inputs)
        self.handoff = handoff    # one consumer in this run: hand it the value through Dask
        self.retrying = retrying  # a failure of it recorded before this run is retried
        self.attempt = attempt    # submissions of this task in this run before this one


class DaskDone(Done):
    """A Done whose `ran` says whether a Dask worker of this run ran the task (False: found finished)."""

    __slots__ = ("ran", "job")

    def __init__(self, job: DaskJob, ran: bool = False, seconds: float = 0.0, failure: Failure | None = None):
        super().__init__(job.task, time.time() - seconds, seconds, failure=failure)
        self.ran = ran
        self.job = job


class DaskExecutor(Executor):
    """Runs jobs as futures of `client`, for the run `ref` names."""

    name = "dask"
    slots = 1 << 30  # every unfinished task at once: Dask orders them by their inputs

    def __init__(self, signals: Signals, client: Any, ref: engine.RunRef):
        super().__init__(signals)
        self.client = client
        self.ref = ref
        self.futures: dict[str, Any] = {}     # task hash: its current future
        self._jobs: dict[str, DaskJob] = {}   # future key: its job
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._ran: dict[str, float] = {}      # task hash: seconds, as the Dask worker that ran it said
        # Why a future erred, when the runner knows already (a failed input): no fetch needed.
        self.causes: dict[str, BaseException] = {}
        self._topic = engine.topic(ref.run_id)
        client.subscribe_topic(self._topic, self._on_event)

    def _on_event(self, event: tuple) -> None:
        h, seconds = event[1]
        self._ran[h] = seconds

    @property
    def pending(self) -> int:
        return len(self._jobs)

    def submit(self, job: Job) -> None:
        assert isinstance(job, DaskJob)
        self.submit_many([job])

    def submit_many(self, jobs: list[DaskJob]) -> None:
        """Submit `jobs` in one Dask call; their inputs are futures submitted before."""
        keys = []
        for job in jobs:
            assert not callable(job.inputs)
            task = job.task
            keys.append(f"{task.name}-{task.hash[:16]}-{self.ref.run_id}" + (f"-{job.attempt}" if job.attempt else ""))
        futures = self.client.map(engine.attempt, [self.ref] * len(jobs), [job.task.hash for job in jobs],
                                  [dict(job.inputs) for job in jobs], [job.handoff for job in jobs],  # type: ignore[arg-type]
                                  [job.retrying for job in jobs], key=keys, pure=False)
        for key, job, future in zip(keys, jobs, futures, strict=True):
            self._jobs[key] = job
            self.futures[job.task.hash] = future
            future.add_done_callback(self._done.put)

    def complete(self) -> list[Done]:
        """Every future done since the last call; waits for one at most WAKE seconds (then returns
        none, so that the caller can look at STOP and signals)."""
        ready = []
        self.signals.allow()
        try:
            ready.append(self._done.get(timeout=WAKE))
        except queue.Empty:
            return []
        finally:
            self.signals.interruptible = False
        while True:
            try:
                ready.append(self._done.get_nowait())
            except queue.Empty:
                break
        dones: list[Done] = []
        for future in ready:
            job = self._jobs.pop(future.key, None)
            if job is None:
                continue  # cancelled, or replaced by a later submission
            if self.futures.get(job.task.hash) is future:
                del self.futures[job.task.hash]
            dones.append(self._outcome(job, future))
        return dones

    def _outcome(self, job: DaskJob, future: Any) -> DaskDone:
        h = job.task.hash
        if future.status == "finished":
            seconds = self._ran.pop(h, None)
            return DaskDone(job, ran=seconds is not None, seconds=seconds or 0.0)
        cause = self.causes.get(h)
        if cause is None:
            if future.status == "cancelled":
                cause = engine.Stopped(h)
            else:
                try:
                    cause = future.exception()
                except BaseException as e:  # the scheduler forgot it (cancelled meanwhile, lost)
                    cause = e
        return DaskDone(job, failure=Failure(cause, ""))

    def close(self) -> None:
        """Tell every Dask worker to take no new task of this run, cancel what did not start, and let
        the Dask workers forget the run (flushing their journals)."""
        try:
            self.client.run(engine.stop, self.ref.run_id)
            if self._jobs:
                self.client.cancel(list(self.futures.values()))
            self.client.run(engine.finish, self.ref.run_id)
        finally:
            self.client.unsubscribe_topic(self._topic)
            self._jobs.clear()
            self.futures.clear()

