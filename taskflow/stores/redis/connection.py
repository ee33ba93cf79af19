"""Talking to the Redis server of a store, and saying in one line why that failed.

Every call into the client library runs inside `Connection.guard()`, which
turns what the library raises into a `StoreServerError` (exit 4) naming the
server as HOST:PORT and what went wrong: nothing listening, wrong user or
password, no such database, out of memory (`maxmemory`), a replica that
cannot be written, a server still loading its data, or a connection lost
mid-run. The password is never part of such a message: the client library's
own text is scrubbed of it before it is quoted.

A dropped connection is tried again a few times within about two seconds
(a server restarted meanwhile is met again, with its data if it persists
them); past that the command fails. Every command taskflow sends may be
sent twice this way, so each is written to have the same effect when it is
(see claims.py and results.py).
"""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ...errors import StoreServerError, UsageError
from .url import PASSWORD_VARIABLE, RedisAddress

if TYPE_CHECKING:
    import redis


# A dropped connection: tried again this often, waiting 0.1 s, 0.2 s, 0.4 s, 0.8 s (capped at 1 s).
RETRIES = 4
# Seconds before a server that does not answer counts as gone. Generous: a server writing
# its dataset to disk, or sending a 16 MB chunk to a busy node, may be slow for a while.
SOCKET_TIMEOUT = 30.0
CONNECT_TIMEOUT = 5.0


def client_library() -> Any:
    """The redis package; a UsageError saying how to install it when it is missing."""
    try:
        import redis
    except ModuleNotFoundError:
        raise UsageError("a redis:// store needs the redis package: pip install 'taskflow[redis]'") from None
    return redis


class Connection:
    """One client (a pool of sockets) for one store address, made on first use and again after fork."""

    def __init__(self, address: RedisAddress):
        self.address = address
        self._client: redis.Redis | None = None
        self._pid = 0
        self._time_ref: tuple[float, float] | None = None  # (server time, monotonic) when read

    @property
    def client(self) -> redis.Redis:
        if self._client is None or self._pid != os.getpid():
            lib = client_library()
            from redis.backoff import ExponentialBackoff
            from redis.retry import Retry

            self._client = lib.Redis(
                **self.address.client_kwargs(), socket_timeout=SOCKET_TIMEOUT,
                socket_connect_timeout=CONNECT_TIMEOUT, retry=Retry(ExponentialBackoff(cap=1.0, base=0.1), RETRIES),
                client_name=None)
            self._pid = os.getpid()
            self._time_ref = None
        return self._client

    @contextlib.contextmanager
    def guard(self, doing: str = "") -> Iterator[Any]:
        """The client, with what it raises turned into one StoreServerError naming the server."""
        lib = client_library()
        try:
            yield self.client
        except lib.RedisError as e:
            raise explain(e, self.address, doing) from None

    def ping(self) -> None:
        """Connect now, so that a wrong address, password or database is said before any work."""
        with self.guard() as r:
            r.ping()

    def server_now(self) -> float:
        """The server's clock (TIME), read at most once a second and extrapolated on this host's
        monotonic clock meanwhile: the one clock every worker of a store agrees on."""
        now = time.monotonic()
        if self._time_ref is None or now - self._time_ref[1] > 1.0:
            with self.guard("reading the time") as r:
                seconds, micros = r.time()
            self._time_ref = (seconds + micros / 1e6, time.monotonic())
        return self._time_ref[0] + (time.monotonic() - self._time_ref[1])

    def close(self) -> None:
        if self._client is not None and self._pid == os.getpid():
            self._client.close()
        self._client = None


def explain(e: Exception, address: RedisAddress, doing: str = "") -> StoreServerError:
    """One line naming the server and what went wrong, without the password."""
    from redis import exceptions as x

    server = f"Redis server {address.server}"
    text = _scrub(str(e), address)
    during = f" while {doing}" if doing else ""
    if isinstance(e, x.AuthenticationError) or "NOAUTH" in text or "WRONGPASS" in text:
        how = ("give it in the address (redis://USER:PASSWORD@HOST:PORT/DB) or in "
               f"{PASSWORD_VARIABLE}")
        if address.password is None:
            message = f"{server} wants a password and none was given: {how}"
        else:
            message = f"{server} refused the login of user {address.username or 'default'}: wrong user or password"
    elif isinstance(e, x.OutOfMemoryError) or text.startswith("OOM"):
        message = (f"{server} is out of memory (its maxmemory is reached){during}; nothing half-written counts "
                   "as a result: free memory on the server or raise its maxmemory, then run again")
    elif isinstance(e, x.NoPermissionError):
        message = f"{server} does not let user {address.username or 'default'} do this{during}: {text}"
    elif "DB index is out of range" in text or "invalid DB index" in text.lower():
        message = f"{server} has no database {address.db} (its `databases` setting allows fewer)"
    elif isinstance(e, x.BusyLoadingError):
        message = f"{server} is still loading its data from disk; try again in a moment"
    elif isinstance(e, x.ReadOnlyError):
        message = f"{server} is a read-only replica: a store needs the primary server"
    elif isinstance(e, x.TimeoutError):
        message = f"{server} did not answer within {SOCKET_TIMEOUT:g}s{during} (overloaded, stopped or unreachable)"
    elif isinstance(e, x.ConnectionError):
        if "refused" in text.lower():
            message = f"cannot connect to {server}: connection refused (is redis-server running there?)"
        elif "Name or service not known" in text or "nodename nor servname" in text:
            message = f"cannot connect to {server}: no such host"
        else:
            message = f"lost the connection to {server}{during}: {text}"
    else:
        message = f"{server} answered an error{during}: {text}"
    return StoreServerError(message, path=address.display)


def _scrub(text: str, address: RedisAddress) -> str:
    text = " ".join(text.split())  # one line, whatever the library said
    if address.password:
        text = text.replace(address.password, "***")
    return text
