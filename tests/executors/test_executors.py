"""The registry of executors, and a worker driving an executor that holds several tasks at once."""
from __future__ import annotations

import pytest

from conftest import write_taskfile
from taskflow.errors import ExitCode, UsageError
from taskflow.executors import DEFAULT, EXECUTORS, Done, Executor, Job, LocalExecutor, executor_class, run_task
from taskflow.stores.folder import FolderStore as Store
from taskflow.worker import Options, Outcome, Worker


def test_the_local_executor_is_the_default():
    assert DEFAULT == "local" and executor_class("local") is LocalExecutor
    assert Options().executor == DEFAULT


def test_an_unknown_name_is_a_one_line_usage_error(tmp_path):
    with pytest.raises(UsageError) as e:
        executor_class("dask")
    message = str(e.value)
    assert message == "unknown executor 'dask' (known: ipp, local)"
    assert e.value.exit_code == ExitCode.USAGE
    with pytest.raises(UsageError, match="unknown executor 'nope'"):
        Worker(Store(str(tmp_path / "s")), Options(executor="nope"))


class Batched(Executor):
    """Takes three jobs at once and returns them in reverse order, two per call."""

    name = "batched"
    slots = 3
    most = 0

    def __init__(self, signals):
        super().__init__(signals)
        self.jobs: list[Job] = []

    def submit(self, job: Job) -> None:
        self.jobs.append(job)
        Batched.most = max(Batched.most, len(self.jobs))

    def complete(self) -> list[Done]:
        out = []
        while self.jobs and len(out) < 2:
            job = self.jobs.pop()
            out.append(run_task(job.task, job.inputs, self.signals))
        return out

    def close(self) -> None:
        self.jobs.clear()


GRAPH = """
from taskflow import TaskGenerator

@TaskGenerator
def square(x):
    return x * x

@TaskGenerator
def fail(x):
    if x == 3:
        raise ValueError("three")
    return x

@TaskGenerator
def total(xs):
    return sum(xs)

squares = [square(i) for i in range(10)]
result = total(squares)
failing = [fail(i) for i in range(5)]
"""


def test_a_registered_executor_runs_several_tasks_at_once(tmp_path, monkeypatch):
    from taskflow.execute import execute

    monkeypatch.setitem(EXECUTORS, Batched.name, Batched)
    Batched.most = 0
    tf = write_taskfile(tmp_path, GRAPH)
    store = Store(str(tmp_path / "store"))
    summary = execute(str(tf), store, options=Options(executor="batched", keep_going=True))
    assert summary.outcome is Outcome.FAILED and summary.ran == 15 and summary.failed == 1
    assert Batched.most == 3
    import taskflow
    ns = taskflow.init(str(tf), store=store.path)
    assert taskflow.value(ns.result) == sum(i * i for i in range(10))
    assert store.failed_hashes() == {ns.failing[3].hash}
    assert not store.lock_names(), "every claim was given back"


def test_a_failure_stops_the_run_after_the_tasks_in_flight_come_back(tmp_path, monkeypatch):
    from taskflow.execute import execute

    monkeypatch.setitem(EXECUTORS, Batched.name, Batched)
    tf = write_taskfile(tmp_path, GRAPH)
    store = Store(str(tmp_path / "store"))
    summary = execute(str(tf), store, options=Options(executor="batched", targets=["fail"]))
    assert summary.outcome is Outcome.FAILED and summary.failed == 1
    assert not store.lock_names()


class Interrupted(Batched):
    """Ctrl-C arrives while three tasks are at the executor."""

    name = "interrupted"

    def complete(self) -> list[Done]:
        raise KeyboardInterrupt


def test_ctrl_c_at_the_executor_gives_back_every_claim_in_flight(tmp_path, monkeypatch):
    from taskflow.execute import execute

    monkeypatch.setitem(EXECUTORS, Interrupted.name, Interrupted)
    Batched.most = 0
    tf = write_taskfile(tmp_path, GRAPH)
    store = Store(str(tmp_path / "store"))
    with pytest.raises(KeyboardInterrupt):
        execute(str(tf), store, options=Options(executor="interrupted"))
    assert Batched.most == 3
    assert not store.lock_names() and not store.finished_hashes()


class Refusing(Batched):
    """Ctrl-C arrives while the third task is handed over."""

    name = "refusing"

    def submit(self, job: Job) -> None:
        if len(self.jobs) == 2:
            raise KeyboardInterrupt
        super().submit(job)


def test_ctrl_c_while_a_task_is_handed_over_gives_its_claim_back_once(tmp_path, monkeypatch, caplog):
    from taskflow.execute import execute

    monkeypatch.setitem(EXECUTORS, Refusing.name, Refusing)
    tf = write_taskfile(tmp_path, GRAPH)
    store = Store(str(tmp_path / "store"))
    with caplog.at_level("DEBUG", logger="taskflow"), pytest.raises(KeyboardInterrupt):
        execute(str(tf), store, options=Options(executor="refusing"))
    assert not store.lock_names()
    assert [r.getMessage() for r in caplog.records if r.levelname in ("WARNING", "ERROR")] == []
