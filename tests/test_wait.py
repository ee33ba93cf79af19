"""`taskflow wait` and `taskflow.wait.wait`: finished (0), failed with nothing else to run (1), timeout (3)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from conftest import run_cli, write_taskfile
from taskflow import jobs
from taskflow.stores.folder import FolderStore as Store
from taskflow.wait import Progress, WaitOutcome, judge, wait

CHAIN = """
from taskflow import Task

def square(x):
    return x * x

def total(xs):
    return sum(xs)

squares = [Task(square, i) for i in range(6)]
result = Task(total, squares)
"""

FAILING = """
from taskflow import Task

def boom():
    raise ValueError("no")

def after(x):
    return x

def fine(i):
    return i

bad = Task(boom)
blocked = Task(after, bad)
others = [Task(fine, i) for i in range(3)]
"""

SLOW = """
import time
from taskflow import Task

def nap(i):
    time.sleep(0.3)
    return i

naps = [Task(nap, i) for i in range(8)]
"""

BARRIER = """
import time
from taskflow import Task, barrier, value

def nap(i):
    time.sleep(0.2)
    return i

def double(x):
    return 2 * x

first = [Task(nap, i) for i in range(3)]
barrier()
second = [Task(double, v) for v in value(first)]
"""


def test_finished_exits_0(tmp_path):
    tf = write_taskfile(tmp_path, CHAIN)
    run_cli("execute", tf, "-q", check=0)
    proc = run_cli("wait", tf, check=0)
    assert "all 7 tasks finished" in proc.stderr and proc.stdout == ""


def test_failure_that_blocks_the_rest_exits_1(tmp_path):
    tf = write_taskfile(tmp_path, FAILING)
    run_cli("execute", tf, "-q", "--keep-going", check=1)
    t0 = time.monotonic()
    proc = run_cli("wait", tf, "--timeout", "60", check=1)
    assert time.monotonic() - t0 < 30
    assert "1 task(s) failed and 1 cannot run" in proc.stderr and "--failed" in proc.stderr


def test_failure_while_other_tasks_can_still_run_keeps_waiting(tmp_path):
    tf = write_taskfile(tmp_path, FAILING)
    # a worker without --keep-going stops at the failure and leaves runnable tasks
    run_cli("execute", tf, "-q", "--target", "boom", check=1)
    proc = run_cli("wait", tf, "--timeout", "0.5", "--interval", "0.1", check=3)
    assert "0 of 5 tasks finished, 0 running, 1 failed" in proc.stderr
    assert "timed out with 5 of 5 tasks not finished" in proc.stderr


def test_timeout_exits_3_with_progress_lines(tmp_path):
    tf = write_taskfile(tmp_path, CHAIN)
    t0 = time.monotonic()
    proc = run_cli("wait", tf, "--timeout", "1", "--interval", "0.2", check=3)
    assert 0.9 < time.monotonic() - t0 < 30
    assert "taskflow: 0 of 7 tasks finished, 0 running, 0 failed; waited 0s" in proc.stderr
    assert "timed out with 7 of 7 tasks not finished" in proc.stderr
    # unchanged lines are not repeated in a log
    assert proc.stderr.count("0 of 7 tasks finished") == 1
    quiet = run_cli("wait", tf, "--timeout", "0", "-q", check=3)
    assert quiet.stderr == ""


def test_waits_for_running_workers_and_past_barriers(tmp_path):
    tf = write_taskfile(tmp_path, BARRIER)
    env = dict(os.environ)
    env.pop("TASKFLOW_STORE", None)
    worker = subprocess.Popen([sys.executable, "-m", "taskflow", "execute", str(tf), "-q", "--jobs", "2"], env=env)
    try:
        proc = run_cli("wait", tf, "--timeout", "60", "--interval", "0.1", check=0)
    finally:
        assert worker.wait(timeout=60) == 0
    assert "all 6 tasks finished" in proc.stderr
    assert "(more below a barrier)" in proc.stderr


def test_library_function(tmp_path):
    tf = write_taskfile(tmp_path, SLOW)
    env = dict(os.environ)
    env.pop("TASKFLOW_STORE", None)
    seen: list[Progress] = []
    worker = subprocess.Popen([sys.executable, "-m", "taskflow", "execute", str(tf), "-q"], env=env)
    try:
        result = wait(str(tf), timeout=60, interval=0.1, on_progress=seen.append)
    finally:
        worker.wait(timeout=60)
    assert result.outcome is WaitOutcome.FINISHED
    assert result.report.total["finished"] == 8
    assert len(seen) >= 2 and seen[-1].report.total["finished"] == 8
    assert any(p.report.total["running"] == 1 for p in seen)
    result = wait(str(tf), timeout=0)
    assert result.outcome is WaitOutcome.FINISHED


def test_library_timeout_uses_the_given_clock(tmp_path):
    tf = write_taskfile(tmp_path, CHAIN)
    now = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    result = wait(str(tf), timeout=12, interval=5, clock=lambda: now[0], sleep=sleep)
    assert result.outcome is WaitOutcome.TIMEOUT
    assert slept == [5, 5, 2]  # never sleeps past the timeout


def test_progress_counts_workers_of_recorded_jobs(tmp_path):
    from taskflow.stores.folder.claims import FolderClaims as Leases
    from taskflow.taskfile import load

    tf = write_taskfile(tmp_path, CHAIN)
    store = Store(str(tmp_path / "taskfile.taskflow"))
    jobs.save(store, jobs.JobRecord(scheduler="slurm", job_id="31", number="31", workers=4, taskfile=str(tf),
                                    store=store.path, script="", log_dir="", command=[]))
    task = load(str(tf), store).tasks[0]
    assert Leases(store, worker="slurm:31.2").claim(task.hash)
    seen: list[Progress] = []
    wait(str(tf), timeout=0, on_progress=seen.append)
    assert seen[0].line() == "0 of 7 tasks finished, 1 running, 0 failed; 1 of 4 workers active; waited 0s"


@pytest.mark.parametrize("total, expected", [
    (dict(waiting=0, ready=0, running=0, finished=3, failed=0), WaitOutcome.FINISHED),
    (dict(waiting=2, ready=0, running=0, finished=3, failed=1), WaitOutcome.FAILED),
    (dict(waiting=0, ready=0, running=0, finished=3, failed=1), WaitOutcome.FAILED),
    (dict(waiting=2, ready=1, running=0, finished=3, failed=1), None),
    (dict(waiting=2, ready=0, running=1, finished=3, failed=1), None),
    (dict(waiting=2, ready=0, running=1, finished=3, failed=0), None),
    (dict(waiting=0, ready=0, running=0, finished=0, failed=0), WaitOutcome.FINISHED),
])
def test_judge(total, expected):
    from taskflow.statusreport import StatusReport

    assert judge(StatusReport({"t": total}, total)) is expected


def test_incomplete_load_is_not_finished():
    from taskflow.statusreport import StatusReport

    total = dict(waiting=0, ready=0, running=0, finished=3, failed=0)
    assert judge(StatusReport({"t": total}, total, complete=False)) is None


def test_bad_options(tmp_path):
    tf = write_taskfile(tmp_path, CHAIN)
    assert "--timeout" in run_cli("wait", tf, "--timeout", "later", check=2).stderr
    assert "--interval" in run_cli("wait", tf, "--interval", "0", check=2).stderr
    assert "no such taskfile" in run_cli("wait", tmp_path / "nope.py", "--timeout", "0", check=2).stderr
