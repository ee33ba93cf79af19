"""Exactly once on one store seen by two clients of a network filesystem and the local disk.

Workers run on three views of one folder (tests/sharedfs.py): the folder itself and two
caching sshfs mounts, each view's workers under a hostname of their own. The tasks' O_APPEND
log lives on the local disk, outside the shared folder: sshfs cannot append atomically, and
the log is the test's instrument, not what it tests.

Leases: a renewal made through one client is seen by another only once its attribute cache
(1 s) has expired, and the SFTP server hands out whole-second mtimes, so the age another
client sees of a live claim can exceed the heartbeat interval (a quarter lease) by ~1-3 s.
A lease of 8 s keeps that well inside; no shorter lease is safe on such a filesystem.
"""
from __future__ import annotations

import collections
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from concurrency_helpers import ONE_GATED_TASK, TASKFILE_HEAD, process_state, wait_until
from conftest import write_taskfile
from taskflow.stores.folder import takeover
from taskflow.stores.folder.claims import FolderClaims as Leases
from taskflow.stores.folder import FolderStore as Store

LEASE = 8.0
# Each round takes 5-10 s here; eight give 20-30 kills.
CHAOS_ROUNDS = int(os.environ.get("TASKFLOW_CHAOS_ROUNDS", "8"))
H = "cd" * 20


class Run:
    """One taskfile and one store in the shared folder, with workers started on any view."""

    def __init__(self, clients, local: Path, source: str, store: str = "store", lease: float = LEASE):
        self.clients = clients
        self.local = local
        self.local.mkdir(parents=True, exist_ok=True)
        write_taskfile(clients.origin, source)
        self.store_name = store
        self.log = local / "log"
        self.gates = local / "gates"
        self.gates.mkdir(exist_ok=True)
        self.lease = lease
        self.workers: list[tuple[subprocess.Popen, Path, Path]] = []  # (process, view, stderr)

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("TASKFLOW_STORE", "TASKFLOW_LEASE")}
        env.update(TF_TEST_LOG=str(self.log), TF_TEST_GATES=str(self.gates), TASKFLOW_LEASE=str(self.lease))
        return env

    def start(self, view: Path, *args: str) -> subprocess.Popen:
        n = len(self.workers)
        err_path = self.local / f"worker{n}.err"
        with open(err_path, "w") as err:
            proc = self.clients.spawn(
                [sys.executable, "-m", "taskflow", "execute", str(view / "taskfile.py"),
                 "--store", str(view / self.store_name), *args],
                view=view, cwd=view, env=self.env(), stdout=subprocess.DEVNULL, stderr=err)
        self.workers.append((proc, view, err_path))
        return proc

    def stderr(self, proc: subprocess.Popen) -> str:
        return next(e for p, _, e in self.workers if p is proc).read_text()

    def lines(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [line.split() for line in self.log.read_text().splitlines()]

    def events(self, event: str) -> list[list[str]]:
        return [p for p in self.lines() if p and p[0] == event]

    def open_gate(self, pid: int | None = None) -> None:
        (self.gates / ("go-all" if pid is None else f"go-{pid}")).touch()

    def value(self, attr: str, view: Path):
        code = ("import json, taskflow; ns = taskflow.init(%r, store=%r); print(json.dumps(taskflow.value(ns.%s)))"
                % (str(view / "taskfile.py"), str(view / self.store_name), attr))
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=self.env(),
                              cwd=view, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def status(self, view: Path) -> dict:
        proc = subprocess.run([sys.executable, "-m", "taskflow", "status", str(view / "taskfile.py"), "--store",
                               str(view / self.store_name), "--json"], capture_output=True, text=True,
                              env=self.env(), cwd=view, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def expect(self, proc: subprocess.Popen, code: int, timeout: float = 180) -> None:
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"worker {proc.pid} still running after {timeout}s:\n{self.stderr(proc)}") from None
        assert rc == code, f"worker {proc.pid} exited {rc}, expected {code}:\n{self.stderr(proc)}"


# -- claims across clients -----------------------------------------------------------------


def _race_claims(store_path: str, hashes: list[str], start: float, give_back: bool, out) -> None:
    leases = Leases(Store(store_path), lease=60)
    got = []
    for i, h in enumerate(hashes):
        t = start + i * 0.01
        while time.time() < t:
            pass
        try:
            claim = leases.claim(h, take_over=False)
            got.append("lost" if claim is None else "won")
            if claim is not None and give_back:
                leases.release(claim)
        except Exception as e:  # noqa: BLE001 - what the test reports
            got.append(f"{type(e).__name__}: {e}")
    out.put((store_path, got))


@pytest.mark.parametrize("give_back", [False, True], ids=["held", "given-back-at-once"])
def test_exclusive_claims_raced_on_three_views_have_one_winner_and_no_error(two_clients, give_back):
    """sshfs answers a lost O_CREAT|O_EXCL race with EPERM: that is a collision, not an error,
    also when the winner has given its claim back before the loser looks."""
    Store(str(two_clients.origin / "store")).ensure()
    two_clients.settle()
    hashes = [f"{i:040x}" for i in range(200)]
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    start = time.time() + 1.0
    procs = [ctx.Process(target=_race_claims, args=(str(v / "store"), hashes, start, give_back, out))
             for v in two_clients.views]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(30)
    errors = [r for got in results.values() for r in got if r not in ("won", "lost")]
    assert errors == [], f"{len(errors)} claims failed, first: {errors[0]}"
    winners = [sum(got[i] == "won" for got in results.values()) for i in range(len(hashes))]
    if give_back:
        assert all(n >= 1 for n in winners)
        assert os.listdir(two_clients.origin / "store" / "locks") == []
    else:
        assert winners == [1] * len(hashes), "exactly one winner per claim"


def _hold_the_takeover(store_path: str) -> None:
    """Judge the stale claim, win the right to take it over, then hang before acting."""
    leases = Leases(Store(store_path), lease=2)
    info = leases.inspect(H)
    assert info is not None and info.stale

    def hang(path, info):
        time.sleep(600)

    takeover.move_away = hang  # in this child process only
    leases.claim(H)


def test_racers_on_different_clients_meet_on_one_takeover(two_clients):
    """A racer that took the right to take over a stale claim through one mount keeps a racer
    on the other mount (another inode and device for the same file) from taking it too."""
    store = Store(str(two_clients.origin / "store"))
    store.ensure()
    dead = json.dumps({"renewal": "00000007", "host": "gone-node", "boot": "b", "pid": 4242,
                       "worker": "gone:4242", "lease": 2.0, "task": H, "token": "feedc0ffee"}).encode()
    path = store.lock_path(H)
    with open(path, "wb") as f:
        f.write(dead)
    old = time.time() - 60
    os.utime(path, (old, old))
    two_clients.settle()
    ctx = multiprocessing.get_context("fork")
    holder = ctx.Process(target=_hold_the_takeover, args=(str(two_clients.mount_a / "store"),))
    holder.start()
    try:
        wait_until(lambda: [n for n in os.listdir(store.locks_dir) if ".takeover." in n],
                   "the racer on mount A to take the takeover token", timeout=30)
        other = Leases(Store(str(two_clients.mount_b / "store")), lease=10, worker="racer-b")
        assert other.inspect(H).stale
        assert other.claim(H) is None, "the racer on mount B must wait for the one on mount A"
        with open(path, "rb") as f:
            assert f.read() == dead, "the stale claim is untouched while another racer holds its takeover"
    finally:
        holder.kill()
        holder.join()


TAKEOVER_TRIALS = int(os.environ.get("TASKFLOW_TAKEOVER_TRIALS", "24"))
TAKEOVER_RACERS = 8  # alternating between the two mounts
TAKEOVER_WINDOW = 1.5


def _race_takeovers(store_path: str, hashes: list[str], start: float, log: str, out) -> None:
    """Spin on each stale claim in turn for TAKEOVER_WINDOW seconds, taking it over if we can;
    a won claim is kept (its lease outlasts the race) and its "run" noted in the O_APPEND log."""
    leases = Leases(Store(store_path), lease=60)
    won = []
    rng = random.Random()
    for i, h in enumerate(hashes):
        t0 = start + i * TAKEOVER_WINDOW
        while time.time() < t0:
            time.sleep(0.001)
        claim = None
        try:
            # At least one try, however late: a racer held up past the window (a loaded or
            # paused machine) still races for the claim instead of losing it unseen.
            while True:
                claim = leases.claim(h)
                if claim is not None or time.time() >= t0 + TAKEOVER_WINDOW - 0.2:
                    break
                time.sleep(rng.uniform(0.001, 0.01))
        except Exception as e:  # what the test reports
            won.append(f"{type(e).__name__}: {e}")
            continue
        if claim is not None:
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"run {i} {os.getpid()}\n".encode())
            finally:
                os.close(fd)
        won.append("won" if claim is not None else "lost")
    out.put(won)
    # Racers share this host: a winner gone while others still race would lose its claim lawfully.
    time.sleep(max(0.0, start + len(hashes) * TAKEOVER_WINDOW + 1.0 - time.time()))


def test_takeovers_of_one_stale_claim_raced_on_two_caching_clients_have_one_winner(two_clients, tmp_path):
    """Racers on both mounts keep reading a dead owner's claim while one of them replaces it:
    a racer whose client still caches the dead claim's bytes (the page cache outlives the file
    at that name) must not take the new owner's claim for the stale one."""
    store = Store(str(two_clients.origin / "store"))
    store.ensure()
    hashes = [f"{i:040x}" for i in range(TAKEOVER_TRIALS)]
    old = time.time() - 60
    for i, h in enumerate(hashes):
        dead = json.dumps({"renewal": "00000003", "host": "gone-node", "boot": "b", "pid": 4242,
                           "worker": "gone:4242", "lease": 2.0, "task": h,
                           "token": f"dead{i:04d}"}).encode()
        path = store.lock_path(h)
        with open(path, "wb") as f:
            f.write(dead)
        os.utime(path, (old, old))
    two_clients.settle()
    log = str(tmp_path / "log")
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    start = time.time() + 2.0
    mounts = [two_clients.mount_a, two_clients.mount_b]
    procs = [ctx.Process(target=_race_takeovers, args=(str(mounts[n % 2] / "store"), hashes, start, log, out))
             for n in range(TAKEOVER_RACERS)]
    for p in procs:
        p.start()
    results = [out.get(timeout=TAKEOVER_TRIALS * TAKEOVER_WINDOW + 120) for _ in procs]
    for p in procs:
        p.join(30)
    errors = [r for got in results for r in got if r not in ("won", "lost")]
    assert errors == [], f"{len(errors)} takeovers failed, first: {errors[0]}"
    winners = [sum(got[i] == "won" for got in results) for i in range(len(hashes))]
    runs = collections.Counter(int(line.split()[1]) for line in open(log).read().splitlines())
    twice = sorted(i for i, n in runs.items() if n > 1)
    assert twice == [], f"{len(twice)} of {len(hashes)} stale claims taken over more than once: {twice}"
    assert winners == [1] * len(hashes), "exactly one winner per stale claim"


# -- kill -9 chaos ---------------------------------------------------------------------------

CHAOS_TASKS = 1000
CHAOS = TASKFILE_HEAD + f"""
@TaskGenerator
def work(i):
    note("run", i, os.getpid(), repr(time.time()))
    time.sleep(0.005)
    return i * i + 1

results = [work(i) for i in range({CHAOS_TASKS})]
"""


def account(runs: dict[int, list[tuple[float, int]]], kills: dict[int, float]) -> int:
    """Check that every run of a task but its last was cut short by a kill; returns how many
    extra runs there were. A run is explained when its worker was killed after it started,
    and the task's next run began only after that kill."""
    extra = 0
    for task, attempts in runs.items():
        attempts.sort()
        for (started, pid), (next_started, next_pid) in zip(attempts, attempts[1:]):
            extra += 1
            killed = kills.get(pid)
            assert killed is not None, (
                f"task {task} ran again at {next_started:.3f} (pid {next_pid}), yet its run at {started:.3f} "
                f"by pid {pid} was by a worker never killed")
            assert started <= killed <= next_started, (
                f"task {task}: run by pid {pid} at {started:.3f}, killed at {killed:.3f}, "
                f"ran again at {next_started:.3f} by pid {next_pid}: two runs at once")
    return extra


def test_kill_9_chaos_on_three_views_runs_every_task_once_but_for_the_killed(two_clients, tmp_path):
    rng = random.Random()
    totals = collections.Counter()
    for r in range(CHAOS_ROUNDS):
        run = Run(two_clients, tmp_path / f"round{r}", CHAOS, store=f"store{r}")
        for view in two_clients.views:
            for _ in range(3):
                run.start(view)
        kills: dict[int, float] = {}
        t0 = time.monotonic()
        next_kill = time.monotonic() + rng.uniform(0.5, 2.0)
        while time.monotonic() - t0 < 180:
            live = [(p, v) for p, v, _ in run.workers if p.poll() is None]
            if not live:
                break
            if time.monotonic() >= next_kill and len({int(e[1]) for e in run.events("run")}) < CHAOS_TASKS:
                if not kills:
                    # First a whole node: every worker of one view at once. Their claims wait out
                    # the lease, then workers of the two other clients race for each of them.
                    dead_view = two_clients.views[r % 3]
                    victims = [(p, v) for p, v in live if v == dead_view]
                else:
                    victims = [rng.choice(live)]
                for proc, view in victims:
                    kills[proc.pid] = time.time()
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    # A replacement on another view: the killed worker's claim waits out its
                    # lease unless a worker left on its own view sees the process gone.
                    run.start(rng.choice([v for v in two_clients.views if v != view]))
                next_kill = time.monotonic() + rng.uniform(0.5, 2.0)
            time.sleep(0.02)
        for proc, _, _ in run.workers:
            if proc.pid not in kills:
                run.expect(proc, 0)
        runs: dict[int, list[tuple[float, int]]] = collections.defaultdict(list)
        for e in run.events("run"):
            runs[int(e[1])].append((float(e[3]), int(e[2])))
        assert set(runs) == set(range(CHAOS_TASKS)), "every task ran"
        extra = account(runs, kills)
        assert run.value("results", two_clients.mount_b) == [i * i + 1 for i in range(CHAOS_TASKS)]
        stderr = "".join(e.read_text() for _, _, e in run.workers)
        totals.update(rounds=1, kills=len(kills), extra_runs=extra, workers=len(run.workers),
                      takeovers=stderr.count("took over stale claim"),
                      takeovers_by_age=stderr.count("took over stale claim") - stderr.count("is gone)"),
                      seconds=round(time.monotonic() - t0))
        assert "store I/O error" not in stderr
    print(f"\nchaos on three views: {dict(totals)}")
    assert totals["kills"] >= CHAOS_ROUNDS


# -- SIGSTOP past the lease -----------------------------------------------------------------

def test_worker_frozen_past_its_lease_on_one_client_loses_the_task_to_another(two_clients, tmp_path):
    run = Run(two_clients, tmp_path, ONE_GATED_TASK, lease=6.0)
    frozen = run.start(two_clients.mount_a)
    wait_until(lambda: run.events("start"), "the worker on mount A to start the task", timeout=60)
    frozen.send_signal(signal.SIGSTOP)
    wait_until(lambda: process_state(frozen.pid) == "T", "the worker on mount A to stop")
    taker = run.start(two_clients.mount_b)
    wait_until(lambda: taker.pid in [int(e[2]) for e in run.events("start")],
               "the worker on mount B to take the task over", timeout=60)
    run.open_gate(taker.pid)
    run.expect(taker, 0)
    [shard] = os.listdir(two_clients.origin / "store" / "results")
    [name] = os.listdir(two_clients.origin / "store" / "results" / shard)
    result = two_clients.origin / "store" / "results" / shard / name
    saved, content = os.stat(result), result.read_bytes()

    frozen.send_signal(signal.SIGCONT)
    run.open_gate(frozen.pid)
    run.expect(frozen, 0)
    err = run.stderr(frozen)
    assert "lost the claim" in err and "discarding this result" in err, err
    assert "took over stale claim" in run.stderr(taker)
    after = os.stat(result)
    assert (after.st_ino, after.st_mtime_ns) == (saved.st_ino, saved.st_mtime_ns) and result.read_bytes() == content, \
        "the frozen worker's result must not replace the taker's"
    assert sorted(int(e[2]) for e in run.events("done")) == sorted([frozen.pid, taker.pid])
    for view in two_clients.views:
        assert run.value("result", view) == taker.pid
    two_clients.settle()
    total = run.status(two_clients.origin)["total"]
    assert total == {"waiting": 0, "ready": 0, "running": 0, "finished": 1, "failed": 0}, total


# -- map, reduce, map ------------------------------------------------------------------------

MAP_REDUCE_MAP = TASKFILE_HEAD + """
from taskflow import mapreduce

def square(x):
    note("run", "square%d" % x, os.getpid())
    time.sleep(0.01)
    return x * x

def add(a, b):
    return a + b

@TaskGenerator
def scale(total, i):
    note("run", "scale%d" % i, os.getpid())
    time.sleep(0.01)
    return total * 1000 + i

total = mapreduce(add, square, range(120), map_step=4, reduce_step=4)
scaled = [scale(total, i) for i in range(60)]
"""


def test_map_reduce_map_split_over_three_views_gives_the_right_values(two_clients, tmp_path):
    run = Run(two_clients, tmp_path, MAP_REDUCE_MAP)
    workers = [run.start(view) for view in two_clients.views for _ in range(2)]
    for w in workers:
        run.expect(w, 0)
    runs = collections.Counter(e[1] for e in run.events("run"))
    expected = [f"square{x}" for x in range(120)] + [f"scale{i}" for i in range(60)]
    assert runs == collections.Counter(expected), "every map and every scale once"
    by_host = collections.Counter(run.workers[[p.pid for p, _, _ in run.workers].index(int(e[2]))][1]
                                  for e in run.events("run"))
    assert len(by_host) == 3, f"work on every view: {by_host}"
    total = sum(x * x for x in range(120))
    for view in two_clients.views:
        assert run.value("total", view) == total
        assert run.value("scaled", view) == [total * 1000 + i for i in range(60)]
