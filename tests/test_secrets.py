"""Nothing secret on disk or in logs: after runs on a Redis store whose server wants a password
(given in the address, and through TASKFLOW_REDIS_PASSWORD), `taskflow status` and `show`, and
`taskflow web` pages (random token, and TASKFLOW_WEB_TOKEN) that launch local workers and submit
a job to a fake sbatch, neither the password, nor a token, nor an unrelated environment variable
is in any file under the run's folder (folder store, jobs folders, launch logs, job scripts and
records), in any key or value of the Redis database, or in what the commands printed, but for
the one line where each page prints its address. A failure record's traceback is the task's own.

The searches are shown to find what they look for: a planted file and key are found, and the
fake sbatch, which dumps the environment the job would get, finds the password there (that is how
it reaches the workers) and no token.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import stat
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import taskflow
from conftest import run_cli, write_taskfile
from web_helpers import WebServer, eventually

PASSWORD = "pw" + secrets.token_hex(12)
CHOSEN_TOKEN = "tok" + secrets.token_hex(12)
ENV_SECRET = "env" + secrets.token_hex(12)  # in every command's environment, never to be recorded

TASKFILE = """
import os
import time
from taskflow import Task

GATE = os.environ.get("TF_GATE", "")

def slow(i):
    while GATE and not os.path.exists(GATE):
        time.sleep(0.05)
    return i

def square(i):
    return i * i

def check_input(x):
    if x >= 0:
        raise ValueError("refused on purpose")

def broken(x):
    check_input(x)

held = Task(slow, 0)  # first: a worker of a page claims it, and holds the claim until the gate opens
squares = [Task(square, i) for i in range(4)]
bad = Task(broken, squares[0])
"""

# A fake sbatch: notes its arguments and the environment the job would get (outside the searched
# folder), and answers with a new job id each time.
FAKE_SBATCH = """#!/bin/sh
n=$(($(cat {calls} 2>/dev/null | wc -l) + 1))
printf '%s\\n' "$*" >> {calls}
env > {envs}/env-$n
echo $((4200 + n))
"""

PACKAGE = os.path.dirname(os.path.abspath(taskflow.__file__))


# -- the searches --------------------------------------------------------------

def secrets_in(data: bytes, wanted: dict[str, str]) -> list[str]:
    return [name for name, value in wanted.items() if value.encode() in data]


def files_holding(root: Path, wanted: dict[str, str]) -> tuple[dict[str, list[str]], list[str]]:
    """({path: names of the secrets found in it}, every file read), for every file under `root`."""
    found: dict[str, list[str]] = {}
    read: list[str] = []
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                data = f.read()
            read.append(os.path.relpath(path, root))
            hits = secrets_in(data + path.encode(), wanted)
            if hits:
                found[os.path.relpath(path, root)] = hits
    return found, read


def redis_dump(client) -> dict[bytes, bytes]:
    """Every key of every database of the server, with its value as bytes, whatever its type."""
    dump: dict[bytes, bytes] = {}
    databases = [int(name[2:]) for name in client.info("keyspace")]
    for db in databases:
        client.execute_command("SELECT", db)
        for key in client.scan_iter(count=1000):
            kind = client.type(key).decode()
            if kind == "string":
                value = repr(client.get(key))
            elif kind == "hash":
                value = repr(client.hgetall(key))
            elif kind == "list":
                value = repr(client.lrange(key, 0, -1))
            elif kind == "set":
                value = repr(client.smembers(key))
            elif kind == "zset":
                value = repr(client.zrange(key, 0, -1, withscores=True))
            elif kind == "stream":
                value = repr(client.xrange(key))
            else:
                value = repr(client.dump(key))
            dump[b"%d:%s" % (db, key)] = value.encode()
    client.execute_command("SELECT", 0)
    return dump


def redis_holding(client, wanted: dict[str, str]) -> dict[bytes, list[str]]:
    return {key: hits for key, value in redis_dump(client).items() if (hits := secrets_in(key + value, wanted))}


# -- the web page, through HTTP ------------------------------------------------------

class Page:
    """A browser's session on one `taskflow web`: the token once in the address, then its cookie."""

    def __init__(self, server: WebServer):
        self.server = server
        self.cookie = ""
        self.bodies: list[bytes] = []
        html = self.get("/")  # the printed address: ?token=, which sets the cookie
        config = re.search(rb'<script type="application/json" id="taskflow-config">(.*?)</script>', html, re.S)
        assert config, html[:500]
        self.csrf = json.loads(config.group(1))["csrf"]

    def get(self, path: str) -> bytes:
        sep = "&" if "?" in path else "?"
        url = f"{self.server.base}{path}{sep}token={self.server.token}" if not self.cookie else \
            f"{self.server.base}{path}"
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Cookie": self.cookie}), timeout=60) as r:
            body = r.read()
            set_cookie = r.headers.get("Set-Cookie")
        if set_cookie:
            self.cookie = set_cookie.split(";", 1)[0]
        self.bodies.append(body)
        return body

    def get_with_token(self, path: str) -> bytes:
        """A GET with the token in its address as well as the cookie, as a reload of the printed address is."""
        sep = "&" if "?" in path else "?"
        url = f"{self.server.base}{path}{sep}token={self.server.token}"
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Cookie": self.cookie}), timeout=60) as r:
            body = r.read()
        self.bodies.append(body)
        return body

    def post(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(f"{self.server.base}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Cookie": self.cookie, "X-Taskflow-CSRF": self.csrf,
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            raw = r.read()
        self.bodies.append(raw)
        return json.loads(raw)

    def browse(self, failed: str) -> None:
        for path in ("/api/overview", "/api/status", "/api/failed", "/api/running", "/api/report",
                     "/api/graph", f"/api/show?target={urllib.parse.quote(failed)}"):
            self.get(path)
        self.get_with_token("/api/overview")

    def launch_and_submit(self, workers: int) -> dict:
        launched = self.post("/api/launch", {"jobs": workers})
        preview = self.post("/api/submit/preview", {"scheduler": "slurm", "workers": "2", "time": "10m"})
        submitted = self.post("/api/submit", {"preview": preview["preview"]})
        assert submitted["job_id"].startswith("42"), submitted
        return launched


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def stopped(server: WebServer) -> tuple[str, str]:
    """Ctrl-C on the page; (everything it printed on stdout, its stderr)."""
    assert server.stop() == 130
    return server.url + "\n" + server.proc.stdout.read(), server.proc.stderr.read()


# -- the test -------------------------------------------------------------------

def test_no_password_token_or_environment_variable_on_disk_in_redis_or_in_logs(tmp_path, own_redis):
    import redis  # there: own_redis skipped (or failed, in CI) without it

    server = own_redis(extra=("--requirepass", PASSWORD))
    client = redis.Redis(host="127.0.0.1", port=server.port, password=PASSWORD)
    run = tmp_path / "run"
    run.mkdir()
    tf = write_taskfile(run, TASKFILE, "tf.py")
    bin_dir, envs = run / "bin", tmp_path / "job-environments"
    bin_dir.mkdir()
    envs.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(FAKE_SBATCH.format(calls=bin_dir / "calls.log", envs=envs))
    sbatch.chmod(sbatch.stat().st_mode | stat.S_IEXEC)
    path_env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}

    def address(prefix: str, password: bool) -> str:
        return server.url(prefix=prefix, password=PASSWORD if password else None)

    in_url, from_env = address("url", True), address("env", False)
    assert PASSWORD in in_url and PASSWORD not in from_env
    pw_env = {"TASKFLOW_REDIS_PASSWORD": PASSWORD}
    everywhere = {"TF_SECRET_SETTING": ENV_SECRET, **path_env}
    printed: list[tuple[str, str, str]] = []  # (what, stdout, stderr) of every command

    def cli(*args: str, env: dict | None = None, check: int = 0) -> None:
        proc = run_cli(*args, env={**everywhere, **(env or {})}, check=check, cwd=run)
        printed.append((" ".join(map(str, args)), proc.stdout, proc.stderr))

    # Runs with the password in the address (a pool of two) and through the variable; a failure each.
    cli("execute", tf, "--store", in_url, "--keep-going", "--jobs", "2", "-v", check=1)
    cli("execute", tf, "--store", from_env, "--keep-going", "-v", env=pw_env, check=1)
    for store, env in ((in_url, None), (from_env, pw_env)):
        cli("status", tf, "--store", store, "--failed", "-v", env=env)
        cli("status", tf, "--store", store, "--json", env=env)
        cli("show", tf, "tf.broken", "--store", store, env=env)

    wanted = {"password": PASSWORD, "chosen token": CHOSEN_TOKEN, "environment variable": ENV_SECRET}
    # The page on the folder store beside the taskfile, with a random token: the run is launched
    # from it, and a job submitted to the (fake) sbatch. Mid-run, with a claim held and the
    # workers' records there, the store holds no secret.
    gate = tmp_path / "gate"
    folder_web = WebServer(tf, "-v", env={**everywhere, "TF_GATE": str(gate)})
    wanted["random token"] = folder_web.token
    folder_page = Page(folder_web)
    folder_launched = folder_page.launch_and_submit(2)
    store = run / "tf.taskflow"
    eventually(lambda: list((store / "locks").iterdir()) and list((store / "workers").iterdir()),
               what="a claim and the workers' records in the folder store")
    found, read = files_holding(run, wanted)
    assert found == {} and any(p.startswith("tf.taskflow/locks/") for p in read), (found, read)
    assert any(p.startswith("tf.taskflow/workers/") for p in read), read
    # The page on a new prefix of the Redis store, the password in its address, a token chosen
    # through TASKFLOW_WEB_TOKEN: its launched workers get the password from their environment.
    redis_web = WebServer(tf, "--store", address("web", True), "-v",
                          env={**everywhere, "TF_GATE": str(gate), "TASKFLOW_WEB_TOKEN": CHOSEN_TOKEN})
    assert redis_web.token == CHOSEN_TOKEN
    redis_page = Page(redis_web)
    redis_launched = redis_page.launch_and_submit(2)
    eventually(lambda: list(client.scan_iter("web:claim:*")) and client.hlen("web:workers"),
               what="a claim and the workers' records in the Redis store")
    assert redis_holding(client, wanted) == {}
    gate.touch()
    eventually(lambda: list((store / "failed").glob("*.json")) and gone(folder_launched["pid"]),
               what="the workers launched on the folder store recorded the failure and exited")
    eventually(lambda: client.hlen("web:failed") == 1 and gone(redis_launched["pid"]),
               what="the workers launched on the Redis store recorded the failure and exited")
    folder_page.browse("tf.broken")
    redis_page.browse("tf.broken")
    pages = {"folder store page": (folder_web, folder_page), "Redis store page": (redis_web, redis_page)}
    outputs = {what: stopped(web) for what, (web, _page) in pages.items()}

    # The searches find what is there: a planted file and key, and the password in the environment
    # the fake sbatch saw (how it reaches the job's workers), beside no token.
    planted = store / "planted"
    planted.write_bytes(b"x" + PASSWORD.encode() + b"y")
    assert files_holding(run, wanted)[0] == {"tf.taskflow/planted": ["password"]}
    planted.unlink()
    client.hset("control:planted", "field", f"a{CHOSEN_TOKEN}b")
    assert redis_holding(client, wanted) == {b"0:control:planted": ["chosen token"]}
    client.delete("control:planted")
    job_envs = sorted(envs.iterdir())
    assert len(job_envs) == 2
    assert secrets_in(job_envs[0].read_bytes(), wanted) == ["environment variable"]  # the folder store's job
    assert secrets_in(job_envs[1].read_bytes(), wanted) == ["password", "environment variable"]  # Redis's

    # Files: the folder store, both jobs folders (scripts, job records, launch logs), all of it.
    found, read = files_holding(run, wanted)
    assert found == {}
    for kind in ("tf.taskflow/failed/", "tf.taskflow/jobs/logs/local-", "tf.taskflow/jobs/slurm-",
                 "tf.taskflow-jobs/logs/local-", "tf.taskflow-jobs/slurm-"):
        assert any(p.startswith(kind) for p in read), f"nothing read under {kind}: {sorted(read)}"
    assert any(p.endswith(".sbatch") for p in read) and any(p.endswith(".json") and "jobs" in p for p in read)
    # Redis: every key and value (claims, failure records, results, worker records, journals).
    dump = redis_dump(client)
    assert any(b"refused on purpose" in v for v in dump.values()) and len(dump) > 10
    assert redis_holding(client, wanted) == {}
    # What the commands printed; the page's JSON and HTML.
    for what, out, err in printed:
        assert secrets_in((out + err).encode(), wanted) == [], (what, out, err)
    for what, (web, page) in pages.items():
        out, err = outputs[what]
        assert out.splitlines()[0] == f"{web.base}/?token={web.token}", what
        assert (out + err).count(web.token) == 1, (what, out, err)  # printed once, on stdout, and nowhere else
        assert secrets_in((out + err).encode(), {k: v for k, v in wanted.items() if v != web.token}) == [], what
        assert "token=***" in err, err  # -v logs every request: its address without the token
        for body in page.bodies:
            assert secrets_in(body, wanted) == [], (what, body[:500])

    # The failure records' tracebacks are the task's own: its two functions, none of taskflow's frames.
    records = [json.loads(p.read_text()) for p in (store / "failed").glob("*.json")]
    records += [json.loads(v) for prefix in ("url", "env", "web") for v in client.hvals(f"{prefix}:failed")]
    assert len(records) == 4
    for record in records:
        tb = record["traceback"]
        assert tb.startswith("Traceback (most recent call last):\n") and tb.endswith(
            "ValueError: refused on purpose\n"), tb
        assert f'File "{tf}", line ' in tb and ", in broken\n" in tb and ", in check_input\n" in tb, tb
        assert PACKAGE not in tb and "run_task" not in tb, tb
        assert tb.index("in broken") < tb.index("in check_input")


# -- the pieces, without a server --------------------------------------------------

def _fails_in_the_task() -> None:
    raise KeyError("from the task")


def _calls_back_into_taskflow() -> None:
    from taskflow.units import parse_duration

    parse_duration("not a duration", "--time")  # taskflow raises, below the task's own frame: those stay


def test_a_failure_keeps_the_frames_from_the_tasks_call_down():
    from taskflow.executors.base import run_task
    from taskflow.task import Task

    done = run_task(Task(_fails_in_the_task), {})
    tb = done.failure.traceback
    assert tb.splitlines()[1].startswith(f'  File "{__file__}", line ') and "in _fails_in_the_task" in tb
    assert PACKAGE not in tb and tb.endswith("KeyError: 'from the task'\n")

    done = run_task(Task(_calls_back_into_taskflow), {})
    tb = done.failure.traceback
    assert tb.splitlines()[1].startswith(f'  File "{__file__}", line ') and "in _calls_back_into_taskflow" in tb
    assert PACKAGE in tb.split("in _calls_back_into_taskflow", 1)[1]  # taskflow's frames below the task's


def test_an_exception_with_no_frame_of_the_task_keeps_its_line_and_its_cause(monkeypatch):
    import taskflow.tracebacks as tracebacks

    def inside_taskflow_only():
        try:
            raise OSError("cause")
        except OSError as cause:
            raise TypeError("cannot pickle") from cause

    with pytest.raises(TypeError) as raised:
        inside_taskflow_only()
    whole = tracebacks.task_traceback(raised.value)
    # As if every frame were taskflow's (a result that cannot be pickled): the exception line and
    # its cause, as Python prints them.
    monkeypatch.setattr(tracebacks, "is_taskflow_frame", lambda tb: True)
    alone = tracebacks.task_traceback(raised.value)
    assert "in inside_taskflow_only" in whole
    assert alone.endswith("\n\nThe above exception was the direct cause of the following exception:\n\n"
                          "TypeError: cannot pickle\n"), alone
    assert "OSError: cause" in alone


def test_the_token_is_left_out_of_logged_addresses():
    from taskflow.web.server import without_token

    assert without_token('"GET /api/overview?token=abc-_9 HTTP/1.1" 200 -') == \
        '"GET /api/overview?token=*** HTTP/1.1" 200 -'
    assert without_token("/api/show?target=a&token=x%2By&z=1") == "/api/show?target=a&token=***&z=1"
    assert without_token("/api/show?target=token=1") == "/api/show?target=token=1"
    assert without_token("/?notoken=1") == "/?notoken=1"
