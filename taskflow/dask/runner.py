"""One pass over a graph on Dask: every unfinished task submitted at once, each a future whose
inputs are its dependencies' futures; what comes back is counted as a worker counts it.

`DaskRunner.run` stands in for `Worker.run` in `execute.execute`, which
reloads the taskfile past each barrier, so one run goes through all of them.
The runner never claims: the futures do, on the Dask workers (engine.py).
It keeps the graph's bookkeeping: what finished, what failed and what waits
on a failure (never submitted, or stopped by Dask when its input failed),
results that vanished (run again), STOP (no new task; running ones finish),
and the final check that every result is in the store.
"""
from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from .. import confirm
from ..errors import TaskflowError
from ..signals import Signals, Terminated
from ..stores.base import Store
from ..task import Task
from ..worker import Options, Outcome, Reporter, RunSummary
from . import engine
from .executor import DaskDone, DaskExecutor, DaskJob
from .graph import Named, PassGraph

log = logging.getLogger(__name__)

STOP_EVERY = 1.0  # seconds between looks for STOP
VANISHED_RETRIES = 5  # submissions of a task whose input keeps vanishing before it counts as failed


class DaskRunner:
    """Runs the selected tasks of each pass on the Dask cluster `connect()` gives a client of.

    `connect` is called once, for the first pass with work: a graph that is
    finished already starts no cluster.
    """

    def __init__(self, connect: Callable[[], Any], store: Store, taskfile: str, argv: tuple = (),
                 options: Options | None = None, reporter: Reporter | None = None):
        self._connect = connect
        self._client: Any = None
        self.store = store
        self.taskfile = os.path.abspath(taskfile)
        self.argv = tuple(argv)
        self.options = options or Options()
        self.reporter = reporter or Reporter()
        self.claims = store.claims(self.options.lease)  # its clock, for --retry-failed

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def run(self, tasks: list[Task]) -> RunSummary:
        return Pass(self, tasks).run()

    def close(self) -> None:
        """Let go of the clock the claims read (its file, its connection)."""
        self.claims.close()


class Pass(PassGraph):
    """One pass: submitting, and taking in what comes back."""

    def __init__(self, runner: DaskRunner, tasks: list[Task]):
        super().__init__(runner.store, runner.options, runner.reporter, runner.claims.worker, tasks)
        self.runner = runner

    def run(self) -> RunSummary:
        self._prepare()
        summary = self.summary
        if len(self.finished) == len(self.index):
            summary.already_finished = True
            confirm.record_complete(self.store, list(self.index), self.worker)
            return summary
        self.store.ensure()
        self.reporter.begin(len(self.index), len(self.finished), len(self.failed))
        signals = Signals()
        cutoff = self.runner.claims.now() if self.retrying else 0.0
        ref = engine.RunRef(uuid.uuid4().hex[:12], self.runner.taskfile, self.store, self.runner.argv,
                            self.options.lease, cutoff)
        self.executor = DaskExecutor(signals, self.runner.client, ref)
        restore = signals.install()
        try:
            while True:
                self._submit_all()
                self._wait_all()
                if self.stopping is not None or self._remaining():
                    break
                if self._all_in_store():
                    break
            signals.deliver()
        except Terminated:
            self.stopping = Outcome.TERMINATED
        finally:
            try:
                self.executor.close()
            finally:
                restore()
                self.reporter.end()
        summary.outcome = self._outcome()
        return summary

    def _submit_all(self) -> None:
        """Submit every task not finished, failed, blocked or submitted already: in waves, each one
        Dask call (a call per task costs a round trip to the scheduler each), a task in the wave after
        its last input's."""
        executor = self.executor
        assert executor is not None
        if self.stopping is not None:
            return
        wave: dict[str, int] = {}
        waves: list[list[str]] = []
        for h, task in self.index.items():  # declaration order: inputs first
            if (h in self.finished or h in self.failed or h in self.blocked or h in executor.futures):
                continue
            k = max((wave[d.hash] + 1 for d in task.deps if d.hash in wave), default=0)
            wave[h] = k
            if k == len(waves):
                waves.append([])
            waves[k].append(h)
        for hashes in waves:
            jobs = [job for job in map(self._job, hashes) if job is not None]
            if jobs:
                executor.submit_many(jobs)

    def _job(self, h: str) -> DaskJob | None:
        """The job of task h, its inputs the futures of those submitted; None when an input failed."""
        executor = self.executor
        assert executor is not None
        task = self.index[h]
        inputs = {}
        for d in task.deps:
            if d.hash in self.failed or d.hash in self.blocked:
                self._block(h)
                return None
            future = executor.futures.get(d.hash)
            if future is not None:
                inputs[d.hash] = future
        attempt = self.attempts.get(h, 0)
        self.attempts[h] = attempt + 1
        self.reporter.task_started(task)
        return DaskJob(task, inputs, handoff=self.uses.get(h, 0) == 1, retrying=h in self.retrying, attempt=attempt)

    def _wait_all(self) -> None:
        executor = self.executor
        assert executor is not None
        looked = 0.0
        while executor.pending:
            now = time.monotonic()
            if now - looked >= STOP_EVERY:
                looked = now
                if self.stopping is None and self.store.stop_requested():
                    log.info("taking no new task: %s exists", self.store.location("stop"))
                    self._stop(Outcome.REMAINING)
            for done in executor.complete():
                assert isinstance(done, DaskDone)
                self._take(done)

    def _stop(self, why: Outcome) -> None:
        """Take no new task: Dask workers refuse what they have not claimed yet; running tasks finish."""
        if self.stopping is None:
            self.stopping = why
            self.runner.client.run(engine.stop, self.executor.ref.run_id if self.executor else "")

    def _take(self, done: DaskDone) -> None:
        h = done.task.hash
        if done.failure is None:
            self._finished(done)
            return
        cause = done.failure.exception
        if isinstance(cause, engine.TaskFailed):
            self._failed(cause.task_hash, str(cause.args[1]), bool(cause.args[2]))
            if cause.task_hash != h:
                self._block(h)
        elif isinstance(cause, engine.InputVanished):
            self._vanished(cause.task_hash, str(cause.args[1]), h)
        elif isinstance(cause, engine.Stopped):
            pass  # not run: counts as remaining
        elif isinstance(cause, TaskflowError):
            raise cause  # the store or the taskfile, as a Dask worker met it: stops the run
        else:
            # Not the task's own exception (those are TaskFailed): a Dask worker died running it
            # too often (KilledWorker), or its arguments could not be sent. Not recorded: it runs
            # again on the next run.
            self._failed(h, f"{type(cause).__name__}: {cause}", True, recorded=False)

    def _finished(self, done: DaskDone) -> None:
        h = done.task.hash
        if h in self.finished:
            return
        self.finished.add(h)
        if done.ran:
            self.summary.ran += 1
            self.reporter.task_finished(done.task, done.seconds)
        else:
            self.reporter.learned(len(self.finished), len(self.failed))

    def _failed(self, h: str, message: str, here: bool, recorded: bool = True) -> None:
        if h in self.failed:
            return
        self.failed.add(h)
        self.retrying.discard(h)
        if here:
            self.summary.failed += 1
            self.summary.failed_hashes.add(h)
            self.reporter.task_failed(self.index[h] if h in self.index else Named(h), message)
            if not recorded:
                log.error("%s (%s) was not run to its end: %s", self.index[h].name, h[:12], message)
        else:
            self.reporter.learned(len(self.finished), len(self.failed))
        for d in self.dependents.get(h, ()):
            self._block(d)
        if here and not self.options.keep_going:
            self._stop(Outcome.FAILED)

    def _vanished(self, origin: str, gone: str, h: str) -> None:
        """The result of `gone`, an input of `origin`, vanished: run it again, then `origin` and what
        waits on it (Dask stopped those)."""
        executor = self.executor
        assert executor is not None
        if gone not in self.index or self.attempts.get(origin, 0) > VANISHED_RETRIES:
            self._failed(origin, f"its input {gone[:12]} vanished from the store and cannot be computed again "
                         "in this run", True, recorded=False)
            return
        if gone in self.finished:
            log.warning("the result of %s (%s) vanished from the store; computing it again",
                        self.index[gone].name, gone[:12])
            self.finished.discard(gone)
        for x in (gone, origin, h):
            future = executor.futures.get(x)
            if future is not None and future.status == "error":
                del executor.futures[x]
        self._submit_all()


