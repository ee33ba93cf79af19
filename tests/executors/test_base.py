"""run_task and the records it returns: what every executor builds on."""
from __future__ import annotations

import pickle

import pytest

from taskflow.errors import StoreError
from taskflow.executors import Done, InputGone, InputUnreadable, run_task
from taskflow.signals import Terminated
from taskflow.task import Declarations, Task, activate


@pytest.fixture(autouse=True)
def declarations():
    previous = activate(Declarations())
    yield
    activate(previous)


def one():
    return 1


def add(a, b):
    return a + b


def fail(x):
    raise ValueError(f"no good: {x}")


def leave():
    raise SystemExit(3)


def interrupt():
    raise KeyboardInterrupt


def terminate():
    raise Terminated


def test_the_value_comes_back_with_each_input_asked_for_once():
    dep = Task(one)
    task = Task(add, dep, dep)
    asked = []

    def inputs(d):
        asked.append(d.hash)
        return 20

    done = run_task(task, inputs)
    assert done.value == 40 and done.failure is None and done.gone is None
    assert asked == [dep.hash]
    assert done.task is task and done.seconds >= 0 and done.peak_bytes > 0 and done.started > 0


def test_inputs_may_be_a_mapping_and_the_function_and_its_result_pickle():
    """What an executor ships to an engine: the function by name, inputs as plain values."""
    dep = Task(one)
    task = Task(add, dep, 2)
    shipped = pickle.loads(pickle.dumps(run_task))
    assert shipped is run_task
    done = pickle.loads(pickle.dumps(shipped(task, {dep.hash: 40})))
    assert isinstance(done, Done) and done.value == 42 and done.task.hash == task.hash


def test_a_failure_comes_back_with_its_exception_and_traceback():
    task = Task(fail, 7)
    done = run_task(task, {})
    assert done.value is None and done.gone is None
    assert isinstance(done.failure.exception, ValueError) and str(done.failure.exception) == "no good: 7"
    assert "in fail" in done.failure.traceback and "ValueError: no good: 7" in done.failure.traceback
    assert done.seconds >= 0 and done.peak_bytes > 0
    back = pickle.loads(pickle.dumps(done))
    assert str(back.failure.exception) == "no good: 7" and back.failure.traceback == done.failure.traceback


def test_a_task_calling_exit_fails():
    done = run_task(Task(leave), {})
    assert isinstance(done.failure.exception, SystemExit)


def test_an_input_that_vanished_comes_back_as_gone():
    dep = Task(one)

    def inputs(d):
        raise InputGone(d.hash)

    done = run_task(Task(add, dep, 1), inputs)
    assert done.gone == dep.hash and done.failure is None and done.value is None


def test_an_input_this_installation_cannot_read_stops_the_worker_instead_of_failing_the_task():
    dep = Task(one)

    def inputs(d):
        raise InputUnreadable(StoreError("cannot check the xxh3 checksum of result x: xxhash is not installed"))

    with pytest.raises(StoreError, match="xxhash is not installed"):
        run_task(Task(add, dep, 1), inputs)


@pytest.mark.parametrize("f, raised", [(interrupt, KeyboardInterrupt), (terminate, Terminated)])
def test_ctrl_c_and_sigterm_propagate(f, raised):
    with pytest.raises(raised):
        run_task(Task(f), {})
