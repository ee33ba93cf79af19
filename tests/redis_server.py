"""A real redis-server on 127.0.0.1 for the tests of Redis stores.

`redis_server` (one per test session) and `RedisServer` (a test's own, to stop,
kill and restart) run `redis-server --port P --bind 127.0.0.1 --save ''
--appendonly no --daemonize yes --pidfile F` on a free port and stop it by the
pid in F. `redis_url` gives each test its own prefix on the session's server.

Tests using them skip, saying why, when redis-server or the redis package is
missing; with TASKFLOW_REQUIRE_REDIS=1 (as in CI) they fail instead.
"""
from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REQUIRE = os.environ.get("TASKFLOW_REQUIRE_REDIS") == "1"
_prefixes = itertools.count()


def unavailable(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"{reason}; TASKFLOW_REQUIRE_REDIS=1 says this test must run, not skip")
    pytest.skip(reason)


def missing_requirement() -> str | None:
    if shutil.which("redis-server") is None:
        return "redis-server not found on PATH (apt-get install redis-server)"
    try:
        import redis  # noqa: F401
    except ModuleNotFoundError:
        return "the redis package is not installed (pip install 'taskflow[redis]')"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One redis-server process in `folder`; `start`, `stop` (SHUTDOWN: persists what it keeps),
    `kill` (SIGKILL: loses what it did not write out), `restart`."""

    def __init__(self, folder: Path, appendonly: bool = False, extra: tuple[str, ...] = ()):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.appendonly = appendonly
        self.extra = extra
        self.pidfile = self.folder / "redis.pid"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, prefix: str = "taskflow", db: int = 0, password: str | None = None) -> str:
        auth = f":{password}@" if password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}?prefix={prefix}"

    def start(self) -> RedisServer:
        subprocess.run(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "yes" if self.appendonly else "no", "--daemonize", "yes",
                        "--pidfile", str(self.pidfile), "--dir", str(self.folder),
                        "--logfile", str(self.folder / "redis.log"), *self.extra], check=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    reply = s.recv(64)
                if reply.startswith((b"+PONG", b"-NOAUTH")) and self.pidfile.exists():
                    return self
                if reply.startswith(b"-LOADING"):
                    time.sleep(0.05)
                    continue
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not start; see {self.folder / 'redis.log'}")

    def pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def _signal(self, signum: int) -> None:
        pid = self.pid()
        if pid is None:
            return
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            self.pidfile.unlink(missing_ok=True)
            return
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        self.pidfile.unlink(missing_ok=True)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)  # a clean shutdown: the append-only file is written out

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    why = missing_requirement()
    if why:
        unavailable(why)
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    """A store address of its own for this test, on the session's server."""
    return redis_server.url(prefix=f"t{os.getpid()}-{next(_prefixes)}")


@pytest.fixture
def own_redis(tmp_path):
    """A factory of redis-servers for this test alone, each stopped at its end."""
    why = missing_requirement()
    if why:
        unavailable(why)
    made: list[RedisServer] = []

    def make(appendonly: bool = False, extra: tuple[str, ...] = ()) -> RedisServer:
        server = RedisServer(tmp_path / f"redis{len(made)}", appendonly=appendonly, extra=extra)
        made.append(server)
        return server.start()
    yield make
    for server in made:
        server.kill()
