"""Results a client's stale listing lacks: check and wait confirm them by opening, status says it may lag."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import run_cli, status_json, write_taskfile

LEAVES = """
from taskflow import TaskGenerator

@TaskGenerator
def leaf(i):
    return i

@TaskGenerator
def total(xs):
    return sum(xs)

leaves = [leaf(i) for i in range(600)]
"""


class HidingListing:
    """A store whose listing of results omits some, as a client's stale directory cache does."""

    def __init__(self, hidden: set[str]):
        self.hidden = hidden

    def __call__(self, store_class):
        hidden = self.hidden
        original = store_class.finished_hashes

        def finished_hashes(self):
            return original(self) - hidden
        return finished_hashes


@pytest.fixture
def finished_leaves(tmp_path):
    import taskflow
    from taskflow.stores.folder import FolderStore as Store

    tf = write_taskfile(tmp_path, LEAVES)
    run_cli("execute", tf, "-q", check=0)
    ns = taskflow.init(str(tf))
    return tf, ns, Store(str(tmp_path / "taskfile.taskflow"))


def _report(tf, store, confirm):
    from taskflow.statusreport import compute
    from taskflow.taskfile import load

    loaded = load(str(tf), store)
    return compute(loaded.tasks, store, loaded.complete, confirm=confirm)


def test_a_stale_listing_is_confirmed_by_opening_what_a_finished_run_recorded(finished_leaves, monkeypatch):
    from taskflow.stores.folder import FolderStore as Store

    tf, ns, store = finished_leaves
    hidden = {t.hash for t in ns.leaves[::7]}
    monkeypatch.setattr(Store, "finished_hashes", HidingListing(hidden)(Store))
    opened = []
    real_open = os.open

    def counting_open(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(os, "open", counting_open)

    report = _report(tf, store, confirm=False)  # status: counts from the listing, and a note
    assert report.total["finished"] == 600 - len(hidden)
    assert report.unconfirmed == len(hidden) and report.to_json()["may_lag"] is True
    assert "counts may lag behind the filesystem's caches" in report.table()
    assert not any("/results/" in p for p in opened)  # status opens no result

    report = _report(tf, store, confirm=True)  # check and wait
    assert report.all_finished and report.unconfirmed == 0
    assert sorted(p for p in opened if "/results/" in p) == sorted(store.result_path(h) for h in hidden)


def test_a_listed_result_vouches_for_its_inputs(tmp_path, monkeypatch):
    import taskflow
    from taskflow import confirm
    from taskflow.stores.folder import FolderStore as Store

    tf = write_taskfile(tmp_path, LEAVES + "result = total(leaves[:10])\n")
    run_cli("execute", tf, "-q", check=0)
    ns = taskflow.init(str(tf))
    store = Store(str(tmp_path / "taskfile.taskflow"))
    confirm.forget_complete(store)  # no record: only the dependent is a sign
    hidden = {ns.leaves[3].hash, ns.leaves[500].hash}
    monkeypatch.setattr(Store, "finished_hashes", HidingListing(hidden)(Store))
    assert confirm.hinted(store, _loaded_tasks(tf, store), store.finished_hashes()) == {ns.leaves[3].hash}
    report = _report(tf, store, confirm=True)
    assert report.total["finished"] == 600  # leaf 500 has no sign: it stays missing


def _loaded_tasks(tf, store):
    from taskflow.taskfile import load

    return load(str(tf), store).tasks


def test_a_graph_that_has_not_run_costs_no_open_per_missing_result(tmp_path, monkeypatch):
    from taskflow.stores.folder import FolderStore as Store

    tf = write_taskfile(tmp_path, LEAVES)
    run_cli("execute", tf, "-q", "--max-tasks", "5", check=3)
    store = Store(str(tmp_path / "taskfile.taskflow"))
    opened = []
    real_open = os.open

    def counting_open(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(os, "open", counting_open)
    report = _report(tf, store, confirm=True)
    assert report.total["finished"] == 5 and report.unconfirmed == 0
    assert [p for p in opened if p.startswith(store.path)] == [p for p in opened if "/complete/" in p]
    assert len(opened) <= 1


def test_the_record_of_a_finished_run_goes_with_invalidate(finished_leaves):
    tf, ns, store = finished_leaves
    assert os.listdir(store.complete_dir)
    run_cli("invalidate", tf, "--target", "leaf", check=0)
    assert not os.path.exists(store.complete_dir) or os.listdir(store.complete_dir) == []
    data = status_json(tf)
    assert data["may_lag"] is False and data["total"]["ready"] == 600


# -- on two clients of one shared folder --------------------------------------------------------


def test_check_and_wait_through_another_client_see_a_run_finished_there_just_now(two_clients):
    tf = write_taskfile(two_clients.origin, LEAVES)
    via_a = two_clients.mount_a / tf.name
    via_b = two_clients.mount_b / tf.name
    env = dict(os.environ, TASKFLOW_LEASE="30")
    env.pop("TASKFLOW_STORE", None)

    def run(view, host, *argv):
        proc = two_clients.spawn([sys.executable, "-m", "taskflow", *argv], host=host, cwd=view, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=300)
        return proc.returncode, out, err

    code, _, err = run(two_clients.mount_a, "client-a", "execute", via_a, "-q", "--max-tasks", "250")
    assert code == 3, err
    code, out, err = run(two_clients.mount_b, "client-b", "status", via_b, "--json")  # B caches the listings
    assert code == 0 and json.loads(out)["total"]["finished"] == 250, err
    workers = [two_clients.spawn([sys.executable, "-m", "taskflow", "execute", via_a, "-q"], host="client-a",
                                 cwd=two_clients.mount_a, env=env, stderr=subprocess.PIPE, text=True)
               for _ in range(3)]
    for w in workers:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
    # Right after, through the other client: status counts from its listing, or says it may lag.
    code, out, err = run(two_clients.mount_b, "client-b", "status", via_b, "--json")
    data = json.loads(out)
    assert data["total"]["finished"] == 600 or (data["may_lag"] and data["unlisted"] > 0), data["total"]
    code, _, err = run(two_clients.mount_b, "client-b", "check", via_b)
    assert code == 0, err
    code, out, err = run(two_clients.mount_b, "client-b", "wait", via_b, "--timeout", "0")
    assert code == 0, out + err


def test_results_confirmed_by_opening_open_the_barrier_they_stand_for(tmp_path, monkeypatch):
    import taskflow
    from taskflow.statusreport import confirmed
    from taskflow.stores.folder import FolderStore as Store

    tf = write_taskfile(tmp_path, LEAVES + "from taskflow import barrier\nbarrier()\nresult = total(leaves)\n")
    run_cli("execute", tf, "-q", check=0)
    ns = taskflow.init(str(tf))
    store = Store(str(tmp_path / "taskfile.taskflow"))
    hidden = {t.hash for t in ns.leaves[::5]}
    monkeypatch.setattr(Store, "finished_hashes", HidingListing(hidden)(Store))
    loaded, report = confirmed(str(tf), store)
    assert loaded.complete and report.all_finished and report.total["finished"] == 601
