"""Real workers on a Redis store (a real redis-server on 127.0.0.1): many workers, kill -9,
SIGSTOP past the lease, the server stopped or killed mid-run, and every command.

Tasks log "<event> <task> <pid>" lines to a file opened with O_APPEND (see concurrency_helpers),
so the log tells which process ran what."""
from __future__ import annotations

import collections
import json
import random
import signal
import time
from pathlib import Path

import pytest

from concurrency_helpers import ONE_GATED_TASK, TASKFILE_HEAD, Env, process_state, wait_until
from conftest import run_cli, write_taskfile
from taskflow.stores import open_store
from taskflow.stores.identity import HOST


class RedisEnv(Env):
    """An Env whose store is a Redis address."""

    def __init__(self, folder: Path, source: str, lease: float | None, url: str):
        super().__init__(folder, source, lease)
        self.store = url  # type: ignore[assignment]  # passed as --store like a folder

    def locks(self) -> list[str]:
        return sorted(open_store(self.store).claims(reader=True).claimed())

    def header(self, attr_hash: str) -> bytes | None:
        store = open_store(self.store)
        return store.results.header(attr_hash)


@pytest.fixture
def redis_env(tmp_path, redis_url):
    made: list[RedisEnv] = []

    def make(source: str, lease: float | None = 1.0, url: str | None = None, sub: str = "") -> RedisEnv:
        folder = tmp_path / sub if sub else tmp_path
        folder.mkdir(exist_ok=True)
        env = RedisEnv(folder, source, lease, url or redis_url)
        made.append(env)
        return env

    yield make
    for env in made:
        env.cleanup()


def freeze(worker) -> None:
    worker.signal(signal.SIGSTOP)
    wait_until(lambda: process_state(worker.pid) == "T", f"worker {worker.pid} to stop")


def one_line_server_error(stderr: str, server: str) -> None:
    errors = [line for line in stderr.splitlines() if line.startswith("taskflow: error:")]
    assert errors, stderr
    assert server in errors[-1], errors[-1]
    assert "Traceback" not in stderr, stderr


# -- many workers ---------------------------------------------------------------------------

def test_eight_workers_run_500_tasks_exactly_once(redis_env):
    env = redis_env(TASKFILE_HEAD + """
@TaskGenerator
def work(i):
    gate()
    note("run", i, os.getpid())
    time.sleep(0.003)
    return i * i

results = [work(i) for i in range(500)]
""", lease=None)
    workers = [env.start() for _ in range(8)]
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


# -- kill -9 ----------------------------------------------------------------------------------

CHAOS_TASKS = 1500


def test_kill_9_chaos_runs_every_task_once_but_for_the_killed(redis_env):
    env = redis_env(TASKFILE_HEAD + f"""
@TaskGenerator
def work(i):
    note("run", i, os.getpid(), repr(time.time()))
    time.sleep(0.004)
    return i * i + 1

results = [work(i) for i in range({CHAOS_TASKS})]
""", lease=30)
    rng = random.Random()
    workers = [env.start() for _ in range(5)]
    kills: dict[int, float] = {}
    t0 = time.monotonic()
    next_kill = t0 + rng.uniform(0.3, 1.0)
    while time.monotonic() - t0 < 240:
        live = [w for w in workers if w.running()]
        if not live:
            break
        if time.monotonic() >= next_kill and len({e[1] for e in env.events("run")}) < CHAOS_TASKS * 0.9:
            victim = rng.choice(live)
            kills[victim.pid] = time.time()
            victim.signal(signal.SIGKILL)
            victim.proc.wait()
            workers.append(env.start())  # a replacement
            next_kill = time.monotonic() + rng.uniform(0.3, 1.0)
        time.sleep(0.02)
    for w in workers:
        if w.pid not in kills:
            w.expect(0)
    runs: dict[int, list[tuple[float, int]]] = collections.defaultdict(list)
    for e in env.events("run"):
        runs[int(e[1])].append((float(e[3]), int(e[2])))
    assert set(runs) == set(range(CHAOS_TASKS)), "every task ran"
    for task, attempts in runs.items():
        attempts.sort()
        for (started, pid), (next_started, next_pid) in zip(attempts, attempts[1:], strict=False):
            killed = kills.get(pid)
            assert killed is not None, f"task {task} ran again (pid {next_pid}) after a run by pid {pid}, never killed"
            assert started <= killed <= next_started, f"task {task}: two runs at once ({pid}, {next_pid})"
    assert kills, "the test killed no worker"
    assert env.value("results") == [i * i + 1 for i in range(CHAOS_TASKS)]
    env.assert_all_finished(CHAOS_TASKS)
    # A worker killed between saving a result and giving its claim back leaves that claim, stale at
    # once (its owner is gone): only such claims are left, and cleanup removes them.
    claims = open_store(env.store).claims(reader=True)
    for h in env.locks():
        info = claims.inspect(h)
        assert info.stale and info.owner["pid"] in kills, info
    run_cli("cleanup", env.taskfile, "--store", env.store, "--locks", env=env.env(), check=0)
    assert env.locks() == []


def test_task_of_killed_worker_is_taken_over_at_once(redis_env):
    env = redis_env(ONE_GATED_TASK, lease=60)
    a = env.start()
    wait_until(lambda: env.events("start"), "the first worker to start the task")
    b = env.start()
    a.signal(signal.SIGKILL)
    assert a.wait() == -signal.SIGKILL
    wait_until(lambda: b.pid in env.pids("start"), "the second worker to take the task over", timeout=30)
    env.open_gate()
    b.expect(0)
    assert env.pids("done") == [b.pid]
    assert "took over stale claim" in b.stderr and "is gone" in b.stderr
    env.assert_all_finished(1)


# -- SIGSTOP past the lease ---------------------------------------------------------------

def test_frozen_worker_loses_its_claim_and_its_result_does_not_replace_the_takers(redis_env):
    env = redis_env(ONE_GATED_TASK, lease=1)
    frozen = env.start()
    wait_until(lambda: env.events("start"), "the first worker to start the task")
    freeze(frozen)
    time.sleep(1.5)  # past the lease: the server expires the claim, whatever any host's clock says
    taker = env.start()
    wait_until(lambda: taker.pid in env.pids("start"), "another worker to claim the task", timeout=30)
    env.open_gate(taker.pid)
    taker.expect(0)
    store = open_store(env.store)
    [task_hash] = store.finished_hashes()
    saved = store.results.header(task_hash)
    frozen.signal(signal.SIGCONT)
    env.open_gate(frozen.pid)
    frozen.expect(0)
    assert store.results.header(task_hash) == saved, "the frozen worker replaced the result"
    assert env.value("result") == taker.pid
    assert "lost the claim" in frozen.stderr and "discarding this result" in frozen.stderr
    env.assert_all_finished(1)
    assert env.locks() == []


# -- the server stopped or killed mid-run ----------------------------------------------------

RUN_TASKS = 300
SLOW = TASKFILE_HEAD + f"""
@TaskGenerator
def work(i):
    note("run", i, os.getpid())
    time.sleep(0.02)
    return i + 1000

@TaskGenerator
def total(xs):
    return sum(xs)

result = total([work(i) for i in range({RUN_TASKS})])
"""


def _interrupt(env: RedisEnv, server, how: str) -> list:
    workers = [env.start() for _ in range(3)]
    wait_until(lambda: len(env.events("run")) >= 60, "workers to finish some tasks")
    getattr(server, how)()
    for w in workers:
        w.expect(4, timeout=60)
        one_line_server_error(w.stderr, server.address)
    return workers


def test_server_stopped_mid_run_with_appendonly_keeps_what_was_saved(redis_env, own_redis):
    server = own_redis(appendonly=True)
    env = redis_env(SLOW, lease=5, url=server.url())
    _interrupt(env, server, "stop")
    before = collections.Counter(e[1] for e in env.events("run"))
    server.start()  # the same port, its data read back from the append-only file
    saved = open_store(env.store).finished_hashes()
    assert len(saved) >= len(before) - 3, "results saved before the stop are kept"
    env.run().expect(0)
    after = collections.Counter(e[1] for e in env.events("run"))
    assert set(after) == {str(i) for i in range(RUN_TASKS)}
    again = [t for t, n in after.items() if n > 1]
    assert len(again) <= 3, f"only the tasks in flight when the server stopped ran again: {again}"
    assert env.value("result") == sum(i + 1000 for i in range(RUN_TASKS))
    env.assert_all_finished(RUN_TASKS + 1)


def test_server_killed_mid_run_without_persistence_then_a_rerun_finishes(redis_env, own_redis):
    server = own_redis(appendonly=False)
    env = redis_env(SLOW, lease=5, url=server.url())
    _interrupt(env, server, "kill")
    proc = run_cli("status", env.taskfile, "--store", env.store, env=env.env())
    assert proc.returncode == 4 and "connection refused" in proc.stderr and server.address in proc.stderr
    assert "Traceback" not in proc.stderr
    server.start()  # empty: without persistence the store is gone with the server
    assert open_store(env.store).finished_hashes() == set()
    env.run().expect(0)
    assert env.value("result") == sum(i + 1000 for i in range(RUN_TASKS))
    env.assert_all_finished(RUN_TASKS + 1)


def test_wrong_password_and_database_are_one_line_errors_with_exit_4(own_redis, tmp_path):
    server = own_redis(extra=("--requirepass", "s3cret-pw", "--databases", "2"))
    tf = write_taskfile(tmp_path, "from taskflow import Task\nt = Task(abs, -1)\n")
    for url, env, words in ((server.url(password="nope-pw"), {}, "wrong user or password"),
                            (server.url(), {}, "wants a password"),
                            (server.url(db=7), {"TASKFLOW_REDIS_PASSWORD": "s3cret-pw"}, "no database 7")):
        proc = run_cli("execute", tf, "--store", url, env=env)
        assert proc.returncode == 4, proc.stderr
        assert words in proc.stderr and server.address in proc.stderr
        assert "s3cret-pw" not in proc.stderr + proc.stdout and "nope-pw" not in proc.stderr + proc.stdout
        assert "Traceback" not in proc.stderr
    run_cli("execute", tf, "--store", server.url(db=1), env={"TASKFLOW_REDIS_PASSWORD": "s3cret-pw"}, check=0)


def test_a_server_out_of_memory_stops_the_worker_with_exit_4(own_redis, tmp_path):
    server = own_redis(extra=("--maxmemory", "2mb"))
    tf = write_taskfile(tmp_path, """
from taskflow import TaskGenerator

@TaskGenerator
def big(i):
    return bytes(1 << 20) + bytes([i])

blobs = [big(i) for i in range(8)]
""")
    proc = run_cli("execute", tf, "--store", server.url())
    assert proc.returncode == 4, proc.stderr
    assert "out of memory" in proc.stderr and server.address in proc.stderr and "Traceback" not in proc.stderr
    store = open_store(server.url())
    for h in store.finished_hashes():
        store.load_value(h)  # whatever counts as finished is whole


def test_an_evicting_server_is_refused(own_redis, tmp_path):
    server = own_redis(extra=("--maxmemory", "50mb", "--maxmemory-policy", "allkeys-lru"))
    tf = write_taskfile(tmp_path, "from taskflow import Task\nt = Task(abs, -1)\n")
    proc = run_cli("execute", tf, "--store", server.url())
    assert proc.returncode == 4 and "maxmemory-policy allkeys-lru" in proc.stderr


# -- every command --------------------------------------------------------------------------

COMMANDS = """
from taskflow import TaskGenerator

@TaskGenerator
def square(x):
    return x * x

@TaskGenerator
def fails(x):
    raise ValueError("no good: %d" % x)

@TaskGenerator
def add(xs):
    return sum(xs)

squares = [square(i) for i in range(5)]
total = add(squares)
"""


def test_every_command_works_on_a_redis_store(tmp_path, redis_url):
    tf = write_taskfile(tmp_path, COMMANDS)
    env = {"TASKFLOW_STORE": redis_url}
    assert json.loads(run_cli("status", tf, "--json", env=env, check=0).stdout)["total"]["ready"] == 5
    run_cli("check", tf, env=env, check=1)
    run_cli("execute", tf, "--jobs", "2", env=env, check=0)
    status = json.loads(run_cli("status", tf, "--json", env=env, check=0).stdout)
    assert status["total"]["finished"] == 6
    run_cli("check", tf, env=env, check=0)
    run_cli("check", tf, "--verify", env=env, check=0)
    run_cli("wait", tf, "--timeout", "5", env=env, check=0)
    shown = run_cli("show", tf, "add", env=env, check=0).stdout
    assert "finished" in shown.lower()
    report = json.loads(run_cli("report", tf, "--json", env=env, check=0).stdout)
    assert report
    run_cli("graph", tf, "-o", tmp_path / "g.dot", env=env, check=0)
    assert (tmp_path / "g.dot").read_text().startswith("digraph")
    code = ("import taskflow, sys; ns = taskflow.init(sys.argv[1]); print(taskflow.value(ns.total))")
    import subprocess
    import sys
    import os
    out = subprocess.run([sys.executable, "-c", code, str(tf)], capture_output=True, text=True,
                         env={**os.environ, **env}, check=True)
    assert out.stdout.strip() == "30"
    run_cli("invalidate", tf, "--target", "square", env=env, check=0)
    assert json.loads(run_cli("status", tf, "--json", env=env, check=0).stdout)["total"]["finished"] == 0
    # STOP: workers take no new task, until it is withdrawn.
    run_cli("stop", tf, env=env, check=0)
    run_cli("execute", tf, env=env, check=3)
    run_cli("stop", tf, "--undo", env=env, check=0)
    run_cli("execute", tf, env=env, check=0)
    run_cli("cleanup", tf, env=env, check=0)
    # A failure is recorded, shown and retried.
    write_taskfile(tmp_path, COMMANDS + "\nbad = fails(3)\n")
    run_cli("execute", tf, env=env, check=1)
    failed = run_cli("status", tf, "--failed", env=env, check=0).stdout
    assert "no good: 3" in failed
    assert "ValueError" in run_cli("show", tf, "fails", env=env, check=0).stdout


def test_the_mps_example_runs_on_redis(tmp_path, redis_url):
    from test_example import PER_NAME, copy_example

    tf = copy_example(tmp_path / "jugfile_mps")
    run_cli("execute", tf, "--store", redis_url, "--jobs", "2", "-q", timeout=300, check=0)
    status = json.loads(run_cli("status", tf, "--store", redis_url, "--json", check=0).stdout)
    assert {name: row["finished"] for name, row in status["tasks"].items()} == PER_NAME
    assert status["total"]["finished"] == sum(PER_NAME.values())
    import subprocess
    import sys
    code = ("import taskflow, sys; ns = taskflow.init(sys.argv[1], store=sys.argv[2]); "
            "r = taskflow.value(ns.results); print(len(r), r[0][0][0])")
    out = subprocess.run([sys.executable, "-c", code, str(tf), redis_url], capture_output=True, text=True,
                         cwd=tf.parent, check=True)
    assert out.stdout.split()[0] == str(PER_NAME["taskfile.divergence"])


FAKE_SBATCH = """#!{python}
import json, os, sys
with open(sys.argv[-1]) as f:
    script = f.read()
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps({{"args": sys.argv[1:], "script": script,
                         "password": os.environ.get("TASKFLOW_REDIS_PASSWORD")}}) + "\\n")
print("4242")
"""


def test_submit_keeps_scripts_and_logs_locally_and_hands_the_password_through_the_environment(own_redis, tmp_path):
    import os
    import subprocess
    import sys

    server = own_redis(extra=("--requirepass", "array-pw"))
    tf = write_taskfile(tmp_path, "from taskflow import Task\nt = Task(abs, -1)\n")
    fakebin = tmp_path / "fakebin"
    fakebin.mkdir()
    (fakebin / "sbatch").write_text(FAKE_SBATCH.format(python=sys.executable))
    (fakebin / "sbatch").chmod(0o755)
    log = tmp_path / "fake.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKFLOW_", "SLURM_", "SGE_", "PBS_"))}
    env.update(PATH=str(fakebin), FAKE_LOG=str(log))

    def submit(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "taskflow", "submit", str(tf), "-n", "3", "--scheduler",
                               "slurm", "--store", server.url(password="array-pw"), *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert "array-pw" not in proc.stdout + proc.stderr
        return proc

    submit()
    [call] = [json.loads(line) for line in log.read_text().splitlines()]
    jobs_folder = tmp_path / "taskfile.taskflow-jobs"
    assert call["args"][-1].startswith(str(jobs_folder))
    assert "array-pw" not in call["script"] and server.url() .split("?")[0] in call["script"]
    assert call["password"] == "array-pw", "the workers get the password through the environment"
    assert (jobs_folder / "logs").is_dir() and str(jobs_folder / "logs") in call["script"]
    [record] = [json.loads(p.read_text()) for p in jobs_folder.glob("*.json")]
    assert "array-pw" not in json.dumps(record)
    submit("--log-dir", str(tmp_path / "elsewhere"))
    second = json.loads(log.read_text().splitlines()[1])
    assert str(tmp_path / "elsewhere") in second["script"] and (tmp_path / "elsewhere").is_dir()


def test_jobs_workers_get_the_password_of_the_address(own_redis, tmp_path):
    server = own_redis(extra=("--requirepass", "jobs-pw"))
    tf = write_taskfile(tmp_path, COMMANDS)
    proc = run_cli("execute", tf, "--store", server.url(password="jobs-pw"), "--jobs", "2", check=0)
    assert "jobs-pw" not in proc.stdout + proc.stderr
    status = json.loads(run_cli("status", tf, "--store", server.url(), "--json",
                                env={"TASKFLOW_REDIS_PASSWORD": "jobs-pw"}, check=0).stdout)
    assert status["total"]["finished"] == 6


def test_cleanup_removes_what_a_killed_worker_left_and_keeps_live_claims(redis_env):
    env = redis_env(TASKFILE_HEAD + """
@TaskGenerator
def step(i):
    note("start", i, os.getpid())
    if i == 0:
        time.sleep(0.6)  # long enough for the worker to write its journal
    if i == 1:
        gate()
    return i

steps = [step(i) for i in range(3)]
""", lease=60)
    w = env.start("--max-tasks", "5")
    wait_until(lambda: env.events("start", 1), "the worker to start step 1")
    store = open_store(env.store)
    wait_until(lambda: store.journaled(), "the worker to journal its first result")
    # A large result this worker was writing when it died: chunks under a key of its own.
    with store.connection.guard() as r:
        r.hset(store.keys.tmp("ab" * 16, f"{HOST}.{w.pid}.dead1"), "0", b"x")
    w.signal(signal.SIGKILL)
    w.wait()
    live = open_store(env.store).claims(lease=60)
    held = live.claim("cd" * 16)
    proc = run_cli("cleanup", env.taskfile, "--store", env.store, env=env.env(), check=0)
    assert "removed 1 stale claim(s)" in proc.stdout and f"process {w.pid}" in proc.stdout
    assert "removed 1 journal(s) of dead workers" in proc.stdout
    assert "removed 1 temp file(s)" in proc.stdout
    assert "kept 1 live claim(s)" in proc.stdout
    assert store.journaled() == set() and env.locks() == ["cd" * 16]
    with store.connection.guard() as r:
        assert list(r.scan_iter(store.keys.tmp_pattern())) == []
    assert live.release(held)
    env.open_gate()
    env.run().expect(0)
    env.assert_all_finished(3)


def test_the_web_page_shows_a_redis_store_and_its_buttons_act_on_it(own_redis, tmp_path):
    from test_web import _csrf, _get, _post
    from web_helpers import WebServer, eventually

    server = own_redis(extra=("--requirepass", "web-pw"))
    tf = write_taskfile(tmp_path, COMMANDS)
    web = WebServer(tf, "--store", server.url(password="web-pw"))
    try:
        status, html, headers = _get(web.url)
        assert status == 200 and b"web-pw" not in html
        cookie = headers["Set-Cookie"].split(";", 1)[0]
        code, body, _ = _get(web.base + "/api/status", cookie)
        assert code == 200 and json.loads(body)["total"]["ready"] == 5
        assert _post(web.base + "/api/stop", {"on": True}, cookie, _csrf(html))[0] == 200
        store = open_store(server.url(password="web-pw"))
        assert store.stop_requested()
        code, answer = _post(web.base + "/api/stop", {"on": False}, cookie, _csrf(html))
        assert code == 200 and "taskflow stop" in answer["command"] and "web-pw" not in json.dumps(answer)
        assert not store.stop_requested()
        # Workers launched from the page open the store without the password in their command line.
        code, answer = _post(web.base + "/api/launch", {"jobs": 2}, cookie, _csrf(html))
        assert code == 200, answer
        eventually(lambda: len(store.finished_hashes()) == 6, 60, "the launched workers to finish the graph")
        assert "web-pw" not in json.dumps(answer)
    finally:
        web.stop()
