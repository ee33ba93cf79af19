"""Shared helpers: write taskfiles into a temp folder and run the CLI in a subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Fixtures of the two-client shared folder (sshd + two sshfs mounts); see tests/sharedfs.py.
from sharedfs import forgetful_server, sharedfs_server, two_clients, two_forgetful_clients  # noqa: F401
# A real redis-server on 127.0.0.1 for the tests of Redis stores; see tests/redis_server.py.
from redis_server import own_redis, redis_server, redis_url  # noqa: F401


# Taskfile lines that give tasks `note(...)`: one line per call appended (O_APPEND) to the
# file named by TF_TEST_LOG, so tests can count exactly what ran, across processes.
NOTE_PREAMBLE = """
import os
from taskflow import TaskGenerator, Task, barrier, bvalue, iteratetask, mapreduce

LOG = os.environ.get("TF_TEST_LOG", os.devnull)

def note(*parts):
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, (" ".join(map(str, parts)) + "\\n").encode())
    os.close(fd)
"""


def write_taskfile(folder: Path, source: str, name: str = "taskfile.py") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 120,
            check: int | None = None) -> subprocess.CompletedProcess:
    """`python -m taskflow ARGS` in a fresh process; asserts the exit code when `check` is given."""
    full_env = dict(os.environ)
    full_env.pop("TASKFLOW_STORE", None)
    if env:
        full_env.update(env)
    proc = subprocess.run([sys.executable, "-m", "taskflow", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if check is not None:
        assert proc.returncode == check, (
            f"exit {proc.returncode} != {check}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def status_json(taskfile: Path, *extra: str) -> dict:
    proc = run_cli("status", taskfile, "--json", *extra, check=0)
    return json.loads(proc.stdout)


@pytest.fixture
def taskdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(autouse=True)
def _fresh_declarations():
    """Tasks declared in one test must not leak into the next."""
    from taskflow.task import Declarations, activate

    previous = activate(Declarations())
    yield
    activate(previous)


def pytest_collection_modifyitems(items):
    """Every test on the two-client shared folder carries the `sharedfs` marker, so
    `-m sharedfs` / `-m "not sharedfs"` select them."""
    for item in items:
        if {"two_clients", "two_forgetful_clients"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.sharedfs)


# The `taskflow web` browser fixtures (one headless chromium for the whole session).
from web_helpers import browser, page, servers  # noqa: E402,F401
