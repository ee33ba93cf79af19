"""Tasks that kill their worker, and `retries=`: real worker processes on a folder and a Redis store.

A task that kills its worker (kill -9, as the kernel's OOM killer or a segfault would) leaves a
claim nobody gives back; the next worker takes it over and the store counts the attempt. After
--max-attempts the task is failed with the reason and the rest of the graph finishes. A worker
stopped by SIGTERM gives its claim back and counts nothing; one that froze and comes back is
not counted either.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import NOTE_PREAMBLE, run_cli, write_taskfile
from taskflow.stores import open_store

CRASHING = NOTE_PREAMBLE + """
@TaskGenerator
def ok(i):
    note("ok", i)
    return i

@TaskGenerator
def crash(x):
    note("crash")
    os.kill(os.getpid(), 9)

@TaskGenerator
def after(x):
    return x

oks = [ok(i) for i in range(4)]
crashed = crash(oks[0])
blocked = after(crashed)
rest = [after(o) for o in oks]
"""

REASON = "its worker died 3 times while running it: check memory and walltime"


@pytest.fixture(params=["folder", "redis"])
def store_url(request, tmp_path) -> str:
    if request.param == "redis":
        return request.getfixturevalue("redis_url")
    return str(tmp_path / "store")


def log_lines(log: Path, word: str) -> int:
    return sum(1 for line in log.read_text().splitlines() if line.split()[0] == word) if log.exists() else 0


def until_done(tf: Path, store: str, env: dict, *extra: str, runs: int = 6) -> list[int]:
    """Exit codes of workers started one after the other until one is not killed."""
    codes = []
    for _ in range(runs):
        codes.append(run_cli("execute", tf, "--store", store, "-q", *extra, env=env).returncode)
        if codes[-1] != -signal.SIGKILL:
            break
    return codes


def test_a_task_that_kills_its_worker_is_failed_after_three_attempts_and_the_rest_finishes(tmp_path, store_url):
    tf = write_taskfile(tmp_path, CRASHING)
    log = tmp_path / "log"
    env = {"TF_TEST_LOG": str(log)}
    assert until_done(tf, store_url, env) == [-signal.SIGKILL] * 3 + [1]
    assert log_lines(log, "crash") == 3, "run three times, never a fourth"
    assert log_lines(log, "ok") == 4
    status = json.loads(run_cli("status", tf, "--store", store_url, "--json", check=0).stdout)
    assert (status["total"]["finished"], status["total"]["failed"], status["total"]["waiting"]) == (8, 1, 1)
    failed = run_cli("status", tf, "--store", store_url, "--failed", check=0).stdout
    assert f"WorkerDied: {REASON}" in failed
    shown = run_cli("show", tf, "--store", store_url, "crash", check=0).stdout
    assert "state      failed" in shown and REASON in shown
    assert shown.count("attempt ") == 3 and "is gone" in shown, shown
    # The count was forgotten with the failure recorded: a retry runs the task again and counts
    # from nothing (test_max_attempts_... sees it fail again after as many attempts).
    store = open_store(store_url)
    [h] = store.failed_hashes()
    assert store.deaths(h) == [] and store.load_failure(h)["attempts"] == 3
    assert run_cli("execute", tf, "--store", store_url, "-q", "--retry-failed", env=env).returncode == -signal.SIGKILL
    assert log_lines(log, "crash") == 4


def test_max_attempts_from_the_command_line_and_from_pyproject(tmp_path):
    tf = write_taskfile(tmp_path, CRASHING)
    log = tmp_path / "log"
    env = {"TF_TEST_LOG": str(log)}
    store = str(tmp_path / "store")
    assert until_done(tf, store, env, "--max-attempts", "1") == [-signal.SIGKILL, 1]
    assert "its worker died once while running it" in run_cli("status", tf, "--store", store, "--failed").stdout
    (tmp_path / "pyproject.toml").write_text("[tool.taskflow.execute]\nmax-attempts = 2\n")
    assert until_done(tf, store, env, "--retry-failed") == [-signal.SIGKILL] * 2 + [1]
    assert log_lines(log, "crash") == 3
    (tmp_path / "pyproject.toml").write_text("[tool.taskflow.execute]\nmax-attempts = 0\n")
    bad = run_cli("execute", tf, "--store", store, check=2)
    assert "max-attempts" in bad.stderr and "Traceback" not in bad.stderr


SLOW = NOTE_PREAMBLE + """
import time

@TaskGenerator
def slow(gate):
    note("slow", os.getpid())
    while not os.path.exists(gate):
        time.sleep(0.05)
    return 1

s = slow({gate!r})
"""


def start_worker(tf: Path, store: str, env: dict, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "taskflow", "execute", str(tf), "--store", store, "-q", *extra],
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(what, predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_worker_stopped_by_sigterm_gives_its_claim_back_and_counts_nothing(tmp_path, store_url):
    gate = tmp_path / "gate"
    tf = write_taskfile(tmp_path, SLOW.format(gate=str(gate)))
    log = tmp_path / "log"
    env = {"TF_TEST_LOG": str(log)}
    store = open_store(store_url)
    for _ in range(2):
        before = log_lines(log, "slow")
        worker = start_worker(tf, store_url, env)
        wait_for("the task to start", lambda before=before: log_lines(log, "slow") > before)
        worker.send_signal(signal.SIGTERM)  # what scancel, qdel and the walltime send first
        assert worker.wait(30) == 3, worker.stderr.read().decode() if worker.stderr else ""
        assert store.claims(reader=True).claimed() == set(), "its claim was given back"
    assert store.died_hashes() == set()
    gate.touch()
    run_cli("execute", tf, "--store", store_url, "-q", env=env, check=0)


def test_a_frozen_worker_whose_task_was_taken_over_counts_only_until_it_comes_back(tmp_path, store_url):
    gate = tmp_path / "gate"
    tf = write_taskfile(tmp_path, SLOW.format(gate=str(gate)))
    log = tmp_path / "log"
    env = {"TF_TEST_LOG": str(log)}
    store = open_store(store_url)
    frozen = start_worker(tf, store_url, env, "--lease", "1")
    try:
        wait_for("the task to start", lambda: log_lines(log, "slow") == 1)
        frozen.send_signal(signal.SIGSTOP)
        other = start_worker(tf, store_url, env, "--lease", "1")
        wait_for("the takeover", lambda: log_lines(log, "slow") == 2)
        assert len(store.deaths(store.died_hashes().pop())) == 1, "taken for dead while it is frozen"
        frozen.send_signal(signal.SIGCONT)
        wait_for("the frozen worker to find its claim taken over", lambda: store.died_hashes() == set())
        gate.touch()
        assert other.wait(30) == 0
    finally:
        frozen.kill()
        frozen.wait(30)


RETRYING = NOTE_PREAMBLE + """
@TaskGenerator(retries=3, retry_on=(OSError,))
def flaky(counter):
    n = int(open(counter).read()) if os.path.exists(counter) else 0
    with open(counter, "w") as f:
        f.write(str(n + 1))
    note("flaky", n)
    if n < 2:
        raise OSError(f"attempt {{n}} fails")
    return n

@TaskGenerator(retries=3, retry_on=(OSError,))
def wrong():
    note("wrong")
    raise ValueError("not an OSError")

@TaskGenerator(retries=1)
def always():
    note("always")
    raise RuntimeError("every time")

a = flaky({counter!r})
b = wrong()
c = always()
"""


def test_retries_run_a_task_again_on_the_exceptions_given_and_record_the_attempts(tmp_path, store_url):
    tf = write_taskfile(tmp_path, RETRYING.format(counter=str(tmp_path / "counter")))
    log = tmp_path / "log"
    proc = run_cli("execute", tf, "--store", store_url, "--keep-going", env={"TF_TEST_LOG": str(log)}, check=1)
    assert log_lines(log, "flaky") == 3, "failed twice, then succeeded"
    assert log_lines(log, "wrong") == 1, "a ValueError is not retried on OSError"
    assert log_lines(log, "always") == 2, "retries=1: once more, any Exception"
    assert proc.stderr.count("running it again") == 3
    shown = run_cli("show", tf, "--store", store_url, "flaky", check=0).stdout
    assert "state      finished" in shown and "attempts   3" in shown
    assert "attempt 1 raised OSError: attempt 0 fails" in shown and "attempt 2 raised OSError" in shown
    store = open_store(store_url)
    records = {r["name"]: r for r in (store.load_failure(h) for h in store.failed_hashes())}
    assert set(records) == {"taskfile.wrong", "taskfile.always"}
    assert "attempts" not in records["taskfile.wrong"]
    assert records["taskfile.always"]["attempts"] == 2
    assert [e["message"] for e in records["taskfile.always"]["earlier"]] == ["every time"]
    failed = run_cli("status", tf, "--store", store_url, "--failed", check=0).stdout
    assert "RuntimeError: every time (after 2 attempts)" in failed


def f(x):
    return x


def test_retries_do_not_change_the_hash_and_bad_declarations_are_one_line_errors():
    from taskflow import Task, TaskGenerator
    from taskflow.errors import TaskDeclarationError

    assert Task(f, 1).hash == Task(f, 1, retries=2).hash == TaskGenerator(retries=5, retry_on=KeyError)(f)(1).hash
    assert Task(f, 1, retries=2, retry_on=OSError).retry.on == (OSError,)
    for bad in ({"retries": -1}, {"retries": "2"}, {"retry_on": OSError}, {"retries": 1, "retry_on": int},
                {"retries": 1, "retry_on": (KeyboardInterrupt,)}):
        with pytest.raises(TaskDeclarationError):
            Task(f, 1, **bad)


def test_through_two_clients_of_a_shared_folder_each_death_counts_once(two_clients):
    """Workers on two hosts (sshfs clients) take turns: none sees the other's pid, so each dead
    claim goes stale by its lease and is taken over through the other client's caches."""
    tf = write_taskfile(two_clients.origin, CRASHING)
    log = two_clients.origin / "log"
    env = {**os.environ, "TF_TEST_LOG": str(log)}
    env.pop("TASKFLOW_STORE", None)
    codes = []
    for view in [two_clients.mount_a, two_clients.mount_b] * 3:
        host = two_clients.host_for(view)
        proc = two_clients.spawn([sys.executable, "-m", "taskflow", "execute", view / tf.name, "-q",
                                  "--lease", "2"], host=host, cwd=view, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _, err = proc.communicate(timeout=120)
        codes.append(proc.returncode)
        if proc.returncode != -signal.SIGKILL:
            break
    assert codes == [-signal.SIGKILL] * 3 + [1], (codes, err)
    assert log_lines(log, "crash") == 3
    failed = run_cli("status", tf, "--failed", check=0).stdout
    assert f"WorkerDied: {REASON}" in failed
    record = open_store(str(two_clients.origin / "taskfile.taskflow"))
    [h] = record.failed_hashes()
    assert [d["host"] for d in record.load_failure(h)["died"]] == ["client-a", "client-b", "client-a"]
