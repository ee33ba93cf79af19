"""Status counts, the notebook status object, and claims shown as running or stale."""
from __future__ import annotations

import json
import os
import time

from conftest import run_cli, write_taskfile

import taskflow
from taskflow.stores.folder.claims import FolderClaims as Leases
from taskflow.stores.folder import FolderStore as Store

GRAPH = """
from taskflow import TaskGenerator

@TaskGenerator
def leaf(i):
    return i

@TaskGenerator
def join(xs):
    return sum(xs)

leaves = [leaf(i) for i in range(5)]
total = join(leaves)
"""


def test_status_object_for_notebooks(tmp_path):
    tf = write_taskfile(tmp_path, GRAPH)
    report = taskflow.status(str(tf))
    assert report.total == {"waiting": 1, "ready": 5, "running": 0, "finished": 0, "failed": 0}
    assert "<table>" in report._repr_html_() and "taskfile.leaf" in report._repr_html_()
    assert "Total" in repr(report)
    run_cli("execute", tf, check=0)
    report = taskflow.status(str(tf))
    assert report.all_finished and report.counts["taskfile.join"]["finished"] == 1


def test_live_and_stale_claims(tmp_path):
    tf = write_taskfile(tmp_path, GRAPH)
    ns = taskflow.init(str(tf))
    store = Store(str(tmp_path / "taskfile.taskflow"))
    leases = Leases(store, lease=60)
    live = leases.claim(ns.leaves[0].hash)
    assert live is not None
    # A claim by a dead process on this host is stale at once.
    dead = leases.claim(ns.leaves[1].hash)
    with open(dead.path, "w") as f:
        json.dump({"host": os.uname().nodename, "boot": open("/proc/sys/kernel/random/boot_id").read().strip(),
                   "pid": 2 ** 22 + 12345, "worker": "ghost", "lease": 60, "started": time.time()}, f)
    data = json.loads(run_cli("status", tf, "--json", check=0).stdout)
    assert data["tasks"]["taskfile.leaf"] == {"waiting": 0, "ready": 4, "running": 1, "finished": 0, "failed": 0}
    text = run_cli("status", tf, "--running", check=0).stdout
    assert "1 stale claim" in text
    assert f"running  taskfile.leaf {ns.leaves[0].hash[:12]}" in text and f"pid={os.getpid()}" in text
    assert "stale    taskfile.leaf" in text and "worker=ghost" in text and "is gone" in text

    removed = run_cli("cleanup", tf, "--locks", check=0).stdout
    assert "removed stale claim" in removed and "ghost" in removed
    assert "kept 1 live claim" in removed
    assert os.path.exists(live.path) and not os.path.exists(dead.path)
    assert leases.release(live)


def test_watch_ends_when_all_finished(tmp_path):
    tf = write_taskfile(tmp_path, GRAPH)
    run_cli("execute", tf, check=0)
    out = run_cli("status", tf, "--watch", "0.2", check=0, timeout=30).stdout
    assert "[####################]       5/5" in out
    assert "Total" in out
