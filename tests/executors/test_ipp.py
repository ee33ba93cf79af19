"""`execute --ipp`: tasks run on the engines of a real ipyparallel cluster (ipcontroller + 2 ipengine).

The cluster is started once for this module by tests/ipp_cluster.py on
127.0.0.1 and stopped by pid. Engines get the log file the tasks append to
through the taskfile's arguments, which the driver hands them.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import run_cli, write_taskfile
from ipp_cluster import IppCluster, require_ipyparallel
from taskflow.errors import EngineError, ExitCode

PREAMBLE = """
import os, sys, time
from taskflow import TaskGenerator, barrier, mapreduce

LOG = sys.argv[1] if len(sys.argv) > 1 else os.devnull
FLAG = sys.argv[2] if len(sys.argv) > 2 else os.devnull  # sys.argv is the taskfile's only while it loads

def note(*parts):
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, (" ".join(map(str, parts)) + "\\n").encode())
    os.close(fd)
"""

GRAPHS = PREAMBLE + """
@TaskGenerator
def source(x):
    note("source", os.getpid())
    return x

@TaskGenerator
def left(a):
    note("left", os.getpid())
    return a + 1

@TaskGenerator
def right(a):
    note("right", os.getpid())
    return a * 2

@TaskGenerator
def join(l, r):
    note("join", os.getpid())
    return l + r

def square(x):
    return x * x

def add(a, b):
    return a + b

top = source(10)
diamond = join(left(top), right(top))
total = mapreduce(add, square, list(range(40)), map_step=4)
barrier()

@TaskGenerator
def after(x):
    note("after", os.getpid())
    return x + 1

final = after(diamond)
"""

FAILING = PREAMBLE + """
@TaskGenerator
def work(i):
    note("work", i)
    if i == 3 and not os.path.exists(FLAG):
        raise ValueError("three is unlucky")
    return i

@TaskGenerator
def total(xs):
    note("total")
    return sum(xs)

parts = [work(i) for i in range(6)]
result = total(parts)
"""

MANY = PREAMBLE + """
@TaskGenerator
def job(i):
    note("job", i, os.getpid())
    time.sleep(0.2)
    return i

@TaskGenerator
def total(xs):
    note("total", 0, os.getpid())
    return sum(xs)

result = total([job(i) for i in range(60)])
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    require_ipyparallel()
    c = IppCluster(tmp_path_factory.mktemp("ipp"), engines=2)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def _values(taskfile: Path, *names: str, argv: tuple = ()) -> list:
    code = ("import sys, json, taskflow; m = taskflow.init(sys.argv[1], argv=sys.argv[2:]); "
            f"print(json.dumps([taskflow.value(getattr(m, n)) for n in {list(names)!r}]))")
    proc = subprocess.run([sys.executable, "-c", code, str(taskfile), *argv], capture_output=True, text=True,
                          cwd=taskfile.parent, check=True)
    return json.loads(proc.stdout)


def test_the_cluster_starts_in_seconds(cluster):
    assert len(cluster.engine_pids()) == 2
    assert cluster.started_in < 60


def test_diamond_map_reduce_and_a_barrier_run_on_the_engines(cluster, tmp_path):
    taskfile = write_taskfile(tmp_path, GRAPHS)
    log = tmp_path / "log"
    proc = run_cli("execute", taskfile, "--ipp", cluster.connection_file, "--", log, cwd=tmp_path, check=0)
    assert "running tasks on 2 ipyparallel engines" in proc.stderr
    assert _values(taskfile, "diamond", "total", "final", argv=(str(log),)) == [31, sum(x * x for x in range(40)), 32]
    lines = [line.split() for line in log.read_text().splitlines()]
    assert sorted(name for name, _ in lines) == ["after", "join", "left", "right", "source"]
    # Every task ran on an engine, none in the driver.
    assert {int(pid) for _, pid in lines} <= set(cluster.engine_pids())
    status = json.loads(run_cli("status", taskfile, "--json", cwd=tmp_path, check=0).stdout)
    counts = status["total"]
    assert counts["finished"] > 5 + 10 and all(counts[k] == 0 for k in counts if k != "finished"), counts
    # Run again: everything is finished, nothing runs.
    run_cli("execute", taskfile, "--ipp", cluster.connection_file, "--", log, cwd=tmp_path, check=0)
    assert len(log.read_text().splitlines()) == 5


def test_a_failing_task_is_recorded_by_its_engine_and_blocks_its_dependents(cluster, tmp_path):
    taskfile = write_taskfile(tmp_path, FAILING)
    log, fixed = tmp_path / "log", tmp_path / "fixed"
    proc = run_cli("execute", taskfile, "--ipp", cluster.connection_file, "--keep-going", "--", log, fixed,
                   cwd=tmp_path, check=ExitCode.FAILED)
    assert "ValueError: three is unlucky" in proc.stderr
    assert "Traceback" not in proc.stderr
    ran = Counter(log.read_text().splitlines())
    assert ran == Counter([f"work {i}" for i in range(6)])  # --keep-going ran the others; total waits
    status = run_cli("status", taskfile, "--failed", cwd=tmp_path, check=None)
    assert "three is unlucky" in status.stdout + status.stderr
    failed = next((tmp_path / "taskfile.taskflow" / "failed").glob("*.json"))
    record = json.loads(failed.read_text())
    assert record["type"] == "ValueError" and record["pid"] in cluster.engine_pids()
    assert "raise ValueError" in record["traceback"]
    # Failed tasks are not run again without --retry-failed ...
    run_cli("execute", taskfile, "--ipp", cluster.connection_file, "--", log, fixed, cwd=tmp_path,
            check=ExitCode.FAILED)
    assert Counter(log.read_text().splitlines()) == ran
    # ... and with it, once the cause is gone, it and its dependent run, and the failure is gone.
    fixed.write_text("")
    run_cli("execute", taskfile, "--ipp", cluster.connection_file, "--retry-failed", "--", log, fixed,
            cwd=tmp_path, check=0)
    assert Counter(log.read_text().splitlines()) - ran == Counter(["work 3", "total"])
    assert not list((tmp_path / "taskfile.taskflow" / "failed").glob("*.json"))
    assert _values(taskfile, "result", argv=(str(log), str(fixed))) == [15]


def test_target_runs_only_the_matching_tasks(cluster, tmp_path):
    taskfile = write_taskfile(tmp_path, FAILING)
    log, fixed = tmp_path / "log", tmp_path / "fixed"
    fixed.write_text("")
    run_cli("execute", taskfile, "--ipp", cluster.connection_file, "--target", "work", "--", log, fixed,
            cwd=tmp_path, check=0)
    assert sorted(log.read_text().splitlines()) == sorted(f"work {i}" for i in range(6))


def test_engines_go_on_after_the_folder_of_their_last_run_is_removed(cluster, tmp_path):
    # Each engine changes into the folder of the run it serves; a later run from another folder
    # must not trip over the removed one (getcwd fails in a deleted folder).
    for n in range(2):
        folder = tmp_path / f"run{n}"
        folder.mkdir()
        taskfile = write_taskfile(folder, GRAPHS)
        log = folder / "log"
        run_cli("execute", taskfile, "--ipp", cluster.connection_file, "--", log, cwd=folder, check=0)
        assert _values(taskfile, "diamond", argv=(str(log),)) == [31]
        shutil.rmtree(folder)


def test_every_task_runs_once_beside_a_normal_worker(cluster, tmp_path):
    taskfile = write_taskfile(tmp_path, MANY)
    log = tmp_path / "log"
    env = dict(os.environ)
    env.pop("TASKFLOW_STORE", None)

    def start(*args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "taskflow", "execute", str(taskfile), "-q", *args, "--",
                                 str(log)], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    driver = start("--ipp", str(cluster.connection_file))
    normal = None
    try:
        # The normal worker joins once the engines are at work, so that both take part whatever the load.
        deadline = time.monotonic() + 120
        while not (log.exists() and log.read_text()):
            assert driver.poll() is None and time.monotonic() < deadline, driver.communicate()
            time.sleep(0.02)
        normal = start()
        _, driver_err = driver.communicate(timeout=180)
        _, err = normal.communicate(timeout=180)
    finally:
        for p in (driver, normal):
            if p is not None and p.poll() is None:
                p.kill()
    assert driver.returncode == 0, driver_err
    assert normal.returncode == 0, err
    lines = [line.split() for line in log.read_text().splitlines()]
    ran = Counter((name, i) for name, i, _ in lines)
    assert ran == Counter([("job", str(i)) for i in range(60)] + [("total", "0")])  # each exactly once
    by = Counter(int(pid) for _, _, pid in lines)
    engines = set(cluster.engine_pids())
    assert sum(n for pid, n in by.items() if pid in engines) > 0, by  # the engines ran some
    assert by.get(normal.pid, 0) > 0, by  # and so did the normal worker
    assert _values(taskfile, "result", argv=(str(log),)) == [sum(range(60))]


def test_no_controller_is_a_one_line_error(tmp_path):
    require_ipyparallel()
    taskfile = write_taskfile(tmp_path, FAILING)
    proc = run_cli("execute", taskfile, "--ipp", tmp_path / "nowhere.json", cwd=tmp_path, check=ExitCode.USAGE)
    assert "no such connection file" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("execute", taskfile, "--ipp", "no-such-profile", cwd=tmp_path, check=ExitCode.USAGE,
                   env={"IPYTHONDIR": str(tmp_path / "ipython")})
    assert "no IPython profile 'no-such-profile'" in proc.stderr and "Traceback" not in proc.stderr


def test_without_ipyparallel_the_error_names_the_pip_command(tmp_path, monkeypatch):
    from taskflow.executors import ipp

    monkeypatch.setitem(sys.modules, "ipyparallel", None)  # import fails as if not installed
    with pytest.raises(EngineError) as e:
        ipp.connect(str(tmp_path / "x.json"))
    assert str(e.value) == "--ipp needs ipyparallel, which is not installed: pip install 'taskflow[ipp]'"
    assert e.value.exit_code == ExitCode.USAGE


def test_jobs_and_ipp_together_are_refused(tmp_path):
    taskfile = write_taskfile(tmp_path, FAILING)
    proc = run_cli("execute", taskfile, "--ipp", "--jobs", "2", cwd=tmp_path, check=ExitCode.USAGE)
    assert "--jobs or --ipp" in proc.stderr


def test_a_killed_engine_leaves_a_claim_that_goes_stale_and_the_task_runs_again(tmp_path):
    """kill -9 of the engine running a task: the driver says so, takes the stale claim over, runs it again."""
    require_ipyparallel()
    c = IppCluster(tmp_path / "cluster", engines=2)
    try:
        c.start()
        taskfile = write_taskfile(tmp_path, PREAMBLE + """
@TaskGenerator
def slow(i):
    note("slow", i, os.getpid())
    time.sleep(60 if i == 0 and not os.path.exists(FLAG) else 0.1)
    return i

results = [slow(i) for i in range(4)]
""")
        log, once = tmp_path / "log", tmp_path / "once"
        env = dict(os.environ)
        env.pop("TASKFLOW_STORE", None)
        driver = subprocess.Popen([sys.executable, "-m", "taskflow", "execute", str(taskfile), "--ipp",
                                   str(c.connection_file), "--lease", "2", "-q", "--", str(log), str(once)],
                                  cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not (log.exists() and "slow 0 " in log.read_text()):
                assert time.monotonic() < deadline and driver.poll() is None
                time.sleep(0.05)
            pid = int(next(line for line in log.read_text().splitlines() if line.startswith("slow 0 ")).split()[2])
            assert pid in c.engine_pids()
            once.write_text("")
            os.kill(pid, 9)
            _, err = driver.communicate(timeout=90)
        finally:
            if driver.poll() is None:
                driver.kill()
        assert driver.returncode == 0, err
        assert "died" in err
        ran = Counter(line.split()[1] for line in log.read_text().splitlines())
        assert ran == {"0": 2, "1": 1, "2": 1, "3": 1}
    finally:
        c.stop()


def test_short_tasks_go_in_batches_long_ones_one_by_one():
    """Batches hold about BATCH_SECONDS of work by the times so far; one task each until times are known."""
    from taskflow.executors import Job
    from taskflow.executors.ipp import BATCH_SECONDS, JOBS_PER_ENGINE, IppExecutor
    from taskflow.task import Task

    class Client:
        """Engines 0 and 1; records the size of every message and the engine it went to."""

        ids = [0, 1]

        def __init__(self):
            self.sent = []

        def __getitem__(self, engine):
            client = self

            class View:
                def apply_async(self, f, spec, items):
                    client.sent.append((engine, len(items)))
                    return object()
            return View()

    def send(pending, task_seconds):
        executor.client, executor._running, executor._engine_of, executor._queued = Client(), {}, {}, {}
        executor._task_seconds, executor._pending = task_seconds, list(pending)
        executor._send()
        return executor.client.sent

    executor = IppExecutor.__new__(IppExecutor)
    executor.engines, executor.spec, executor._attempt = 2, None, None
    jobs = [Job(Task(abs, i), {}) for i in range(40)]
    # Nothing known yet: one task a message, two messages queued at each engine, the rest waits.
    assert send(jobs, None) == [(0, 1), (1, 1), (0, 1), (1, 1)] and len(executor._pending) == 36
    # Trivial tasks: as many a message as half an engine's slots; the 8 left wait for a fuller batch.
    assert send(jobs, 0.0002) == [(0, JOBS_PER_ENGINE // 2), (1, JOBS_PER_ENGINE // 2)]
    assert len(executor._pending) == 8
    # Long tasks: one a message.
    assert send(jobs[:5], BATCH_SECONDS) == [(0, 1), (1, 1), (0, 1), (1, 1)]
    # An incomplete batch of short tasks waits while every engine has work.
    executor.client, executor._queued, executor._task_seconds = Client(), {0: 1, 1: 1}, 0.0002
    executor._pending = list(jobs[:3])
    executor._send()
    assert executor.client.sent == [] and len(executor._pending) == 3


def test_retries_run_again_on_the_engine_in_the_claim_it_holds(cluster, tmp_path):
    taskfile = write_taskfile(tmp_path, PREAMBLE + """
@TaskGenerator(retries=2, retry_on=(ConnectionError,))
def flaky(i):
    note("flaky", i)
    tries = sum(1 for line in open(LOG) if line.split() == ["flaky", str(i)])
    if tries < 3:
        raise ConnectionError(f"try {tries}")
    return i

results = [flaky(i) for i in range(2)]
""")
    log = tmp_path / "log"
    run_cli("execute", taskfile, "--ipp", cluster.connection_file, "--", log, cwd=tmp_path, check=0)
    assert Counter(log.read_text().splitlines()) == {"flaky 0": 3, "flaky 1": 3}
    assert _values(taskfile, "results", argv=(str(log),)) == [[0, 1]]
