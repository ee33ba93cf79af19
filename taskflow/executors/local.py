"""The local executor: each task runs in this process, in the main thread, one at a time."""
from __future__ import annotations

from ..signals import Signals
from .base import Done, Executor, Job, run_task


class LocalExecutor(Executor):
    """Runs each job when the worker asks for it to complete, in the worker's own process.

    Ctrl-C and SIGTERM interrupt the task at once (see taskflow.signals). The
    task's peak memory is this process's, measured from the end of the task
    before it (taskflow.memory). `--jobs N` runs N worker processes, each
    with its own LocalExecutor.
    """

    name = "local"
    slots = 1

    def __init__(self, signals: Signals) -> None:
        super().__init__(signals)
        self._job: Job | None = None  # one slot: at most one job waits

    def submit(self, job: Job) -> None:
        self._job = job

    def complete(self) -> list[Done]:
        job, self._job = self._job, None
        assert job is not None, "complete() without a submitted job"
        return [run_task(job.task, job.inputs, self.signals)]

    def close(self) -> None:
        self._job = None
