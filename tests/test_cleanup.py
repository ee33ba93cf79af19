"""cleanup: leftovers go, live claims and current results stay."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from conftest import NOTE_PREAMBLE, run_cli, write_taskfile

import taskflow
from taskflow.stores.folder.claims import FolderClaims as Leases
from taskflow.stores.identity import BOOT_ID
from taskflow.stores.folder import FolderStore as Store
from taskflow.stores.identity import HOST

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


ORDERED = NOTE_PREAMBLE + """
import time

@TaskGenerator
def step(i):
    note(i)
    if i == 0:
        time.sleep(0.6)  # long enough for the worker to write its journal
    if i == 1 and os.environ.get("TF_TEST_HANG"):
        time.sleep(600)
    return i

steps = [step(i) for i in range(100)]
"""


def _killed_worker(tf, log) -> None:
    """A real worker killed with SIGKILL while it runs steps[1]: its claim, clock file and journal stay."""
    env = dict(os.environ, TF_TEST_LOG=str(log), TF_TEST_HANG="1")
    env.pop("TASKFLOW_STORE", None)
    proc = subprocess.Popen([sys.executable, "-m", "taskflow", "execute", str(tf), "-q"], env=env)
    try:
        deadline = time.monotonic() + 60
        while not (log.exists() and log.read_text().split() == ["0", "1"]):
            assert time.monotonic() < deadline and proc.poll() is None, "the worker did not reach steps[1]"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()


def test_leftovers_of_a_dead_worker_on_this_host(tmp_path):
    tf = write_taskfile(tmp_path, ORDERED)
    log = tmp_path / "log"
    _killed_worker(tf, log)
    ns = taskflow.init(str(tf))
    store = Store(str(tmp_path / "taskfile.taskflow"))
    claim = store.lock_path(ns.steps[1].hash)
    assert os.listdir(store.locks_dir) == [os.path.basename(claim)]
    assert len(os.listdir(store.done_dir)) == 1 and len(os.listdir(store.clock_dir)) == 1
    assert len(os.listdir(store.workers_dir)) == 1, "the killed worker's record, fresh but of a dead pid"
    # Killed inside release(), between moving its claim aside and removing it; and
    # what a takeover cut short by a kill leaves (the taker's token, the moved claim).
    with open(claim, "rb") as f:
        record = f.read()
    released = f"{claim}.released.0a1b2c"
    os.rename(claim, released)
    for kind in ("stale", "takeover"):
        with open(f"{claim}.{kind}.3d4e5f", "wb") as f:
            f.write(record)
    # Of another host: only age tells.
    foreign = json.dumps({"host": "far-away-node", "boot": "b", "pid": 7, "worker": "far:7", "lease": 60}).encode()
    fresh, old = f"{claim}.released.f00d", f"{claim}.stale.beef"
    for path in (fresh, old):
        with open(path, "wb") as f:
            f.write(foreign)
    os.utime(old, (time.time() - 25 * 3600,) * 2)
    # Of a live process here (a worker frozen mid-release): kept, however old.
    alive = f"{claim}.released.a11e"
    with open(alive, "wb") as f:
        f.write(json.dumps({"host": HOST, "boot": BOOT_ID, "pid": os.getpid(), "worker": "me", "lease": 60}).encode())
    os.utime(alive, (time.time() - 25 * 3600,) * 2)

    # A lone worker is not misled by them: it runs the tasks in declaration order.
    log.write_text("")
    run_cli("execute", tf, "-q", env={"TF_TEST_LOG": str(log)}, check=0)
    assert [int(x) for x in log.read_text().split()] == list(range(1, 100))

    out = run_cli("cleanup", tf, "--locks", check=0).stdout.splitlines()
    gone = [line for line in out if line.startswith("removed leftover lock file ")]
    assert sorted(line.split()[4] for line in gone) == sorted(
        os.path.basename(p) for p in (released, f"{claim}.stale.3d4e5f", f"{claim}.takeover.3d4e5f", old))
    assert "removed 4 leftover(s) of takeovers and releases cut short in locks/" in out
    assert "nothing to remove" not in out
    assert sorted(os.listdir(store.locks_dir)) == sorted(os.path.basename(p) for p in (fresh, alive)), \
        "another host's may still be in use, and a live process's is"

    out = run_cli("cleanup", tf, check=0).stdout.splitlines()
    assert "removed 1 clock file(s) of dead workers" in out and "removed 1 journal(s) of dead workers" in out
    assert "removed 1 record(s) of workers that died" in out
    assert "nothing to remove" not in out
    assert os.listdir(store.done_dir) == [] and os.listdir(store.clock_dir) == []
    assert os.listdir(store.workers_dir) == []
    assert run_cli("cleanup", tf, check=0).stdout.splitlines() == ["nothing to remove"]


def test_cleanup_counts_each_kind_it_removes(tmp_path):
    tf = write_taskfile(tmp_path, V1)
    run_cli("execute", tf, check=0)
    store = Store(str(tmp_path / "taskfile.taskflow"))
    for i in range(2):
        open(os.path.join(store.tmp_dir, f"x{i}.{HOST}.{2**22 + 7}.abc"), "wb").close()
    store.save_failure("ff" * 16, {"type": "X", "message": "old"})
    tf.write_text(V2.lstrip("\n"))
    dry = run_cli("cleanup", tf, "--dry-run", check=0).stdout.splitlines()
    assert {"would remove 2 temp file(s)", "would remove 1 result(s) no task produces",
            "would remove 1 failure record(s) of tasks no longer declared"} <= set(dry)
    out = run_cli("cleanup", tf, check=0).stdout.splitlines()
    assert {"removed 2 temp file(s)", "removed 1 result(s) no task produces",
            "removed 1 failure record(s) of tasks no longer declared"} <= set(out)


def test_cleanup_removes_suspect_marks_and_completion_records_no_task_declares(tmp_path):
    from taskflow import damage

    tf = write_taskfile(tmp_path, V1)
    run_cli("execute", tf, check=0)
    ns = taskflow.init(str(tf))
    gone, kept = ns.keep[2].hash, ns.keep[0].hash
    store = Store(str(tmp_path / "taskfile.taskflow"))
    assert damage.mark(store, gone, "taskfile.f", "checksum mismatch")
    assert damage.mark(store, kept, "taskfile.f", "checksum mismatch")
    assert len(os.listdir(store.complete_dir)) == 1, "the run recorded its graph as finished"
    tf.write_text(V2.lstrip("\n"))

    dry = run_cli("cleanup", tf, "--dry-run", check=0).stdout.splitlines()
    assert f"would remove suspect mark {gone}" in dry
    assert "would remove 1 suspect mark(s) of tasks no longer declared" in dry
    assert "would remove 1 completion record(s) of other graphs" in dry
    assert store.suspect_hashes() == {gone, kept} and len(os.listdir(store.complete_dir)) == 1

    out = run_cli("cleanup", tf, check=0).stdout.splitlines()
    assert "removed 1 suspect mark(s) of tasks no longer declared" in out
    assert "removed 1 completion record(s) of other graphs" in out
    assert store.suspect_hashes() == {kept}, "a declared task's mark stays for execute to check"
    assert os.listdir(store.complete_dir) == []

    run_cli("execute", tf, check=0)
    assert store.suspect_hashes() == set()
    assert len(os.listdir(store.complete_dir)) == 1
    assert run_cli("cleanup", tf, check=0).stdout.splitlines() == ["nothing to remove"], \
        "the record of the graph FILE declares stays"


def test_cleanup_removes_the_scratch_folder_of_a_doctor_killed_on_this_host(tmp_path):
    tf = write_taskfile(tmp_path, V1)
    run_cli("execute", tf, check=0)
    store = Store(str(tmp_path / "taskfile.taskflow"))
    dead = os.path.join(store.path, "doctor", f"{HOST}.{2**22 + 7}.abc")
    live = os.path.join(store.path, "doctor", f"{HOST}.{os.getpid()}.abc")
    far = os.path.join(store.path, "doctor", "far-away-node.4242.abc")
    for folder in (dead, live, far):
        os.makedirs(os.path.join(folder, "race"))
        open(os.path.join(folder, "race", "x"), "wb").close()

    dry = run_cli("cleanup", tf, "--dry-run", check=0).stdout.splitlines()
    assert f"would remove doctor's scratch folder {dead}" in dry and os.path.isdir(dead)
    out = run_cli("cleanup", tf, check=0).stdout.splitlines()
    assert "removed 1 scratch folder(s) of doctors that died" in out
    assert not os.path.exists(dead)
    assert os.path.isdir(live), "a running doctor keeps its folder"
    assert os.path.isdir(far), "another host's doctor is judged by age only"
    assert run_cli("cleanup", tf, check=0).stdout.splitlines() == ["nothing to remove"]


def test_cleanup_removes_records_of_dead_workers_and_keeps_the_rest(tmp_path):
    tf = write_taskfile(tmp_path, V1)
    run_cli("execute", tf, "-q", check=0)
    store = Store(str(tmp_path / "taskfile.taskflow"))
    me = {"host": HOST, "boot": BOOT_ID, "pid": os.getpid(), "running": True, "interval": 10.0}
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store.publish_worker("alive", me)
    store.publish_worker("killed-here", {**me, "pid": dead.pid})
    store.publish_worker("silent-elsewhere", {**me, "host": "far-away-node", "pid": 7})
    store.publish_worker("exited", {**me, "running": False, "walltime_skips": 3})
    store.publish_worker("skipped-then-killed", {**me, "pid": dead.pid, "walltime_skips": 2})
    old = time.time() - 3600
    for name in os.listdir(store.workers_dir):
        if "silent" in name:
            os.utime(os.path.join(store.workers_dir, name), (old, old))
    out = run_cli("cleanup", tf, "--dry-run", check=0).stdout.splitlines()
    assert "would remove 2 record(s) of workers that died" in out, out
    assert len(os.listdir(store.workers_dir)) == 5
    out = run_cli("cleanup", tf, check=0).stdout.splitlines()
    assert "removed 2 record(s) of workers that died" in out, out
    assert sorted(w.ident for w in store.worker_records()) == ["alive", "exited", "skipped-then-killed"]
