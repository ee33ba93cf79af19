"""taskflow.web.snapshot: one store reading per refresh period, whatever the number of browsers."""
from __future__ import annotations

import threading

from conftest import run_cli, write_taskfile
from taskflow.stores.folder import FolderStore as Store
from taskflow.web import snapshot
from taskflow.web.snapshot import Snapshots

TASKFILE = """
from taskflow import Task

def double(x):
    return 2 * x

xs = [Task(double, i) for i in range(5)]
"""


def counting(monkeypatch) -> list:
    calls = []
    real = snapshot.compute

    def compute(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(snapshot, "compute", compute)
    return calls


def test_many_browsers_at_once_cost_one_store_reading(tmp_path, monkeypatch):
    tf = write_taskfile(tmp_path, TASKFILE)
    snaps = Snapshots(str(tf), Store(str(tmp_path / "taskfile.taskflow")), refresh=60)
    calls = counting(monkeypatch)
    start = threading.Barrier(8)
    seen = []

    def browser():
        start.wait()
        seen.append(snaps.overview()["total"]["ready"])
        seen.append(snaps.status_json_text())

    threads = [threading.Thread(target=browser) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert seen.count(5) == 8


def test_a_new_reading_after_the_refresh_period_or_an_action(tmp_path, monkeypatch):
    tf = write_taskfile(tmp_path, TASKFILE)
    snaps = Snapshots(str(tf), Store(str(tmp_path / "taskfile.taskflow")), refresh=0.0)
    calls = counting(monkeypatch)
    snaps.overview()
    run_cli("execute", tf, "-q", check=0)
    assert snaps.overview()["total"]["finished"] == 5
    assert len(calls) == 2
    snaps.refresh = 60
    snaps.invalidate_cache()
    snaps.overview()
    snaps.overview()
    assert len(calls) == 3


def test_status_json_text_is_what_status_json_prints(tmp_path):
    tf = write_taskfile(tmp_path, TASKFILE)
    run_cli("execute", tf, "-q", check=0)
    snaps = Snapshots(str(tf), Store(str(tmp_path / "taskfile.taskflow")))
    assert snaps.status_json_text() == run_cli("status", tf, "--json", check=0).stdout


def test_the_taskfile_is_loaded_again_when_it_changes(tmp_path):
    tf = write_taskfile(tmp_path, TASKFILE)
    snaps = Snapshots(str(tf), Store(str(tmp_path / "taskfile.taskflow")), refresh=0.0)
    assert snaps.overview()["tasks"] == 5
    import os
    tf.write_text(TASKFILE.replace("range(5)", "range(7)"))
    os.utime(tf, (1, 1))  # another mtime, whatever the clock's resolution
    assert snaps.overview()["tasks"] == 7
