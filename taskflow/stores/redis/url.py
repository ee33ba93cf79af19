"""Where a Redis store lives: `redis://[USER[:PASSWORD]@]HOST[:PORT][/DB][?prefix=NAME]`.

`rediss://` is the same over TLS. The password comes from the URL or, so that
it need not be typed into a command line or a file that gets committed, from
the environment variable TASKFLOW_REDIS_PASSWORD (the URL wins). It is kept
out of everything this module hands back for people to read: `display` and
`repr` name the server as `redis://USER@HOST:PORT/DB?prefix=NAME`, and the
password travels only in `RedisAddress.password`, to the client library.

Query options besides `prefix` are TLS settings passed through to the client
library (`ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`, `ssl_cert_reqs`,
`ssl_check_hostname`); any other is an error, so a misspelt option is not
silently ignored.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from ...errors import UsageError

SCHEMES = ("redis", "rediss")
PASSWORD_VARIABLE = "TASKFLOW_REDIS_PASSWORD"
DEFAULT_PORT = 6379
DEFAULT_PREFIX = "taskflow"
_TLS_OPTIONS = {"ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname"}
# Keys are `<prefix>:<kind>:...`: a colon or a space inside the prefix would blur that layout.
_PREFIX = re.compile(r"[A-Za-z0-9_.\-/]{1,100}")


@dataclass(frozen=True)
class RedisAddress:
    """A parsed Redis store address; never shows its password."""

    host: str
    port: int
    db: int
    prefix: str
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False, compare=False)
    tls_options: tuple[tuple[str, str], ...] = ()

    @property
    def display(self) -> str:
        """The address for messages and records: everything but the password."""
        scheme = "rediss" if self.tls else "redis"
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}/{self.db}?prefix={self.prefix}"

    @property
    def server(self) -> str:
        """HOST:PORT, for one-line errors."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __repr__(self) -> str:
        return f"RedisAddress({self.display!r})"

    __str__ = __repr__

    def client_kwargs(self) -> dict:
        """Keyword arguments for redis.Redis: the one place the password leaves this object."""
        kwargs: dict = {"host": self.host, "port": self.port, "db": self.db,
                        "username": self.username, "password": self.password}
        if self.tls:
            kwargs["ssl"] = True
            for key, value in self.tls_options:
                kwargs[key] = value.lower() in ("1", "true", "yes") if key == "ssl_check_hostname" else value
        return kwargs


def parse(value: str, environ: dict | None = None) -> RedisAddress:
    """The address in `value`; a UsageError naming what is wrong (never the password) otherwise."""
    env = os.environ if environ is None else environ
    try:
        parts = urlsplit(value)
        port = parts.port
        scheme = parts.scheme.lower()
    except ValueError as e:
        raise UsageError(f"--store: cannot read {_shown(value)} as a Redis address ({e})") from None
    if scheme not in SCHEMES:
        raise UsageError(f"--store: {_shown(value)} is not a redis:// or rediss:// address")
    host = parts.hostname
    if not host:
        raise UsageError(f"--store: {_shown(value)} names no host (redis://HOST:PORT/DB)")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise UsageError(f"--store: {_shown(value)}: the database must be a number (redis://HOST:PORT/0), "
                         f"not {path!r}")
    prefix = DEFAULT_PREFIX
    tls_options = []
    for key, item in parse_qsl(parts.query, keep_blank_values=True):
        if key == "prefix":
            prefix = item
        elif key in _TLS_OPTIONS and scheme == "rediss":
            tls_options.append((key, item))
        else:
            known = "prefix" + (", " + ", ".join(sorted(_TLS_OPTIONS)) if scheme == "rediss" else "")
            raise UsageError(f"--store: {_shown(value)}: unknown option {key!r} (known: {known})")
    if not _PREFIX.fullmatch(prefix):
        raise UsageError(f"--store: {_shown(value)}: the prefix must be 1 to 100 letters, digits or . _ - /, "
                         f"not {prefix!r}")
    password = unquote(parts.password) if parts.password is not None else env.get(PASSWORD_VARIABLE) or None
    username = unquote(parts.username) if parts.username else None
    return RedisAddress(host=host, port=port or DEFAULT_PORT, db=int(path) if path else 0, prefix=prefix,
                        tls=scheme == "rediss", username=username, password=password,
                        tls_options=tuple(tls_options))


def _shown(value: str) -> str:
    """`value` with any password in it replaced by ***, for error messages."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", value)
