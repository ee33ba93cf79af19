"""What an executor is: the part of a worker that runs claimed tasks.

The worker (taskflow.worker) does everything around running a task: it keeps
the ready set, claims a task and keeps its claim alive, hands the task to its
executor, then saves the result or the failure, journals it, gives the claim
back and hands the result to its last consumer. The executor only runs the
task and says how that went. `LocalExecutor` (local.py) runs it in this
process; an executor for an engine such as Dask or ipyparallel ships
`run_task` there.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple

from ..errors import StoreError, UsageError
from ..memory import task_peak_bytes
from ..signals import Signals, Terminated
from ..task import Task
from ..tracebacks import task_traceback

Inputs = Callable[[Task], Any] | Mapping[str, Any]


class InputGone(Exception):
    """Raised by a job's `inputs` when a dependency's result is no longer there: it must run again first."""

    def __init__(self, task_hash: str):
        super().__init__(task_hash)
        self.task_hash = task_hash


class InputUnreadable(Exception):
    """Raised by a job's `inputs` when this installation cannot read an input's result (a checksum it
    cannot compute): the environment's fault, not the task's. `run_task` raises `error` instead of
    returning a failure, which stops the worker."""

    def __init__(self, error: StoreError):
        super().__init__(error)
        self.error = error


class Job:
    """A ready task whose claim this worker holds, and how to get its inputs.

    `inputs` is either a function returning the value of one of the task's
    dependencies (it may raise InputGone or InputUnreadable), or a mapping from each
    dependency's hash to its value.

    For an executor that claims where it runs the task (`Executor.claims`),
    the worker holds no claim and says how to take one: `take_over` a stale
    claim (the worker judged it so), and `retry_cutoff`, None when any
    recorded failure means the task failed already, else the time since which
    a recorded failure counts (`--retry-failed`: older ones are run again).
    """

    # Plain classes with __slots__ rather than dataclasses: one of each per task, and cheap to import.
    __slots__ = ("task", "inputs", "take_over", "retry_cutoff")

    def __init__(self, task: Task, inputs: Inputs, take_over: bool = False, retry_cutoff: float | None = None):
        self.task = task
        self.inputs = inputs
        self.take_over = take_over
        self.retry_cutoff = retry_cutoff


class Failure:
    """How a task failed: the exception it raised, and its traceback as text (tracebacks do not pickle):
    the task's own frames, without taskflow's above them (taskflow/tracebacks.py)."""

    __slots__ = ("exception", "traceback")

    def __init__(self, exception: BaseException, traceback: str):
        self.exception = exception
        self.traceback = traceback

    @classmethod
    def of(cls, e: BaseException) -> Failure:
        return cls(e, task_traceback(e))


class Done:
    """How one job went. Exactly one of: `value` (it returned), `failure` (it raised), `gone` (the
    hash of an input whose result vanished: the task did not run, and runs again once that input is
    there again).

    `started` is the wall-clock time it started (time.time()), `seconds` how long it ran, inputs
    included, and `peak_bytes` the peak resident memory of the process while it ran.

    `settled` is None unless the executor claims where it runs the task
    (`Executor.claims`); it is then one of SETTLED and says what that attempt
    already did in the store: SAVED its result (`value` is None), recorded its
    `failure`, or found it TAKEN by another worker, FINISHED or FAILED_BEFORE
    (not run), or LOST its claim while it ran (result discarded); a `gone`
    input comes with RELEASED (claim given back, not run).
    """

    __slots__ = ("task", "started", "seconds", "peak_bytes", "value", "failure", "gone", "settled")

    def __init__(self, task: Task, started: float, seconds: float = 0.0, peak_bytes: int = 0, value: Any = None,
                 failure: Failure | None = None, gone: str | None = None, settled: str | None = None):
        self.task = task
        self.started = started
        self.seconds = seconds
        self.peak_bytes = peak_bytes
        self.value = value
        self.failure = failure
        self.gone = gone
        self.settled = settled


# What an attempt made where the task runs did in the store (Done.settled).
SAVED, RECORDED, TAKEN, FINISHED, FAILED_BEFORE, LOST, RELEASED = (
    "saved", "recorded", "taken", "finished", "failed-before", "lost", "released")
SETTLED = (SAVED, RECORDED, TAKEN, FINISHED, FAILED_BEFORE, LOST, RELEASED)


def run_task(task: Task, inputs: Inputs, signals: Signals | None = None) -> Done:
    """Run `task` in this process, with each dependency replaced by its input, and say how it went.

    This is the function an executor ships to an engine: it is importable as
    `taskflow.executors.base.run_task`, and its arguments and its result
    pickle when the task's do. Each input is asked for once, however often
    the arguments name it. With `signals`, SIGINT and SIGTERM raise
    KeyboardInterrupt and Terminated while the task runs (see
    taskflow.signals); those two propagate, whatever else the task raises
    (SystemExit included) is its failure, except an input that cannot be
    read (InputUnreadable), whose StoreError propagates too.
    """
    started = time.time()
    t0 = time.monotonic()
    try:
        if signals is not None:
            signals.allow()
        try:
            # Most tasks have no dependencies: no lookup closures for them.
            value = task.run(_once(inputs) if task.deps else _no_inputs)
        finally:
            if signals is not None:
                signals.interruptible = False  # first thing: no call may come before it
        seconds = time.monotonic() - t0
    except InputGone as e:
        return Done(task, started, gone=e.task_hash)
    except InputUnreadable as e:
        raise e.error from None
    except (KeyboardInterrupt, Terminated):
        raise
    except BaseException as e:  # a task's SystemExit is the task failing
        return Done(task, started, time.monotonic() - t0, task_peak_bytes(), failure=Failure.of(e))
    return Done(task, started, seconds, task_peak_bytes(), value)


def _no_inputs(dep: Task) -> Any:
    raise AssertionError(f"a task without dependencies asked for the input {dep.hash}")


def _once(inputs: Inputs) -> Callable[[Task], Any]:
    """The lookup `Task.run` gets: each input asked for once, however often the arguments name it."""
    if callable(inputs):
        lookup = inputs
    else:
        values = inputs
        lookup = lambda dep: values[dep.hash]  # noqa: E731
    loaded: dict[str, Any] = {}
    return lambda dep: loaded[dep.hash] if dep.hash in loaded else loaded.setdefault(dep.hash, lookup(dep))


class Setup(NamedTuple):
    """What `taskflow execute` knows of the run when it makes an executor's arguments
    (`Executor.arguments`): the taskfile, its store and the settings every worker gets."""

    taskfile: str
    store: Any  # a stores.base.Store
    lease: float
    argv: tuple[str, ...] = ()
    fsync: bool = False
    max_attempts: int = 3


class Executor(ABC):
    """Runs the jobs a worker hands it; the contract every executor keeps.

    - The worker calls `submit` at most `slots` times more than it called
      `complete` for, and `complete` only while a job is submitted and not
      yet returned. An executor may run its jobs in any order, at once or
      one by one, here or elsewhere, through `run_task` or alike.
    - Every submitted job comes back from `complete` exactly once, as a
      Done, unless `close` is called first.
    - An executor never saves, claims or releases anything (unless it sets
      `claims`, below): the worker does,
      with what `complete` returns. A job's failure comes back as a Done
      with `failure` set, never as an exception out of `complete`.
    - KeyboardInterrupt and Terminated (SIGINT and SIGTERM, see
      taskflow.signals) propagate out of `submit` and `complete`, and so
      does the StoreError of an input that cannot be read
      (InputUnreadable); the worker then gives back the claims of every
      job not yet returned.
    - One executor serves one pass of a worker over a graph (a barrier
      makes several), and `close` ends it, also when the pass ends on an
      exception.

    An executor whose jobs run on engines sharing the store may set `claims`:
    the worker then takes no claim itself, and each job claims, runs, saves
    (result or failure) and releases where it runs, through the store
    interface (`taskflow.engine.attempt` does), so that the claim names the
    process running the task and goes stale if that process dies. Its Done
    says what happened there (`Done.settled`).
    """

    name: ClassVar[str]
    slots: int = 1  # how many jobs may be submitted and not yet returned by `complete`
    claims: ClassVar[bool] = False  # True: jobs claim, save and release where they run

    def __init__(self, signals: Signals) -> None:
        """`signals` are the worker's: let them raise while waiting for or running a job (`allow`),
        and reset `interruptible` before doing anything else."""
        self.signals = signals

    @classmethod
    def arguments(cls, setup: Setup, given: Mapping[str, str]) -> dict[str, Any]:
        """The keyword arguments, beyond `signals`, to make this executor with: from the run's
        `setup` and the `--executor-option KEY=VALUE` pairs `given`. Called once, where `execute`
        starts; what it returns must pickle. UsageError, naming the key, for one not taken."""
        if given:
            raise UsageError(f"executor {cls.name!r} takes no --executor-option (given: {', '.join(sorted(given))})")
        return {}

    @abstractmethod
    def submit(self, job: Job) -> None:
        """Take `job` to run; returns without waiting for it to finish."""

    @abstractmethod
    def complete(self) -> list[Done]:
        """Wait until at least one submitted job is done; return every job that is done since the last call."""

    @abstractmethod
    def close(self) -> None:
        """Forget jobs not returned by `complete` (their claims are the worker's to give back)."""
