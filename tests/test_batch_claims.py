"""Batch claims (stores/folder/batchclaims.py, worker/batching.py): short tasks claimed many at a
time, with every guarantee still per task. Real worker processes racing, killed with kill -9 and
frozen with SIGSTOP; the tasks log each run to an O_APPEND file (concurrency_helpers)."""
from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from concurrency_helpers import TASKFILE_HEAD, Env, wait_until
from taskflow.stores.folder import FolderStore as Store
from taskflow.stores.folder.batchclaims import BATCH, BatchClaims, MemberClaim
from taskflow.worker.batching import MAX_BATCH, Sizer


@pytest.fixture(autouse=True)
def batches_by_default(monkeypatch):
    """Workers claim short tasks in batches unless told otherwise: nothing in the environment says."""
    monkeypatch.delenv("TASKFLOW_BATCH_TIME", raising=False)

# Each task notes its run, and how many tasks the batch files in locks/ name at that moment.
TINY = TASKFILE_HEAD + """
import glob, json
N = int(os.environ.get("TF_TASKS", "3000"))
SLEEP = float(os.environ.get("TF_SLEEP", "0"))
STORE = os.environ.get("TF_STORE_PATH", "")
KILL_AT = int(os.environ.get("TF_KILL_AT", "-1"))
GATE_AT = int(os.environ.get("TF_GATE_AT", "-1"))

def batched():
    sizes = []
    for path in glob.glob(os.path.join(STORE, "locks", "*.batch")):
        try:
            with open(path) as f:
                sizes.append(int(json.load(f)["task"].split()[-1]))
        except (OSError, ValueError, KeyError):
            pass
    return max(sizes, default=0)

@TaskGenerator
def tiny(i):
    note("run", i, os.getpid(), batched() if STORE else 0)
    if i == KILL_AT:
        os.kill(os.getpid(), 9)
    if i == GATE_AT:
        note("gated", i, os.getpid())
        gate()
    if SLEEP:
        time.sleep(SLEEP)
    return os.getpid()

results = [tiny(i) for i in range(N)]
"""


@pytest.fixture
def make_env(tmp_path):
    made = []

    def make(lease: float | None = None) -> Env:
        env = Env(tmp_path, TINY, lease)
        made.append(env)
        return env

    yield make
    for env in made:
        env.cleanup()


def runs(env: Env) -> dict[int, list[int]]:
    """Task: the pids that ran it, in order."""
    got: dict[int, list[int]] = collections.defaultdict(list)
    for e in env.events("run"):
        got[int(e[1])].append(int(e[2]))
    return got


def owners(tmp_path, lease: float, *workers: str) -> tuple[Store, list[BatchClaims]]:
    """A new folder store, and the batch claims of each named worker on it."""
    store = Store(str(tmp_path / "s"))
    store.ensure()
    return store, [BatchClaims(store, lease=lease, worker=w) for w in workers]


def members_of(env: Env) -> dict[str, str]:
    """Batch members in locks/: task hash -> the batch file it is another name of."""
    folder = env.store / "locks"
    names = os.listdir(folder)
    batches = {os.stat(folder / n).st_ino: n for n in names if n.endswith(BATCH)}
    return {n: batches[os.stat(folder / n).st_ino] for n in names
            if "." not in n and os.stat(folder / n).st_ino in batches}


def task_hashes(env: Env, n: int) -> list[str]:
    code = ("import json, taskflow; ns = taskflow.init(%r, store=%r); print(json.dumps([t.hash for t in ns.results]))"
            % (str(env.taskfile), str(env.store)))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env.env({"TF_TASKS": str(n)}), cwd=env.folder, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def status_total(env: Env, extra: dict) -> dict:
    proc = subprocess.run([sys.executable, "-m", "taskflow", "status", str(env.taskfile), "--store", str(env.store),
                           "--json"], capture_output=True, text=True, env=env.env(extra), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["total"]


def all_finished(env: Env, extra: dict, count: int) -> None:
    total = status_total(env, extra)
    assert total == {"waiting": 0, "ready": 0, "running": 0, "finished": count, "failed": 0}, total


def values(env: Env, extra: dict) -> list:
    code = ("import json, taskflow; ns = taskflow.init(%r, store=%r); print(json.dumps(taskflow.value(ns.results)))"
            % (str(env.taskfile), str(env.store)))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env.env(extra),
                          cwd=env.folder, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# -- the batch size ----------------------------------------------------------------------------


class _Records:
    def __init__(self, live: int):
        self.live = live

    def worker_records(self):
        return [type("R", (), {"live": True})() for _ in range(self.live)]


def test_batches_start_at_one_grow_within_the_time_bound_and_leave_work_for_other_workers():
    sizer = Sizer(batch_time=1.0, lease=300)
    store = _Records(live=1)
    assert sizer.size("f", 10_000, store) == 1, "unknown duration: one task"
    sizer.ran("f", 1, 0.0001)
    assert sizer.size("f", 10_000, store) == 4, "grows at most fourfold"
    sizer.ran("f", 4, 0.0004)
    sizer.ran("f", 16, 0.0016)
    sizer.ran("f", 64, 0.0064)
    sizer.ran("f", 256, 0.0256)
    assert sizer.size("f", 100_000, store) == MAX_BATCH
    assert sizer.size("f", 100, store) == 50, "no more than the ready tasks over twice the workers"
    crowd = Sizer(batch_time=1.0, lease=300)
    crowd.ran("f", 16, 0.0016)
    assert crowd.size("f", 100, _Records(live=10)) == 5
    slow = Sizer(batch_time=1.0, lease=300)
    slow.ran("g", 1, 0.3)
    for _ in range(5):
        n = slow.size("g", 10_000, store)
        assert n * 0.3 <= 1.0
        slow.ran("g", n, n * 0.3)
    assert slow.size("g", 10_000, store) == 3
    slow.ran("g", 3, 3 * 0.7)  # slower now: down at once
    assert slow.size("g", 10_000, store) == 1
    short_lease = Sizer(batch_time=1.0, lease=2.0)
    short_lease.ran("f", 1, 0.05)
    for _ in range(4):
        short_lease.ran("f", 4, 0.2)
    assert short_lease.size("f", 10_000, store) == 4, "a tenth of the lease at most: 0.2 s"
    assert Sizer(batch_time=0, lease=300).size("f", 10_000, store) == 1, "--batch-time 0: off"


# -- the claims ----------------------------------------------------------------------------------


def test_a_batch_claims_only_free_tasks_each_member_judged_as_a_claim_and_released_alone(tmp_path):
    store, (a, b) = owners(tmp_path, 60, "a", "b")
    hashes = [f"{i:02x}" * 16 for i in range(6)]
    plain = b.claim(hashes[2])
    assert plain is not None
    got = a.claim_batch(hashes)
    assert [c.task_hash for c in got] == [h for h in hashes if h != hashes[2]]
    assert all(isinstance(c, MemberClaim) for c in got)
    assert b.claim_batch(hashes) == [] and b.claim(hashes[0]) is None, "a live member is never taken"
    [batch] = [n for n in os.listdir(store.locks_dir) if n.endswith(BATCH)]
    assert a.claimed() == set(hashes), "the batch file is no task's claim"
    info = b.inspect(hashes[0])
    assert info is not None and not info.stale and info.owner["worker"] == "a"
    assert b.owner(hashes[1])["pid"] == os.getpid()
    assert all(a.holds(c) and a.still_ours(c) for c in got)
    assert a.renew_all(got) and got[0].batch.renewals == 1
    assert a.release(got[0]) and not os.path.lexists(store.lock_path(hashes[0]))
    assert not a.holds(got[0]) and not a.release(got[0])
    assert b.claim(hashes[0]) is not None, "a released member is free at once"
    a.release_all(got)
    assert sorted(os.listdir(store.locks_dir)) == sorted([hashes[0], hashes[2]]), "batch file gone too"
    assert batch not in os.listdir(store.locks_dir)


def test_a_member_taken_over_after_the_lease_is_not_the_old_owners_any_more(tmp_path):
    store, (a, b) = owners(tmp_path, 2, "a", "b")
    hashes = [f"{i:02x}" * 16 for i in range(3)]
    got = a.claim_batch(hashes)
    old = time.time() - 60
    os.utime(got[0].batch.path, (old, old))  # not renewed for a minute: stale
    for c in got:
        c.made -= 60  # and old on the owner's clock too: no answer without a look
    info = b.inspect(hashes[1])
    assert info is not None and info.stale
    taken = b.claim(hashes[1])
    assert taken is not None and not isinstance(taken, MemberClaim) and taken.died == 1
    deaths = os.listdir(store.attempts_dir)
    assert len(deaths) == 1 and deaths[0].startswith(hashes[1]), "the death counts for that member alone"
    assert not a.holds(got[1]) and got[1].why == "another worker took it over"
    assert a.holds(got[0]) and a.holds(got[2]), "its other members are still its own"
    a.release_all(got)
    assert b.holds(taken) and os.path.exists(store.lock_path(hashes[1])), "the taker's claim is left alone"
    assert sorted(os.listdir(store.locks_dir)) == [hashes[1]]
    assert os.listdir(store.attempts_dir) == [], "its owner came back: it did not die"


def test_members_are_other_names_of_the_batch_file_renewed_with_it(tmp_path):
    store, (a,) = owners(tmp_path, 60, "a")
    hashes = [f"{i:02x}" * 16 for i in range(3)]
    got = a.claim_batch(hashes)
    batch = got[0].batch.path
    assert all(not os.path.islink(c.path) and os.path.samefile(c.path, batch) for c in got)
    old = time.time() - 30
    os.utime(batch, (old, old))
    assert a.renew_all(got)
    assert all(time.time() - os.stat(c.path).st_mtime < 10 for c in got), "one renewal renews every member"
    os.unlink(batch)  # a hand, or cleanup, removed the batch file's name
    os.utime(got[1].path, (old, old))
    assert a.renew_all(got), "renewed through a member's name"
    assert all(time.time() - os.stat(c.path).st_mtime < 10 for c in got)
    for c in got:
        c.made -= 60  # old on the owner's clock: every answer is a look
    assert all(a.holds(c) for c in got)
    a.release_all(got)
    assert os.listdir(store.locks_dir) == []


def test_a_batch_whose_every_name_was_taken_is_lost_and_renews_nothing(tmp_path):
    store, (a, b) = owners(tmp_path, 2, "a", "b")
    hashes = [f"{i:02x}" * 16 for i in range(2)]
    got = a.claim_batch(hashes)
    os.unlink(got[0].batch.path)
    old = time.time() - 60
    os.utime(got[0].path, (old, old))
    taken = [b.claim(h) for h in hashes]
    assert all(t is not None for t in taken)
    before = [os.stat(t.path).st_mtime for t in taken]
    assert not a.renew_all(got) and got[0].batch.lost
    assert [os.stat(t.path).st_mtime for t in taken] == before, "the takers' claims were not touched"
    assert all(b.still_ours(t) for t in taken)


def test_a_symbolic_link_to_nothing_in_locks_is_a_stale_claim_and_taken_over(tmp_path):
    store = Store(str(tmp_path / "s"))
    store.ensure()
    h = "ab" * 16
    os.symlink("gone" + BATCH, store.lock_path(h))
    claims = BatchClaims(store, lease=60, worker="w")
    assert claims.claimed() == {h}
    info = claims.inspect(h)
    assert info is not None and info.stale and info.reason == "a link to nothing"
    assert claims.owner(h) == {}
    claim = claims.claim(h)
    assert claim is not None and claims.holds(claim)
    assert not os.path.islink(store.lock_path(h))
    assert claims.release(claim) and os.listdir(store.locks_dir) == []


def test_a_symbolic_link_to_nothing_in_locks_does_not_stop_a_worker(make_env):
    env = make_env()
    hashes = task_hashes(env, 20)
    (env.store / "locks").mkdir(parents=True, exist_ok=True)
    os.symlink("dead" + BATCH, env.store / "locks" / hashes[7])
    env.run("-q", env={"TF_TASKS": "20"}, timeout=60).expect(0)
    assert sorted(runs(env)) == list(range(20)) and all(len(p) == 1 for p in runs(env).values())
    assert os.listdir(env.store / "locks") == []


# -- workers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("pack", ["0", "1"])
def test_many_workers_racing_on_thousands_of_tiny_tasks_run_each_exactly_once(make_env, pack):
    env = make_env()
    extra = {"TASKFLOW_PACK": pack, "TF_STORE_PATH": str(env.store)}
    workers = [env.start("-q", env=extra) for _ in range(4)]
    for w in workers:
        w.expect(0)
    counted = runs(env)
    assert sorted(counted) == list(range(3000))
    assert [i for i, pids in counted.items() if len(pids) != 1] == [], "every task exactly once"
    assert len({p for pids in counted.values() for p in pids}) >= 2, "the workers shared the work"
    batched = [int(e[3]) for e in env.events("run")]
    assert sum(1 for b in batched if b > 1) > 1000, "most tasks ran in batches"
    env.assert_all_finished(3000)
    assert os.listdir(env.store / "locks") == [], "every member and batch file released"


def test_no_batches_with_batch_time_zero(make_env):
    env = make_env()
    env.run("-q", "--batch-time", "0", env={"TF_TASKS": "300", "TF_STORE_PATH": str(env.store)}).expect(0)
    assert {int(e[3]) for e in env.events("run")} == {0}
    assert sorted(runs(env)) == list(range(300))


def test_slow_tasks_are_batched_no_further_than_fits_the_bound(make_env):
    env = make_env()
    extra = {"TF_TASKS": "16", "TF_SLEEP": "0.3", "TF_STORE_PATH": str(env.store)}
    env.run("-q", "--batch-time", "1", env=extra).expect(0)
    sizes = [int(e[3]) for e in env.events("run")]
    assert max(sizes) <= 3, sizes  # 0.3 s each: three fit in 1 s
    assert max(sizes) >= 2, sizes  # but they are batched
    assert sorted(runs(env)) == list(range(16))


def test_a_batch_owner_killed_mid_batch_keeps_what_it_saved_and_the_rest_runs_once_elsewhere(make_env):
    env = make_env(lease=2.0)
    extra = {"TF_TASKS": "400", "TF_SLEEP": "0.01", "TF_STORE_PATH": str(env.store)}
    killed = env.start("-q", env={**extra, "TF_KILL_AT": "150"})
    assert killed.wait(120) == -signal.SIGKILL
    members = members_of(env)
    assert task_hashes(env, 400)[150] in members, "killed inside a batch: its unfinished members are left"
    assert len(set(members.values())) == 1
    assert [int(e[3]) for e in env.events("run") if e[1] == "150"][0] >= 2, "the kill came inside a batch"
    other = env.start("-q", env=extra)
    other.expect(0)
    counted = runs(env)
    assert sorted(counted) == list(range(400))
    got = values(env, extra)
    saved_by_killed = {i for i, pid in enumerate(got) if pid == killed.pid}
    by_other = {i for i, pids in counted.items() if other.pid in pids}
    assert len(saved_by_killed) >= 100, "what it saved before the kill stays"
    assert not (by_other & saved_by_killed), "what the killed worker saved is not run again"
    assert by_other == set(range(400)) - saved_by_killed and all(got[i] == other.pid for i in by_other)
    assert all(counted[i].count(other.pid) == 1 for i in by_other), "the rest run once each"
    assert 150 in by_other and set(members) <= {h for h in task_hashes(env, 400)}
    assert "took over stale claim" in other.stderr
    all_finished(env, extra, 400)
    left = os.listdir(env.store / "locks")
    assert left == [] or all(n.endswith(BATCH) for n in left), left  # the dead owner's batch file at most
    proc = subprocess.run([sys.executable, "-m", "taskflow", "cleanup", str(env.taskfile), "--store", str(env.store),
                           "--locks"], capture_output=True, text=True, env=env.env(extra), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert os.listdir(env.store / "locks") == [], "cleanup removes it"


def test_a_frozen_batch_owner_saves_no_member_another_worker_took_over_and_status_shows_members(make_env):
    env = make_env(lease=2.0)
    extra = {"TF_TASKS": "200", "TF_SLEEP": "0.01", "TF_STORE_PATH": str(env.store)}
    frozen = env.start("-q", env={**extra, "TF_GATE_AT": "100"})
    wait_until(lambda: env.events("gated"), "the owner reaches the gated task")
    members = members_of(env)
    assert [int(e[3]) for e in env.events("run") if e[1] == "100"][0] >= 2, "the gated task is one of a batch"
    # Members finished before the gate have given their names back; the gated one and any after it are left.
    assert task_hashes(env, 200)[100] in members and len(set(members.values())) == 1
    proc = subprocess.run([sys.executable, "-m", "taskflow", "status", str(env.taskfile), "--store", str(env.store),
                           "--running"], capture_output=True, text=True, env=env.env(extra), timeout=120)
    assert proc.returncode == 0, proc.stderr
    running = [line for line in proc.stdout.splitlines() if line.startswith("running ")]
    assert len(running) == len(members), proc.stdout
    assert all(f"pid={frozen.pid} " in line for line in running), "each member shows the batch's owner"
    assert status_total(env, extra)["running"] == len(members)
    frozen.signal(signal.SIGSTOP)
    other = env.start("-q", env=extra)
    other.expect(0)  # waits out the lease, then takes every member over one by one
    assert other.stderr.count("took over stale claim") >= len(members)
    env.open_gate(frozen.pid)
    frozen.signal(signal.SIGCONT)
    frozen.wait(120)
    assert "lost the claim on taskfile.tiny" in frozen.stderr
    got = values(env, extra)
    counted = runs(env)
    taken = {i for i, pids in counted.items() if other.pid in pids}
    assert 100 in taken
    assert all(got[i] == other.pid for i in taken), "the woken owner saved none of them"
    assert all(counted[i].count(frozen.pid) <= 1 for i in taken), "nor ran them once it knew"
    assert all(len(pids) == 1 for i, pids in counted.items() if i not in taken)
    all_finished(env, extra, 200)


def test_a_batch_s_results_are_saved_together_and_each_read_back(tmp_path, monkeypatch):
    from taskflow.encoding import Payload

    monkeypatch.setenv("TASKFLOW_PACK", "1")
    store = Store(str(tmp_path / "s"))
    store.ensure()
    store.expect_results(5000)
    big = b"x" * (100 << 10)  # too large for a pack: a file of its own
    items = [(f"{i:02x}" * 16, Payload(i, {"name": "f"})) for i in range(10)] + [("ff" * 16, Payload(big, {}))]
    sizes = store.save_payloads(items)
    assert len(sizes) == 11 and all(sizes)
    assert os.path.exists(store.result_path("ff" * 16))
    reader = Store(str(tmp_path / "s"))
    assert [reader.load_value(h) for h, _ in items[:10]] == list(range(10))
    assert reader.load_value("ff" * 16) == big
    asked = [h for h, _ in items] + ["ee" * 16, "ff" + "ee" * 15]
    assert reader.finished_among(asked) == {h for h, _ in items}
    assert store.finished_among(asked) == {h for h, _ in items}, "a packing writer lists the shards once"
    store.close_results()


def test_batches_on_two_caching_clients_run_every_task_once(two_clients, tmp_path, monkeypatch):
    from test_sharedfs_concurrency import Run

    monkeypatch.setenv("TF_STORE_PATH", str(two_clients.origin / "store"))  # batches seen on the server's side
    source = TINY.replace('N = int(os.environ.get("TF_TASKS", "3000"))', "N = 1500")
    run = Run(two_clients, tmp_path / "local", source)
    procs = [run.start(view, "-q") for view in two_clients.views for _ in range(2)]
    for proc in procs:
        run.expect(proc, 0, timeout=300)
    counted: dict[int, int] = collections.Counter(int(e[1]) for e in run.events("run"))
    assert sorted(counted) == list(range(1500))
    assert [i for i, n in counted.items() if n != 1] == [], "every task exactly once"
    assert sum(1 for e in run.events("run") if int(e[3]) > 1) > 500, "most tasks ran in batches"
    stderr = "".join(e.read_text() for _, _, e in run.workers)
    assert "store I/O error" not in stderr and "Traceback" not in stderr, stderr[-3000:]
    ran_by = {int(e[1]): int(e[2]) for e in run.events("run")}
    assert run.value("results", two_clients.mount_b) == [ran_by[i] for i in range(1500)]


def test_an_owner_on_one_client_sees_at_once_a_member_taken_over_on_another(two_clients):
    """Seen through sshfs, a member that was a symbolic link went on pointing at its old batch
    for the mount's 20 s cache after another client had put its claim in that place."""
    owner_store, taker_store = Store(str(two_clients.mount_b / "s")), Store(str(two_clients.mount_a / "s"))
    owner_store.ensure()
    owner = BatchClaims(owner_store, lease=2, worker="owner")
    taker = BatchClaims(taker_store, lease=2, worker="taker")
    hashes = [f"{i:02x}" * 16 for i in range(3)]
    got = owner.claim_batch(hashes)
    assert len(got) == 3 and all(owner.holds(c) for c in got)  # read through the owner's caches
    for c in got:
        c.made -= 60
    assert all(owner.holds(c) for c in got), "looked at, and still its own"
    old = time.time() - 60
    os.utime(two_clients.origin / "s" / "locks" / os.path.basename(got[0].batch.path), (old, old))
    wait_until(lambda: (info := taker.inspect(hashes[1])) is not None and info.stale,
               "the taker's client to see the batch stale", timeout=30)
    taken = taker.claim(hashes[1])
    assert taken is not None
    # Through sshfs every file has one name as far as stat says: each member is looked at.
    assert not owner.renew_all(got), "the owner's renewal finds the member taken over"
    assert [c.lost for c in got] == [False, True, False]
    assert not owner.holds(got[1]) and got[1].why == "another worker took it over"
    assert not owner.still_ours(got[1])
    assert owner.holds(got[0]) and owner.holds(got[2])
    owner.release_all(got)
    assert taker.still_ours(taken), "the owner's release left the taker's claim alone"
    assert sorted(os.listdir(two_clients.origin / "s" / "locks")) == [hashes[1]]


def test_a_member_link_refused_with_eperm_for_a_name_given_back_at_once_is_tried_again(tmp_path, monkeypatch):
    """sshfs answers EPERM when the name exists; the winner may have removed it by the time we look."""
    from taskflow.stores.folder import batchclaims

    real = os.link
    calls = []

    def flaky(source, name, *a, **k):
        calls.append(name)
        if len(calls) == 1:
            raise PermissionError(1, "Operation not permitted", source)
        return real(source, name, *a, **k)
    monkeypatch.setattr(batchclaims.os, "link", flaky)
    batch = tmp_path / "x.batch"
    batch.write_bytes(b"claim")
    name = str(tmp_path / "member")
    assert batchclaims._link(str(batch), name) and len(calls) == 2
    assert os.stat(name).st_ino == batch.stat().st_ino
    assert not batchclaims._link(str(batch), name), "an existing name is a lost race"


def test_a_store_refusing_hard_links_gets_one_claim_per_task(tmp_path, monkeypatch, caplog):
    from taskflow.stores.folder import batchclaims

    def refused(source, name, *a, **k):
        raise PermissionError(1, "Operation not permitted", source)
    monkeypatch.setattr(batchclaims.os, "link", refused)
    store = Store(str(tmp_path / "s"))
    store.ensure()
    claims = BatchClaims(store, lease=60, worker="w")
    hashes = [f"{i:02x}" * 16 for i in range(4)]
    got = claims.claim_batch(hashes)
    assert [c.task_hash for c in got] == hashes
    assert not any(isinstance(c, MemberClaim) for c in got), "plain claims, one per task"
    assert sorted(os.listdir(store.locks_dir)) == sorted(hashes), "no batch file left behind"
    assert "refuses hard links" in caplog.text
    claims.release_all(got)
    assert claims.claim_batch(hashes[:2]) and claims.links_refused, "and it does not try again"
