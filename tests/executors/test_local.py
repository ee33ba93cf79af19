"""The local executor: tasks run in this process, interrupted at once by SIGINT and SIGTERM."""
from __future__ import annotations

import os
import signal
import time

import pytest

from taskflow.executors import InputGone, Job, LocalExecutor
from taskflow.signals import Signals, Terminated
from taskflow.task import Declarations, Task, activate

CALLS: list[str] = []


@pytest.fixture(autouse=True)
def declarations():
    previous = activate(Declarations())
    CALLS.clear()
    yield
    activate(previous)


@pytest.fixture
def signals():
    s = Signals()
    restore = s.install()
    yield s
    restore()


def one():
    return 1


def double(x):
    CALLS.append("double")
    return 2 * x


def fail():
    raise RuntimeError("broken")


def signal_self(signum):
    CALLS.append("started")
    os.kill(os.getpid(), signum)
    time.sleep(5)  # the signal interrupts this at once
    CALLS.append("not interrupted")


def test_a_value_and_a_failure_come_back(signals):
    dep = Task(one)
    executor = LocalExecutor(signals)
    assert executor.slots == 1
    executor.submit(Job(Task(double, dep), {dep.hash: 21}))
    [done] = executor.complete()
    assert done.value == 42 and done.failure is None
    executor.submit(Job(Task(fail), lambda d: None))
    [done] = executor.complete()
    assert isinstance(done.failure.exception, RuntimeError) and "broken" in done.failure.traceback
    assert not signals.interruptible
    executor.close()


def test_a_vanished_input_comes_back_as_gone(signals):
    dep = Task(one)
    executor = LocalExecutor(signals)

    def gone(d):
        raise InputGone(d.hash)

    executor.submit(Job(Task(double, dep), gone))
    [done] = executor.complete()
    assert done.gone == dep.hash and CALLS == []


@pytest.mark.parametrize("signum, raised", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)])
def test_a_signal_interrupts_the_running_task_at_once(signals, signum, raised):
    executor = LocalExecutor(signals)
    executor.submit(Job(Task(signal_self, int(signum)), {}))
    t0 = time.monotonic()
    with pytest.raises(raised):
        executor.complete()
    assert time.monotonic() - t0 < 4
    assert CALLS == ["started"] and not signals.interruptible


@pytest.mark.parametrize("signum, raised", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)])
def test_a_signal_held_since_before_the_run_stops_it_before_the_function(signals, signum, raised):
    """A signal that came while the claim was taken raises as the run starts: the task does not run."""
    os.kill(os.getpid(), signum)
    assert signals.pending == signum
    executor = LocalExecutor(signals)
    executor.submit(Job(Task(double, 1), {}))
    with pytest.raises(raised):
        executor.complete()
    assert CALLS == [] and signals.pending is None


def test_a_signal_after_the_task_waits_for_the_worker(signals):
    executor = LocalExecutor(signals)
    executor.submit(Job(Task(double, 1), {}))
    [done] = executor.complete()
    os.kill(os.getpid(), signal.SIGINT)  # the worker is saving the result now: hold it
    assert done.value == 2 and signals.pending == signal.SIGINT
    with pytest.raises(KeyboardInterrupt):
        signals.deliver()


def test_close_forgets_jobs_not_completed(signals):
    executor = LocalExecutor(signals)
    executor.submit(Job(Task(double, 1), {}))
    executor.close()
    executor.submit(Job(Task(double, 2), {}))
    [done] = executor.complete()
    assert done.value == 4 and CALLS == ["double"]
