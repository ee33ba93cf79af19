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


class Sized(Batched):
    """Batched, with as many slots as `--executor-option slots=N` says."""

    name = "sized"

    def __init__(self, signals, slots: int = 3):
        super().__init__(signals)
        self.slots = slots

    @classmethod
    def arguments(cls, setup, given):
        unknown = set(given) - {"slots"}
        if unknown:
            raise UsageError(f"executor 'sized' takes slots=N, not {', '.join(sorted(unknown))}")
        assert setup.store.url.endswith("store") and setup.lease == 300
        return {"slots": int(given.get("slots", 3))}


def test_execute_runs_a_registered_executor_named_on_the_command_line(tmp_path, monkeypatch):
    """A new executor needs its module and a line in EXECUTORS: `execute --executor` finds it."""
    from click.testing import CliRunner

    from taskflow.cli import main

    monkeypatch.setitem(EXECUTORS, Sized.name, Sized)
    Batched.most = 0
    tf = write_taskfile(tmp_path, GRAPH)
    store = str(tmp_path / "store")
    got = CliRunner().invoke(main, ["execute", str(tf), "--store", store, "-q", "--keep-going",
                                    "--executor", "sized", "--executor-option", "slots=2"])
    assert got.exit_code == ExitCode.FAILED, got.output
    assert Batched.most == 2, "the option reached the executor"
    assert Store(store).failed_hashes() and not Store(store).lock_names()


@pytest.mark.parametrize("argv, says", [
    (["--executor", "nope"], "unknown executor 'nope' (known: batched, ipp, local, sized)"),
    (["--executor", "sized", "--executor-option", "colour=red"], "executor 'sized' takes slots=N, not colour"),
    (["--executor", "batched", "--executor-option", "x=1"], "executor 'batched' takes no --executor-option"),
    (["--executor-option", "slots"], "--executor-option 'slots': give KEY=VALUE"),
    (["--executor", "sized", "--jobs", "2"], "give --jobs or --executor sized, not both"),
    (["--executor", "sized", "--ipp"], "give --ipp or --executor sized"),
    (["--ipp", "--executor-option", "colour=red"], "executor 'ipp' takes --executor-option cluster="),
])
def test_a_wrong_executor_on_the_command_line_is_one_line_and_exit_2(tmp_path, monkeypatch, argv, says):
    from click.testing import CliRunner

    from taskflow.cli import main

    monkeypatch.setitem(EXECUTORS, Sized.name, Sized)
    monkeypatch.setitem(EXECUTORS, Batched.name, Batched)
    tf = write_taskfile(tmp_path, GRAPH)
    got = CliRunner().invoke(main, ["execute", str(tf), "--store", str(tmp_path / "store"), "-q", *argv])
    assert got.exit_code == ExitCode.USAGE, got.output
    assert says in got.output and "Traceback" not in got.output
    assert not Store(str(tmp_path / "store")).lock_names()
