"""Many workers, real processes, real signals: every task runs exactly once,
and dead, frozen, terminated or interrupted workers never lose or corrupt work.

Tasks log "<event> <task> <pid>" lines to a file opened with O_APPEND, so the
log tells which process ran what. Tasks that must stay running until the test
says so wait at a gate file (see concurrency_helpers)."""
from __future__ import annotations

import collections
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from concurrency_helpers import (ONE_GATED_TASK, TASKFILE_HEAD, Env, libfaketime, process_state, same_claim,
                                 wait_until)
from taskflow.stores.folder.claims import FolderClaims as Leases
from taskflow.stores.folder import FolderStore as Store


@pytest.fixture
def make_env(tmp_path):
    made = []

    def make(source: str, lease: float | None = 1.0, sub: str = "") -> Env:
        folder = tmp_path / sub if sub else tmp_path
        folder.mkdir(exist_ok=True)
        env = Env(folder, source, lease)
        made.append(env)
        return env

    yield make
    for env in made:
        env.cleanup()


def result_file(env: Env) -> str:
    [shard] = os.listdir(env.store / "results")
    [name] = os.listdir(env.store / "results" / shard)
    return str(env.store / "results" / shard / name)


def freeze(worker) -> None:
    worker.signal(signal.SIGSTOP)
    wait_until(lambda: process_state(worker.pid) == "T", f"worker {worker.pid} to stop")


# -- 1. many workers, many tasks --------------------------------------------------------


def test_eight_workers_run_500_tasks_exactly_once(make_env):
    env = make_env(TASKFILE_HEAD + """
@TaskGenerator
def work(i):
    gate()
    note("run", i, os.getpid())
    time.sleep(0.003)
    return i * i

results = [work(i) for i in range(500)]
""", lease=None)
    workers = [env.start() for _ in range(8)]
    # Every worker holds a claim at once before any task may finish: all eight really compete.
    wait_until(lambda: len(env.locks()) == 8, "all eight workers to claim a task")
    env.open_gate()
    for w in workers:
        w.expect(0)
    runs = collections.Counter(int(p[1]) for p in env.events("run"))
    assert set(runs) == set(range(500))
    assert [i for i, n in runs.items() if n != 1] == [], "every task runs exactly once"
    assert set(env.pids("run")) == {w.pid for w in workers}
    assert env.value("results") == [i * i for i in range(500)]
    env.assert_all_finished(500)
    assert env.locks() == []


# -- 2. kill -9 ---------------------------------------------------------------------------


def test_task_of_killed_worker_is_taken_over_at_once(make_env):
    # A lease of a minute: a quick takeover can only come from seeing that the owner's pid is gone.
    env = make_env(ONE_GATED_TASK, lease=60)
    a = env.start()
    wait_until(lambda: env.events("start"), "the first worker to start the task")
    b = env.start()
    assert env.status()["total"]["running"] == 1
    a.signal(signal.SIGKILL)
    assert a.wait() == -signal.SIGKILL
    wait_until(lambda: b.pid in env.pids("start"), "the second worker to take the task over", timeout=30)
    env.open_gate()
    b.expect(0)
    assert env.pids("start") == [a.pid, b.pid], "the killed attempt and one takeover"
    assert env.pids("done") == [b.pid], "exactly one completed run"
    assert env.value("result") == b.pid
    assert "took over stale claim" in b.stderr and "is gone" in b.stderr
    env.assert_all_finished(1)
    assert env.locks() == []


# -- 3. SIGSTOP past the lease ------------------------------------------------------------


@pytest.mark.parametrize("finishes_first", ["taker", "frozen"])
def test_frozen_worker_loses_its_claim_and_discards_its_result(make_env, finishes_first):
    env = make_env(ONE_GATED_TASK, lease=1)
    frozen = env.start()
    wait_until(lambda: env.events("start"), "the first worker to start the task")
    freeze(frozen)
    taker = env.start()
    wait_until(lambda: taker.pid in env.pids("start"), "another worker to take the task over", timeout=30)

    if finishes_first == "taker":
        env.open_gate(taker.pid)
        taker.expect(0)
        path = result_file(env)
        saved = os.stat(path)
        with open(path, "rb") as f:
            content = f.read()
        frozen.signal(signal.SIGCONT)
        env.open_gate(frozen.pid)
        frozen.expect(0)
        after = os.stat(path)
        assert (after.st_ino, after.st_mtime_ns) == (saved.st_ino, saved.st_mtime_ns), "result was replaced"
        with open(path, "rb") as f:
            assert f.read() == content
    else:
        frozen.signal(signal.SIGCONT)
        env.open_gate(frozen.pid)
        wait_until(lambda: "lost the claim" in frozen.stderr, "the resumed worker to notice its loss")
        # It must now wait for the new owner, not give up on the task.
        time.sleep(1.0)
        assert frozen.running(), f"resumed worker exited {frozen.proc.returncode}:\n{frozen.stderr}"
        env.open_gate(taker.pid)
        taker.expect(0)
        frozen.expect(0)

    assert sorted(env.pids("done")) == sorted([frozen.pid, taker.pid])
    assert env.value("result") == taker.pid, "the frozen worker's result must be discarded"
    assert "lost the claim" in frozen.stderr and "discarding this result" in frozen.stderr
    assert "took over stale claim" in taker.stderr
    env.assert_all_finished(1)
    assert env.locks() == []
    assert os.listdir(env.store / "tmp") == []


# -- 4. a live claim of a worker on another host ------------------------------------------


def unshare_prefix() -> list[str]:
    if not shutil.which("unshare"):
        pytest.skip("unshare is not installed")
    tries = [["unshare", "--uts"]] if os.geteuid() == 0 else []
    tries.append(["unshare", "--uts", "--map-root-user"])
    for cmd in tries:
        probe = subprocess.run([*cmd, "sh", "-c", "hostname other-node && hostname"], capture_output=True,
                               text=True)
        if probe.returncode == 0 and probe.stdout.strip() == "other-node":
            return [*cmd, "sh", "-c", 'hostname other-node && exec "$@"', "sh"]
    pytest.skip(f"cannot set a hostname in a new UTS namespace here: {probe.stderr.strip()}")


def test_live_claim_of_another_host_is_respected_until_it_stops(make_env):
    prefix = unshare_prefix()
    env = make_env(ONE_GATED_TASK, lease=1)
    far = env.start(prefix=prefix)
    wait_until(lambda: env.events("start"), "the other-host worker to start the task")
    assert env.pids("start") == [far.pid]
    with open(env.store / "locks" / env.locks()[0]) as f:
        assert json.load(f)["host"] == "other-node"

    patient = env.start("--wait", "3")
    patient.expect(3)
    assert env.pids("start") == [far.pid], "a live claim of another host must not be taken"

    freeze(far)
    taker = env.start()
    wait_until(lambda: taker.pid in env.pids("start"), "a worker to take over the frozen claim", timeout=30)
    env.open_gate(taker.pid)
    taker.expect(0)
    assert env.value("result") == taker.pid
    far.signal(signal.SIGCONT)
    env.open_gate(far.pid)
    far.expect(0)
    assert "lost the claim" in far.stderr
    assert env.value("result") == taker.pid
    env.assert_all_finished(1)


# -- 5. many racers, one stale claim -------------------------------------------------------


def _racer(store_path, task_hash, n, barrier, results, done):
    leases = Leases(Store(store_path), lease=30, worker=f"racer{n}")
    leases.fs_now()  # everything but the race itself done beforehand
    barrier.wait(60)
    claim = leases.claim(task_hash)
    results.put((n, None if claim is None else claim.content))
    done.wait(60)  # keep the claim while the others finish


def test_twenty_processes_race_for_one_stale_claim(tmp_path):
    store = Store(str(tmp_path / "store"))
    store.ensure()
    ctx = multiprocessing.get_context("fork")
    for round_ in range(10):
        h = f"{round_:02d}" * 20
        path = store.lock_path(h)
        with open(path, "w") as f:
            json.dump({"host": "far-away-node", "boot": "x", "pid": 4242, "worker": "far:4242", "lease": 5,
                       "task": h, "token": "0" * 32, "started": 0}, f)
        old = time.time() - 3600
        os.utime(path, (old, old))

        barrier, results, done = ctx.Barrier(20), ctx.Queue(), ctx.Event()
        racers = [ctx.Process(target=_racer, args=(store.path, h, n, barrier, results, done)) for n in range(20)]
        for p in racers:
            p.start()
        try:
            got = [results.get(timeout=120) for _ in racers]
            winners = [(n, content) for n, content in got if content is not None]
            assert len(winners) == 1, f"round {round_}: {len(winners)} racers won: {[n for n, _ in winners]}"
            with open(path, "rb") as f:
                assert f.read() == winners[0][1], "the claim file must be the winner's"
            leftovers = [n for n in os.listdir(store.locks_dir) if n.startswith(h) and n != h]
            assert leftovers == []
        finally:
            done.set()
            for p in racers:
                p.join(60)
                if p.is_alive():
                    p.kill()


# -- 6. clock skew under libfaketime -----------------------------------------------------------

FAKETIME_WRAPPER = """
import sys, threading, time

def _sleep(seconds):
    threading.Event().wait(max(0.0, seconds))

# Python >= 3.11 sleeps with clock_nanosleep(TIMER_ABSTIME), which libfaketime
# breaks (EINVAL); an Event wait sleeps on the real monotonic clock instead.
time.sleep = _sleep

from taskflow.cli import main
sys.argv[0] = "taskflow"
main()
"""


@pytest.mark.parametrize("offset", ["+3h", "-3h"])
def test_skewed_clock_neither_steals_live_claims_nor_keeps_dead_ones(make_env, tmp_path, offset):
    lib = libfaketime()
    if lib is None:
        pytest.skip("libfaketime is not installed (apt-get install faketime)")
    wrapper = tmp_path / "skewed_taskflow.py"
    wrapper.write_text(FAKETIME_WRAPPER)
    skew = {"LD_PRELOAD": lib, "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    probe = subprocess.run([sys.executable, "-c", "import time; print(time.time())"], capture_output=True,
                           text=True, env={**os.environ, **skew})
    expected = 3 * 3600 if offset.startswith("+") else -3 * 3600
    if probe.returncode != 0 or abs(float(probe.stdout) - time.time() - expected) > 600:
        pytest.skip(f"libfaketime does not shift time here: {probe.stdout.strip()} {probe.stderr.strip()}")
    skewed = {"python": (sys.executable, str(wrapper)), "env": skew}

    # One store where a normal worker holds the task, another where the skewed one does.
    normal_owned = make_env(ONE_GATED_TASK, lease=1, sub="normal-owned")
    skew_owned = make_env(ONE_GATED_TASK, lease=1, sub="skew-owned")
    owner_n = normal_owned.start()
    owner_s = skew_owned.start(**skewed)
    wait_until(lambda: normal_owned.events("start") and skew_owned.events("start"), "both owners to start")

    # Live claims are respected in both directions.
    patient_s = normal_owned.start("--wait", "2", **skewed)
    patient_n = skew_owned.start("--wait", "2")
    patient_s.expect(3)
    patient_n.expect(3)
    assert normal_owned.pids("start") == [owner_n.pid], "the skewed worker stole a live claim"
    assert skew_owned.pids("start") == [owner_s.pid], "a live claim of the skewed worker was stolen"

    # Claims that stop being renewed go stale in both directions.
    freeze(owner_n)
    freeze(owner_s)
    taker_s = normal_owned.start(**skewed)
    taker_n = skew_owned.start()
    wait_until(lambda: taker_s.pid in normal_owned.pids("start"), "the skewed worker to take over a dead claim",
               timeout=30)
    wait_until(lambda: taker_n.pid in skew_owned.pids("start"), "the skewed worker's dead claim to be taken over",
               timeout=30)
    for env in (normal_owned, skew_owned):
        env.open_gate()
    taker_s.expect(0)
    taker_n.expect(0)
    for w in (owner_n, owner_s):
        w.signal(signal.SIGCONT)
        w.expect(0)
    assert normal_owned.value("result") == taker_s.pid
    assert skew_owned.value("result") == taker_n.pid
    normal_owned.assert_all_finished(1)
    skew_owned.assert_all_finished(1)


def test_many_workers_fill_a_fresh_store_without_a_single_failure(make_env):
    # Every worker meets shards that do not exist yet, often the same one at the same time.
    env = make_env(TASKFILE_HEAD + """
@TaskGenerator
def double(i):
    return 2 * i

doubles = [double(i) for i in range(3000)]
""", lease=None)
    proc = env.run("--jobs", "8", "-q")
    proc.expect(0)
    assert env.value("doubles") == [2 * i for i in range(3000)]


def test_results_deleted_while_four_workers_run_are_computed_again_before_they_exit_0(make_env):
    # Four tasks hold the four workers, one each, after reading all 300 leaves; meanwhile 87 leaf
    # results vanish, which no task will read again.
    env = make_env(TASKFILE_HEAD + """
@TaskGenerator
def leaf(i):
    note("leaf", i, os.getpid())
    return i

@TaskGenerator
def hold(k, leaves):
    note("hold", k, os.getpid())
    gate()
    return sum(leaves) + k

leaves = [leaf(i) for i in range(300)]
holds = [hold(k, leaves) for k in range(4)]
""", lease=None)
    workers = [env.start("-q") for _ in range(4)]
    wait_until(lambda: len(env.events("hold")) == 4, "every worker to start a hold task")
    results = sorted(str(p) for p in (env.store / "results").glob("*/*"))
    assert len(results) == 300  # every leaf, no hold yet
    for path in results[::3][:87]:
        os.unlink(path)
    assert all(w.running() for w in workers)
    env.open_gate()
    for w in workers:
        w.expect(0)
    proc = subprocess.run([sys.executable, "-m", "taskflow", "check", str(env.taskfile), "--store", str(env.store)],
                          env=env.env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert any("vanished from the store while this worker ran; computing them again" in w.stderr
               for w in workers)
    assert len(env.events("leaf")) == 300 + 87  # each vanished one computed once more, nothing else
    assert env.value("leaves") == list(range(300))


# -- 7. --jobs runs in parallel ---------------------------------------------------------------


def test_jobs_2_runs_tasks_in_parallel(make_env):
    env = make_env(TASKFILE_HEAD + """
@TaskGenerator
def nap(i):
    note("run", i, os.getpid())
    time.sleep(0.2)
    return i

naps = [nap(i) for i in range(40)]
""", lease=None)
    t0 = time.monotonic()
    env.run("--jobs", "2", "-q").expect(0)
    elapsed = time.monotonic() - t0
    serial = 40 * 0.2
    assert elapsed < 0.75 * serial, f"--jobs 2 took {elapsed:.1f}s for {serial:.0f}s of serial work"
    runs = collections.Counter(int(p[1]) for p in env.events("run"))
    assert runs == collections.Counter(range(40))
    assert len(set(env.pids("run"))) == 2
    assert env.value("naps") == list(range(40))
    env.assert_all_finished(40)


# -- 8. SIGTERM ---------------------------------------------------------------------------------


def test_sigterm_releases_the_claim_and_exits_3(make_env):
    env = make_env(ONE_GATED_TASK.replace("result = job(0)", "results = [job(i) for i in range(3)]"), lease=1)
    a = env.start()
    wait_until(lambda: env.events("start"), "the worker to start a task")
    assert len(env.locks()) == 1
    a.signal(signal.SIGTERM)
    a.expect(3)
    assert env.locks() == [], "the claim must be released before the worker exits"
    assert env.events("done") == []
    env.open_gate()
    b = env.run()
    b.expect(0)
    started_by_a = env.events("start")[0][1]
    assert [p[1] for p in env.events("done")].count(started_by_a) == 1
    assert sorted(int(p[1]) for p in env.events("done")) == [0, 1, 2]
    assert set(env.pids("done")) == {b.pid}
    assert "took over" not in b.stderr, "a released claim needs no takeover"
    env.assert_all_finished(3)


def test_sigterm_while_waiting_for_others_exits_3_and_leaves_their_claim(make_env):
    env = make_env(ONE_GATED_TASK, lease=1)
    owner = env.start()
    wait_until(lambda: env.events("start"), "the owner to start the task")
    [lock] = env.locks()
    claim = same_claim((env.store / "locks" / lock).read_bytes())
    waiter = env.start()
    wait_until(lambda: "1 tasks" in waiter.stderr, "the second worker to load the taskfile")
    time.sleep(0.5)  # into its idle wait
    waiter.signal(signal.SIGTERM)
    waiter.expect(3, timeout=30)
    assert same_claim((env.store / "locks" / lock).read_bytes()) == claim
    env.open_gate()
    owner.expect(0)
    assert env.pids("start") == [owner.pid]
    env.assert_all_finished(1)


# -- Ctrl-C -----------------------------------------------------------------------------------------


def test_ctrl_c_to_one_worker_releases_its_claim_and_exits_130(make_env):
    env = make_env(ONE_GATED_TASK, lease=None)
    worker = env.start()
    wait_until(lambda: env.events("start") and env.locks(), "the worker to start the task")
    worker.signal(signal.SIGINT)
    worker.expect(130)
    assert env.locks() == []
    assert env.status()["total"]["ready"] == 1


@pytest.mark.parametrize("to", ["process group", "parent only"])
def test_ctrl_c_to_jobs_2_releases_every_claim(make_env, to):
    env = make_env(ONE_GATED_TASK.replace("result = job(0)", "results = [job(i) for i in range(4)]"), lease=None)
    pool = env.start("--jobs", "2", start_new_session=True)
    wait_until(lambda: len(env.events("start")) == 2 and len(env.locks()) == 2, "both workers to start a task")
    if to == "process group":
        os.killpg(pool.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    else:
        pool.signal(signal.SIGINT)
    pool.expect(130)
    assert env.locks() == [], "every claim must be released"
    assert env.events("done") == []
    children = [int(p[2]) for p in env.events("start")]
    wait_until(lambda: all(process_state(pid) == "" for pid in children), "the workers to be gone", timeout=10)
    total = env.status()["total"]
    assert total["running"] == 0 and total["finished"] == 0 and total["ready"] == 4


# -- waiting for others ---------------------------------------------------------------------------


def test_idle_worker_picks_up_tasks_that_become_ready(make_env):
    env = make_env(TASKFILE_HEAD + """
@TaskGenerator
def first(i):
    gate()
    note("run", "first%d" % i, os.getpid())
    time.sleep(0.05)
    return i

@TaskGenerator
def combine(xs):
    note("run", "combine", os.getpid())
    time.sleep(1.0)
    return sum(xs)

@TaskGenerator
def second(total, i):
    note("run", "second%d" % i, os.getpid())
    time.sleep(0.2)
    return total * 100 + i

firsts = [first(i) for i in range(10)]
total = combine(firsts)
seconds = [second(total, i) for i in range(16)]
""", lease=2)
    workers = [env.start(), env.start()]
    wait_until(lambda: len(env.locks()) == 2, "both workers to claim a task")
    env.open_gate()
    for w in workers:
        w.expect(0)
    runs = collections.Counter(p[1] for p in env.events("run"))
    expected = [f"first{i}" for i in range(10)] + ["combine"] + [f"second{i}" for i in range(16)]
    assert runs == collections.Counter(expected), "every task exactly once"
    stage2 = {int(p[2]) for p in env.events("run") if p[1].startswith("second")}
    assert stage2 == {w.pid for w in workers}, "the worker left idle during combine must join stage two"
    assert env.value("seconds") == [45 * 100 + i for i in range(16)]
    env.assert_all_finished(27)


def test_wait_gives_up_while_another_worker_holds_the_last_task(make_env):
    env = make_env(ONE_GATED_TASK, lease=1)
    owner = env.start()
    wait_until(lambda: env.events("start"), "the owner to start the task")
    [lock] = env.locks()
    with open(env.store / "locks" / lock, "rb") as f:
        claim = same_claim(f.read())
    t0 = time.monotonic()
    env.run("--wait", "1").expect(3)
    assert time.monotonic() - t0 >= 1.0
    assert env.pids("start") == [owner.pid]
    with open(env.store / "locks" / lock, "rb") as f:
        assert same_claim(f.read()) == claim, "the waiting worker must leave the live claim alone"
    env.open_gate()
    owner.expect(0)
    env.assert_all_finished(1)


# -- limits --------------------------------------------------------------------------------------


def test_max_tasks_stops_after_exactly_that_many(make_env):
    env = make_env(TASKFILE_HEAD + """
@TaskGenerator
def tiny(i):
    note("run", i, os.getpid())
    return i

tinies = [tiny(i) for i in range(10)]
""")
    env.run("--max-tasks", "3").expect(3)
    assert len(env.events("run")) == 3
    total = env.status()["total"]
    assert total["finished"] == 3 and total["ready"] == 7
    assert env.locks() == []


def test_stop_file_makes_workers_take_no_new_task(make_env):
    env = make_env(TASKFILE_HEAD + """
@TaskGenerator
def slow(i):
    note("run", i, os.getpid(), time.time())
    time.sleep(0.1)
    return i

slows = [slow(i) for i in range(40)]
""")
    worker = env.start()
    wait_until(lambda: len(env.events("run")) >= 2, "a few tasks to run")
    (env.store / "STOP").touch()
    stopped_at = time.time()
    worker.expect(3)
    ran = env.events("run")
    assert len(ran) < 40
    late = [p for p in ran if float(p[3]) > stopped_at + 1.5]
    assert late == [], "tasks started well after STOP appeared"
    assert env.locks() == []
    assert env.status()["total"]["finished"] == len(ran)

    env.run().expect(3)
    assert len(env.events("run")) == len(ran), "a worker started while STOP exists runs nothing"

    (env.store / "STOP").unlink()
    env.run().expect(0)
    assert sorted(int(p[1]) for p in env.events("run")) == list(range(40))
    env.assert_all_finished(40)


def test_sigterm_to_the_jobs_parent_stops_every_worker(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from conftest import write_taskfile

    tf = write_taskfile(tmp_path, """
import time
from taskflow import TaskGenerator

@TaskGenerator
def slow(i):
    time.sleep(0.5)
    return i

xs = [slow(i) for i in range(40)]
""")
    store = tmp_path / "taskfile.taskflow"
    proc = subprocess.Popen([sys.executable, "-m", "taskflow", "execute", str(tf), "--jobs", "2", "-q"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(list((store / "locks").glob("*"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 3
    assert list((store / "locks").glob("*")) == [], "every worker gives back its claim"
    leftover = subprocess.run(["pgrep", "-f", f"taskflow execute {tf}"], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", "no worker outlives the pool"


# -- folders of the store deleted while workers run -------------------------------------


def test_store_folders_deleted_while_workers_run_are_made_again(make_env):
    """locks/ deleted three times under four workers holding claims (renewed every half
    second, so each finds its claim file gone), then tmp/, clock/ and done/ deleted again
    and again while the rest runs: each worker makes the folders again, keeps its claim
    and its result, and every task runs once."""
    env = make_env(TASKFILE_HEAD + """
@TaskGenerator
def work(i):
    note("run", i, os.getpid())
    gate()
    time.sleep(0.005)
    return i * i

results = [work(i) for i in range(200)]
""", lease=2)
    workers = [env.start() for _ in range(4)]
    wait_until(lambda: len(env.pids("run")) == 4, "each worker to start a task and wait at its gate")
    assert len(set(env.pids("run"))) == 4
    for _ in range(3):
        shutil.rmtree(env.store / "locks")
        # Renewed every half a second: each heartbeat finds its claim file gone.
        wait_until(lambda: len(env.locks()) == 4, "the four claims to be made again", timeout=30)
    shutil.rmtree(env.store / "clock")
    env.open_gate()
    # Not locks/ now: a claim deleted while no heartbeat looks lets another worker claim the
    # task too, which no worker can tell from a task nobody runs.
    deadline = time.monotonic() + 60
    while any(w.running() for w in workers) and time.monotonic() < deadline:
        for name in ("tmp", "clock", "done"):
            shutil.rmtree(env.store / name, ignore_errors=True)
        time.sleep(0.3)
    for w in workers:
        w.expect(0)
    runs = collections.Counter(int(p[1]) for p in env.events("run"))
    assert runs == collections.Counter(range(200)), "every task once"
    stderr = "".join(w.stderr for w in workers)
    assert "another worker took it over" not in stderr and "discarding" not in stderr
    assert "claim file on" in stderr and "vanished" in stderr
    assert env.value("results") == [i * i for i in range(200)]
    env.assert_all_finished(200)
