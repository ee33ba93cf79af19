"""`taskflow doctor`: does the store's filesystem give what taskflow relies on?

Each check (see doctor_checks, doctor_clock and doctor_peer) does on the filesystem what
workers do, in a scratch folder STORE/doctor/<host>.<pid>.<n>/ that is
removed however the check ends, and reports a figure and a verdict:

- exclusive create: racing processes create the same names with O_EXCL;
  exactly one may win each (with a second view of the store, half of them
  race through it, as another client would);
- rename: a file renamed over another replaces it whole, and a reader never
  sees a mixture of two files (finding it missing for a moment is a note);
- link: link() onto an existing name fails and leaves that file alone;
- O_TMPFILE: whether results can be written as unnamed files (else tmp/ and
  rename, which is as safe);
- time stamps and clock offset (see doctor_clock);
- cache lag: how late another client sees a change (see doctor_peer.meet).

From the granularity and the lag it derives the shortest safe lease (see
stores/folder/needs.py: `minimum_lease`), compares the configured one with it, and records its
figures in STORE/doctor.json for `execute`.
"""
from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from . import doctor_clock, doctor_peer
from ._version import __version__
from .doctor_checks import (NOTE, OK, RACERS, ROUNDS, SKIP, UNSAFE, Check, check_exclusive_create, check_link,
                            check_rename, check_tmpfile, race_check)
from .errors import StoreAccessError, UsageError
from .stores.base import Store
from .stores.folder import FolderStore, require_folder
from .stores.folder import needs as fsneeds
from .stores.identity import HOST, process


@dataclass
class Diagnosis:
    store: str
    filesystem: str
    lease: float
    checks: list[Check]
    needs: dict[str, Any]

    @property
    def unsafe(self) -> bool:
        return any(c.verdict == UNSAFE for c in self.checks)

    def lines(self) -> list[str]:
        width = max(len(c.name) for c in self.checks)
        head = [f"store {self.store} on {self.filesystem}"]
        return head + [f"{c.name:<{width}}  {c.verdict:<6}  {c.figure}" for c in self.checks]

    def to_json(self) -> dict[str, Any]:
        return {"store": self.store, "filesystem": self.filesystem, "lease": self.lease, "unsafe": self.unsafe,
                "needs": self.needs,
                "checks": [{"name": c.name, "verdict": c.verdict, "figure": c.figure, "data": c.data}
                           for c in self.checks]}


def filesystem_of(path: str) -> str:
    """The type and mount point of the filesystem holding `path`, from /proc/self/mounts."""
    path = os.path.realpath(path)
    best = ("", "unknown filesystem")
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                point = parts[1].replace("\\040", " ")
                inside = path == point or path.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best[0]):
                    best = (point, f"{parts[2]} at {point}")
    except OSError:
        pass
    return best[1]


@contextmanager
def scratch(root: str) -> Iterator[str]:
    """A private folder in `root`/doctor/, removed on the way out (errors and Ctrl-C too)."""
    parent = os.path.join(root, "doctor")
    path = os.path.join(parent, f"{HOST}.{process.pid}.{process.unique()}")
    os.makedirs(path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        try:
            os.rmdir(parent)
        except OSError:
            pass  # another doctor's folder is in it


# -- time ------------------------------------------------------------------------

def _seconds(x: float) -> str:
    if x >= 1:
        return f"{x:.3g} s"
    if x >= 1e-3:
        return f"{x * 1e3:.3g} ms"
    if x >= 1e-6:
        return f"{x * 1e6:.3g} µs"
    return f"{x * 1e9:.3g} ns"


def clock_checks(clock: doctor_clock.Clock) -> list[Check]:
    unit = "whole seconds" if clock.whole_seconds else "finer than a second"
    stamps = Check("time stamps", OK, f"{unit}, steps of {_seconds(clock.granularity)}",
                   {"granularity": clock.granularity, "whole_seconds": clock.whole_seconds,
                    "samples": clock.samples})
    ahead = "ahead of" if clock.offset >= 0 else "behind"
    verdict = NOTE if abs(clock.offset) > 1 else OK
    offset = Check("clock offset", verdict,
                   f"the filesystem's clock is {_seconds(abs(clock.offset))} {ahead} this host's "
                   f"(± {_seconds(clock.uncertainty)}); leases are judged by the filesystem's clock",
                   {"offset": clock.offset, "uncertainty": clock.uncertainty})
    return [stamps, offset]


def lag_checks(lags: doctor_peer.Lags | None, why_not: str) -> tuple[list[Check], float | None]:
    """The cache- and listing-lag checks, and the worst lag that matters for claims (None: not measured)."""
    if lags is None:
        return [Check("cache lag", SKIP, why_not, {})], None
    claim = {k: lags.lags.get(k) for k in doctor_peer.CLAIM_KINDS}
    parts = ", ".join(f"{k} {'not seen' if v is None else _seconds(max(v, 0.0))}" for k, v in claim.items())
    data = {"lags": lags.lags, "uncertainty": lags.uncertainty, "rounds": lags.rounds, "peer": lags.peer,
            "role": lags.role}
    listed = lags.lags.get("listing")
    if listed is None:
        listing = Check("listing lag", NOTE, f"a file made and one deleted by another client did not show in this "
                        f"client's listing within {doctor_peer.LAG_LIMIT:g} s: `status` counts may lag as far",
                        {"lag": None})
    else:
        listed = max(listed + lags.uncertainty, 0.0)
        listing = Check("listing lag", OK if listed <= 1 else NOTE,
                        f"another client's listing showed a new and a deleted file after {_seconds(listed)}"
                        + (": `status` counts may lag as far" if listed > 1 else ""), {"lag": listed})
    if any(v is None for v in claim.values()):
        return [Check("cache lag", UNSAFE, f"changes made by another client were not seen within "
                      f"{doctor_peer.LAG_LIMIT:g} s ({parts}; with {lags.peer})", data), listing], None
    worst = max(max(v for v in claim.values() if v is not None) + lags.uncertainty, 0.0)
    who = "changes made here, seen by" if lags.role == "writer" else "changes seen here, made by"
    return [Check("cache lag", OK, f"a change shows on the other client after up to {_seconds(worst)}: {parts} "
                  f"(worst of {lags.rounds} rounds, ± {_seconds(lags.uncertainty)}; {who} {lags.peer})", data),
            listing], worst


def lease_check(lease: float, granularity: float, lag: float | None) -> tuple[Check, float]:
    need = fsneeds.minimum_lease(granularity, lag or 0.0)
    basis = f"time stamps of {_seconds(granularity)}" + (f" and a cache lag of {_seconds(lag)}" if lag is not None
                                                          else "; cache lag not measured")
    data = {"lease": lease, "min_lease": need}
    if lease < need:
        return Check("lease", UNSAFE, f"{lease:g} s is shorter than this store needs ({need:g} s, from {basis}): "
                     f"use --lease {need:g} or more", data), need
    return Check("lease", OK, f"{lease:g} s; this store needs at least {need:g} s (from {basis})", data), need


# -- all together -------------------------------------------------------------------

def diagnose(store: Store, lease: float, peer: bool = False, peer_path: str | None = None,
             peer_wait: float = 300.0, racers: int = RACERS, rounds: int = ROUNDS) -> Diagnosis:
    """Run every check on `store`'s filesystem and record what the store needs in doctor.json.

    `peer`: meet another `taskflow doctor --peer` on this store (another node)
    to measure cache lag; `peer_path`: another path to the store's folder, as
    a second client sees it, looked through by a thread of this process.
    Raises StoreAccessError when the store cannot be written, UsageError when it is not a folder store.
    """
    store = require_folder(store, "taskflow doctor")
    try:
        store.ensure()
        with scratch(store.path) as folder:
            peer_scratch = None
            if peer_path is not None:
                _visible(peer_path, peer_path, store.path)
                peer_scratch = _visible(os.path.join(peer_path, os.path.relpath(folder, store.path)), peer_path,
                                        store.path)
            race = os.path.join(folder, "race")
            os.makedirs(race)
            views = [race] if peer_scratch is None else [race, _visible(os.path.join(peer_scratch, "race"))]
            checks = [check_exclusive_create(views, racers, rounds),
                      check_rename(folder), check_link(folder), check_tmpfile(folder)]
            clock = doctor_clock.sample_clock(folder)
            checks += clock_checks(clock)
            lags, why_not = _measure_lag(store, clock, peer, peer_path, peer_scratch, peer_wait)
            more, lag = lag_checks(lags, why_not)
            checks += more
            if lags is not None and lags.race is not None:
                checks.insert(1, race_check("create between clients", lags.race, 2 * doctor_peer.PEER_RACERS,
                                            doctor_peer.RACE_ROUNDS, f" on two clients (this one and {lags.peer})"))
        measured = lag

        def record(previous: dict | None) -> dict:
            lag, lag_from = measured, HOST
            if lag is None and lags is None:
                # A run on one node must not forget what a run on two measured before.
                kept = _kept_lag(previous)
                if kept is not None:
                    lag, lag_from = kept
                    checks[-1].figure += f"; keeping the {_seconds(lag)} measured from {lag_from} before"
                    checks[-1].data["kept_lag"] = lag
            check, need = lease_check(lease, clock.granularity, lag)
            checks.append(check)
            return {"granularity": clock.granularity, "whole_seconds": clock.whole_seconds, "lag": lag,
                    "lag_measured_on": lag_from if lag is not None else None,
                    "min_lease": need, "offset": clock.offset, "measured_on": HOST, "time": time.time(),
                    "by": f"taskflow {__version__}"}
        needs = fsneeds.update_needs(store, record)
    except OSError as e:
        where = e.filename or store.path
        raise StoreAccessError(f"store I/O error on {where}: {e.strerror or e}", path=where) from e
    return Diagnosis(store.path, filesystem_of(store.path), lease, checks, needs)


def _kept_lag(previous: dict | None) -> tuple[float, str] | None:
    if previous is None or not isinstance(previous.get("lag"), (int, float)):
        return None
    return float(previous["lag"]), str(previous.get("lag_measured_on") or previous.get("measured_on") or "?")


def _visible(path: str, peer_path: str | None = None, store: str | None = None) -> str:
    """`path`, made through the store, once the other view shows it (its caches may lag)."""
    deadline = time.monotonic() + doctor_peer.LAG_LIMIT
    while not os.path.isdir(path):
        if time.monotonic() > deadline:
            raise UsageError(f"--peer-path {peer_path}: not the same folder as the store {store} "
                             f"({path} never appeared there)")
        time.sleep(0.05)
    return path


def _measure_lag(store: FolderStore, clock: doctor_clock.Clock, peer: bool, peer_path: str | None,
                 peer_scratch: str | None, wait: float) -> tuple[doctor_peer.Lags | None, str]:
    if peer_path is None and not peer:
        return None, ("not measured: clients on one host share their caches; run `taskflow doctor --peer` "
                      "on two nodes at once (see docs/cluster.md)")
    if peer_path is None:
        try:
            lags = doctor_peer.meet(store.path, clock, wait)
        except doctor_peer.PeerGone as e:
            return None, f"not measured: no other `taskflow doctor --peer` answered ({e} not seen in time)"
        if lags.peer.split(" pid ")[0] == HOST:
            return None, ("not measured: the other `taskflow doctor --peer` ran on this host too, and shares "
                          "its caches; start the two on different nodes")
        return lags, ""
    # The other party is a thread of ours looking through peer_path: its own view, caches and
    # clock reading. Its files lie in our scratch and peer folders, which we remove, also when
    # we are interrupted and it is not.
    outcome: dict[str, Any] = {}
    if peer_scratch is None:
        raise ValueError("peer_path comes with peer_scratch, its view of our scratch folder")

    def other() -> None:
        try:
            outcome["lags"] = doctor_peer.meet(peer_path, doctor_clock.sample_clock(peer_scratch), wait)
        except BaseException as e:  # handed to the main thread
            outcome["error"] = e

    thread = threading.Thread(target=other, name="taskflow-doctor-peer", daemon=True)
    thread.start()
    try:
        lags = doctor_peer.meet(store.path, clock, wait)
    except doctor_peer.PeerGone as e:
        thread.join(doctor_peer.LAG_LIMIT)
        error = outcome.get("error")
        return None, f"not measured: the view through --peer-path did not answer ({error or e})"
    except BaseException:
        shutil.rmtree(os.path.join(store.path, "doctor", "peer"), ignore_errors=True)
        raise
    thread.join(doctor_peer.LAG_LIMIT)
    if "error" in outcome and not isinstance(outcome["error"], doctor_peer.PeerGone):
        raise outcome["error"]
    return lags, ""
