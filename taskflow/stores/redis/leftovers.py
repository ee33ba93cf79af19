"""What dead writers leave in a Redis store, for `taskflow cleanup`: large results written
midway and journals of workers that are gone."""
from __future__ import annotations

from ..base import Leftover
from ..identity import gone_from_here, writer_gone_from_here
from .connection import Connection
from .journal import writers
from .keys import Keys

# Journals of writers on other hosts count as left behind when not written for this long.
_FOREIGN_AGE = 24 * 3600.0


def find(connection: Connection, keys: Keys, kind: str) -> list[Leftover]:
    """Large results whose writer died on this host midway, and journals of dead workers
    (on this host at once, elsewhere after 24 h without a write). Claims, clock files and
    doctor folders leave nothing behind in a Redis store."""
    if kind == "tmp":
        found = []
        with connection.guard("listing results being written") as r:
            for raw in r.scan_iter(match=keys.tmp_pattern(), count=10_000):
                key = raw.decode("utf-8", "replace")
                host, _, rest = key.rsplit(":", 1)[-1].partition(".")
                pid = rest.partition(".")[0]
                if writer_gone_from_here(host, pid):
                    found.append(Leftover("tmp", f"{key} (process {pid} on {host} is gone)", key))
        return found
    if kind == "journal":
        now = connection.server_now()
        found = []
        for name, writer in writers(connection, keys).items():
            if gone_from_here(writer):
                why = f"process {writer.get('pid')} on {writer.get('host')} is gone"
            elif isinstance(writer.get("time"), (int, float)) and now - writer["time"] > _FOREIGN_AGE:
                why = f"not written for {(now - writer['time']) / 3600:.0f} h"
            else:
                continue
            found.append(Leftover("journal", f"journal {name} ({why})", name))
        return found
    return []

def remove(connection: Connection, keys: Keys, leftover: Leftover) -> bool:
    with connection.guard(f"removing {leftover.label}") as r:
        if leftover.kind == "tmp":
            return bool(r.delete(leftover.key))
        if leftover.kind == "journal":
            pipe = r.pipeline(transaction=False)
            pipe.hdel(keys.journals, leftover.key)
            pipe.delete(keys.journal(leftover.key))
            return bool(pipe.execute()[0])
    return False
