"""`execute --dask`: a LocalCluster (`local:2`) and a real `dask scheduler` with two `dask worker`
processes on 127.0.0.1, started here and stopped by pid.

Every task appends a line to an O_APPEND log when it runs: a task run twice shows twice.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import run_cli, status_json, write_taskfile
from dask_cluster import DaskCluster, require_dask

LOGGED = """
import os
import sys
import time

# Beside the taskfile: Dask workers started elsewhere do not have this test's environment.
LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "log")


def note(*words):
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (" ".join(map(str, words)) + "\\n").encode())
    finally:
        os.close(fd)
"""

GRAPHS = LOGGED + """
from taskflow import Task, barrier


def inc(x):
    note("inc", x)
    return x + 1


def mul(x, k):
    note("mul", x, k)
    return x * k


def add(a, b):
    note("add", a, b)
    return a + b


def square(i):
    note("square", i)
    return i * i


def cube(i):
    note("cube", i)
    return i ** 3


def total(xs):
    note("total", len(xs))
    return sum(xs)


def scale(x, k):
    note("scale", x, k)
    return [x] * k


# diamond
top = Task(inc, 1)
left = Task(mul, top, 10)
right = Task(mul, top, 100)
bottom = Task(add, left, right)
# fan-out / fan-in
gathered = Task(total, [Task(square, i) for i in range(20)])
# map-reduce-map
reduced = Task(total, [Task(cube, i) for i in range(10)])
remapped = [Task(scale, reduced, k) for k in range(1, 4)]
barrier()
after = Task(add, bottom, gathered)
"""
GRAPH_TASKS = 4 + 21 + 14 + 1


def values(taskfile: Path) -> dict:
    import taskflow

    module = taskflow.init(str(taskfile))
    return {name: taskflow.value(getattr(module, name))
            for name in ("bottom", "gathered", "reduced", "remapped", "after")}


def log_lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    require_dask()
    c = DaskCluster(tmp_path_factory.mktemp("dask"))
    yield c
    c.stop()


@pytest.fixture(params=["local", "scheduler"])
def address(request) -> str:
    require_dask()
    if request.param == "local":
        return "local:2"
    return request.getfixturevalue("cluster").address


def test_graphs_with_a_barrier_run_once_with_correct_results(tmp_path, address):
    tf = write_taskfile(tmp_path, GRAPHS)
    log = tmp_path / "log"
    proc = run_cli("execute", tf, "--dask", address, cwd=tmp_path, check=0)
    assert "reloading" in proc.stderr  # went through the barrier in the same run
    lines = log_lines(log)
    assert len(lines) == GRAPH_TASKS and len(set(lines)) == GRAPH_TASKS, Counter(lines).most_common(3)
    assert values(tf) == {"bottom": 220, "gathered": sum(i * i for i in range(20)),
                          "reduced": 2025, "remapped": [[2025], [2025] * 2, [2025] * 3], "after": 220 + 2470}
    assert status_json(tf)["total"]["finished"] == GRAPH_TASKS
    again = run_cli("execute", tf, "--dask", address, cwd=tmp_path, check=0)
    assert "already finished" in again.stderr and len(log_lines(log)) == GRAPH_TASKS


FAILING = LOGGED + """
from taskflow import Task


def ok(i):
    note("ok", i)
    return i


def bad(x):
    note("bad", x)
    if not os.path.exists(os.path.join(os.path.dirname(LOG), "fixed")):
        raise ValueError(f"bad input {x}")
    return -x


def after(x):
    note("after", x)
    return x


def final(x):
    note("final", x)
    return x


def later(i):
    time.sleep(0.3)
    note("later", i)
    return i


first = [Task(ok, i) for i in range(3)]
broken = Task(bad, first[0])
waits = Task(after, broken)
waits_more = Task(final, waits)
rest = [Task(later, i) for i in range(6)]
"""


def test_a_failing_task_is_recorded_and_its_dependents_do_not_run(tmp_path, cluster):
    tf = write_taskfile(tmp_path, FAILING)
    log = tmp_path / "log"
    proc = run_cli("execute", tf, "--dask", cluster.address, cwd=tmp_path, check=1)
    assert "ValueError: bad input 0" in proc.stderr
    assert not any(line.startswith("after") for line in log_lines(log))
    status = status_json(tf)["total"]
    assert status["failed"] == 1
    assert status["finished"] < 9  # stopped at the failure: not every independent task ran

    kept = run_cli("execute", tf, "--dask", cluster.address, "--keep-going", cwd=tmp_path, check=1)
    assert "1 failed task keeps this run from finishing" in kept.stderr  # recorded before: not run again
    assert Counter(line.split()[0] for line in log_lines(log))["bad"] == 1
    status = status_json(tf)["total"]
    assert (status["finished"], status["failed"], status["waiting"]) == (9, 1, 2)
    assert not any(line.startswith("after") for line in log_lines(log))

    (tmp_path / "fixed").touch()
    run_cli("execute", tf, "--dask", cluster.address, "--retry-failed", "--target", "after", cwd=tmp_path, check=0)
    status = status_json(tf)["total"]
    assert (status["finished"], status["failed"]) == (11, 0)  # final is outside the target
    assert not any(line.startswith("final") for line in log_lines(log))
    run_cli("execute", tf, "--dask", cluster.address, cwd=tmp_path, check=0)
    runs = Counter(log_lines(log))
    assert runs.pop("bad 0") == 2  # failed, then ran again with --retry-failed
    assert set(runs.values()) == {1} and len(runs) == 11, runs


MANY = LOGGED + """
from taskflow import Task
from taskflow.stores.identity import worker_id


TASKS, PAUSE = (int(sys.argv[1]), float(sys.argv[2])) if len(sys.argv) > 2 else (60, 0.03)


def work(i, pause):
    time.sleep(pause)
    note("start", i, os.getpid())
    time.sleep(pause)
    note("done", i, os.getpid())
    return i


results = [Task(work, i, PAUSE) for i in range(TASKS)]
"""


def taskflow_process(*args, cwd: Path) -> subprocess.Popen:
    full = {k: v for k, v in os.environ.items() if not k.startswith("TASKFLOW_")}
    return subprocess.Popen([sys.executable, "-m", "taskflow", *map(str, args)], cwd=cwd, env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def test_every_task_once_beside_an_ordinary_worker(tmp_path, cluster):
    tf = write_taskfile(tmp_path, MANY)
    log = tmp_path / "log"
    on_dask = taskflow_process("execute", tf, "--dask", cluster.address, "--", "80", "0.03", cwd=tmp_path)
    end = time.monotonic() + 60
    while not log_lines(log):  # the ordinary worker joins once the Dask workers are at work
        assert time.monotonic() < end and on_dask.poll() is None, finished(on_dask)
        time.sleep(0.02)
    plain = taskflow_process("execute", tf, "-q", "--", "80", "0.03", cwd=tmp_path)
    assert finished(on_dask)[0] == 0, finished(on_dask)
    code, err = finished(plain)
    assert code == 0, err
    done = [line.split() for line in log_lines(log) if line.startswith("done")]
    assert sorted(int(i) for _, i, _ in done) == list(range(80))
    pids = {int(pid) for _, _, pid in done}
    dask_pids = set(cluster.worker_pids().values())
    assert plain.pid in pids and pids & dask_pids, (plain.pid, pids, dask_pids)


def test_a_dask_worker_killed_mid_task_leaves_a_claim_that_is_taken_over(tmp_path, cluster):
    tf = write_taskfile(tmp_path, MANY)
    log = tmp_path / "log"
    dask_pids = set(cluster.worker_pids().values())
    run = taskflow_process("execute", tf, "--dask", cluster.address, "--lease", "30", "--", "16", "0.25",
                           cwd=tmp_path)
    killed = None
    end = time.monotonic() + 60
    while killed is None:
        assert time.monotonic() < end and run.poll() is None, finished(run)
        rows = [line.split() for line in log_lines(log)]
        ended = {(i, pid) for word, i, pid in rows if word == "done"}
        for word, i, pid in rows:
            if word == "start" and (i, pid) not in ended and int(pid) in dask_pids and int(i) >= 2:
                os.kill(int(pid), signal.SIGKILL)
                killed = i
                break
        time.sleep(0.02)
    code, err = finished(run)
    assert code == 0, err
    rows = [line.split() for line in log_lines(log)]
    done = Counter(i for word, i, _ in rows if word == "done")
    started = Counter(i for word, i, _ in rows if word == "start")
    assert sorted(map(int, done)) == list(range(16)) and set(done.values()) == {1}
    assert started[killed] == 2 and all(n == 1 for i, n in started.items() if i != killed), started
    assert status_json(tf, "--", "16", "0.25")["total"]["finished"] == 16
    cluster.wait_for_workers(2)  # the nanny started a new one


def test_usage_errors_are_one_line(tmp_path):
    require_dask()
    tf = write_taskfile(tmp_path, MANY)
    for args, says in ((["--dask", "nowhere to go"], "give a scheduler address"),
                       (["--dask", "local:0"], "at least 1 worker"),
                       (["--dask", "local:2", "--jobs", "2"], "--jobs cannot be combined with --dask"),
                       (["--dask", "local:2", "--max-tasks", "3"], "--max-tasks cannot be combined")):
        proc = run_cli("execute", tf, *args, cwd=tmp_path, check=2)
        assert says in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_without_the_extra_the_error_says_what_to_install(tmp_path):
    tf = write_taskfile(tmp_path, MANY)
    code = ("import sys; sys.modules['distributed'] = None; from taskflow.cli import main; "
            f"main(['execute', {str(tf)!r}, '--dask', 'local:2'], prog_name='taskflow')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == ("taskflow: error: --dask needs distributed, which is not installed: "
                                   "pip install 'taskflow[dask]'")


def test_stop_lets_running_tasks_finish_and_exits_3(tmp_path, cluster):
    tf = write_taskfile(tmp_path, MANY)
    log = tmp_path / "log"
    run = taskflow_process("execute", tf, "--dask", cluster.address, "--", "40", "0.1", cwd=tmp_path)
    end = time.monotonic() + 60
    while sum(line.startswith("done") for line in log_lines(log)) < 3:
        assert time.monotonic() < end and run.poll() is None, finished(run)
        time.sleep(0.02)
    run_cli("stop", tf, check=0)
    code, err = finished(run)
    assert code == 3, err
    rows = [line.split() for line in log_lines(log)]
    started = [i for word, i, _ in rows if word == "start"]
    done = [i for word, i, _ in rows if word == "done"]
    assert sorted(started) == sorted(done) and len(set(done)) == len(done) < 40  # what started, finished
    assert status_json(tf, "--", "40", "0.1")["total"]["running"] == 0
    run_cli("stop", tf, "--undo", check=0)
    run_cli("execute", tf, "--dask", cluster.address, "--", "40", "0.1", cwd=tmp_path, check=0)
    done = Counter(i for word, i, _ in (line.split() for line in log_lines(log)) if word == "done")
    assert sorted(map(int, done)) == list(range(40)) and set(done.values()) == {1}
