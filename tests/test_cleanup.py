"""cleanup: leftovers go, live claims and current results stay."""
from __future__ import annotations

import os

from conftest import run_cli, write_taskfile

import taskflow
from taskflow.lease import Leases
from taskflow.store import HOST, Store

V1 = """
from taskflow import TaskGenerator

@TaskGenerator
def f(x):
    return x

keep = [f(i) for i in range(3)]
"""
V2 = V1.replace("range(3)", "range(2)")


def test_cleanup_removes_what_no_task_produces(tmp_path):
    tf = write_taskfile(tmp_path, V1)
    run_cli("execute", tf, check=0)
    ns = taskflow.init(str(tf))
    gone = ns.keep[2].hash
    store = Store(str(tmp_path / "taskfile.taskflow"))
    # Leftovers: a dead writer's temp file, a failure record of an old task.
    dead_tmp = os.path.join(store.tmp_dir, f"{gone}.{HOST}.{2**22 + 7}.abc")
    open(dead_tmp, "wb").close()
    live_tmp = os.path.join(store.tmp_dir, f"{gone}.{HOST}.{os.getpid()}.abc")
    open(live_tmp, "wb").close()
    store.save_failure("ff" * 16, {"type": "X", "message": "old"})
    assert not os.path.exists(store.done_dir) or os.listdir(store.done_dir) == [], "workers remove their journals"
    os.makedirs(store.done_dir, exist_ok=True)
    dead_journal = os.path.join(store.done_dir, f"{HOST}.{2**22 + 7}.abc")
    live_journal = os.path.join(store.done_dir, f"{HOST}.{os.getpid()}.abc")
    for path in (dead_journal, live_journal):
        open(path, "wb").close()
    tf.write_text(V2.lstrip("\n"))

    dry = run_cli("cleanup", tf, "--dry-run", check=0).stdout
    assert f"would remove result {gone}" in dry and "would remove failure record " + "ff" * 16 in dry
    assert store.has_result(gone) and os.path.exists(dead_tmp)

    out = run_cli("cleanup", tf, check=0).stdout
    assert f"removed result {gone}" in out and dead_tmp in out
    assert not store.has_result(gone) and not os.path.exists(dead_tmp)
    assert os.path.exists(live_tmp), "a temp file of a live writer must stay"
    assert not os.path.exists(dead_journal) and os.path.exists(live_journal)
    assert store.failed_hashes() == set()
    assert all(store.has_result(t.hash) for t in taskflow.init(str(tf)).keep)
    assert "nothing to remove" in run_cli("cleanup", tf, check=0).stdout


def test_cleanup_never_removes_a_live_claim(tmp_path):
    tf = write_taskfile(tmp_path, V1)
    ns = taskflow.init(str(tf))
    store = Store(str(tmp_path / "taskfile.taskflow"))
    claim = Leases(store, lease=60).claim(ns.keep[0].hash)
    out = run_cli("cleanup", tf, check=0).stdout
    assert "kept 1 live claim" in out
    assert os.path.exists(claim.path)


def test_cleanup_refuses_behind_a_closed_barrier(tmp_path):
    tf = write_taskfile(tmp_path, """
from taskflow import TaskGenerator, barrier

@TaskGenerator
def f(x):
    return x

a = f(1)
barrier()
b = f(2)
""")
    Store(str(tmp_path / "taskfile.taskflow")).ensure()
    proc = run_cli("cleanup", tf, check=2)
    assert "barrier" in proc.stderr
