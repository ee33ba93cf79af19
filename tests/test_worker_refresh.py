"""worker/refresh.py: what a worker learns of the tasks other workers hold, and what it costs."""
from __future__ import annotations

import threading
import time

from conftest import write_taskfile
from taskflow.execute import execute
from taskflow.stores.folder import FolderStore as Store
from taskflow.stores.folder.claims import FolderClaims
from taskflow.worker import Options, Outcome

ONE = """
from taskflow import TaskGenerator

@TaskGenerator
def double(x):
    return 2 * x

result = double(21)
"""


def _counting(monkeypatch) -> dict[str, int]:
    calls = {"inspect": 0, "present": 0}
    inspect, present = FolderClaims.inspect, FolderClaims.present

    def counted_inspect(self, task_hash):
        calls["inspect"] += 1
        return inspect(self, task_hash)

    def counted_present(self, task_hash):
        calls["present"] += 1
        return present(self, task_hash)

    monkeypatch.setattr(FolderClaims, "inspect", counted_inspect)
    monkeypatch.setattr(FolderClaims, "present", counted_present)
    return calls


def test_a_task_held_live_by_another_worker_is_read_once_then_only_looked_at(tmp_path, monkeypatch):
    tf = write_taskfile(tmp_path, ONE)
    store = Store(str(tmp_path / "store"))
    import taskflow

    h = taskflow.init(str(tf), store=store.path).result.hash
    other = store.claims(lease=60, worker="other")
    claim = other.claim(h)
    assert claim is not None
    calls = _counting(monkeypatch)
    summary = execute(str(tf), store, options=Options(wait=1.5))
    assert summary.outcome is Outcome.REMAINING
    assert calls["present"] >= 4, "the idle worker kept looking"
    assert calls["inspect"] <= 2, "a claim judged live with a minute left is not read again"
    assert other.still_ours(claim)
    other.release(claim)


def test_a_claim_given_back_without_a_result_is_taken_at_the_next_look(tmp_path):
    tf = write_taskfile(tmp_path, ONE)
    store = Store(str(tmp_path / "store"))
    import taskflow

    ns = taskflow.init(str(tf), store=store.path)
    other = store.claims(lease=60, worker="other")
    claim = other.claim(ns.result.hash)
    assert claim is not None
    threading.Timer(0.5, other.release, [claim]).start()
    started = time.monotonic()
    summary = execute(str(tf), store, options=Options(wait=30))
    assert summary.outcome is Outcome.FINISHED and summary.ran == 1
    assert time.monotonic() - started < 10, "not left waiting for the lease of a claim that is gone"
    assert taskflow.value(ns.result) == 42


def test_a_claim_that_can_have_gone_stale_is_read_again_and_taken_over(tmp_path):
    tf = write_taskfile(tmp_path, ONE)
    store = Store(str(tmp_path / "store"))
    import taskflow

    ns = taskflow.init(str(tf), store=store.path)
    other = store.claims(lease=2, worker="other")  # a lease that runs out while the worker waits
    assert other.claim(ns.result.hash) is not None
    summary = execute(str(tf), store, options=Options(wait=30, lease=60))
    assert summary.outcome is Outcome.FINISHED and summary.ran == 1
    assert taskflow.value(ns.result) == 42


def test_news_that_leaves_an_idle_worker_nothing_to_do_is_followed_by_a_first_pause(tmp_path, monkeypatch):
    """Every idle worker refreshing again at once at each task others finish is what made the end of
    a run with 64 workers cost tens of system calls per task: changed or not, it pauses first."""
    from taskflow.worker import loop, refresh

    tf = write_taskfile(tmp_path, ONE)
    store = Store(str(tmp_path / "store"))
    import taskflow

    other = store.claims(lease=60, worker="other")
    claim = other.claim(taskflow.init(str(tf), store=store.path).result.hash)
    assert claim is not None
    events: list[tuple[str, float]] = []
    real_refresh, real_sleep = refresh.Refresh._refresh, time.sleep

    def refreshed(self):
        real_refresh(self)
        events.append(("refresh", 0.0))
        return True  # as if others had finished something this worker does not need

    def paused(seconds):
        events.append(("sleep", seconds))
        real_sleep(seconds)

    monkeypatch.setattr(refresh.Refresh, "_refresh", refreshed)
    monkeypatch.setattr(loop.time, "sleep", paused)
    summary = execute(str(tf), store, options=Options(wait=0.3))
    assert summary.outcome is Outcome.REMAINING
    kinds = [k for k, _ in events]
    assert kinds.count("refresh") >= 3
    assert all(a != b for a, b in zip(kinds, kinds[1:])), "a pause between two refreshes"
    assert all(s <= loop.IDLE_FIRST_SLEEP for k, s in events if k == "sleep"), "the first pause, again"
    other.release(claim)
