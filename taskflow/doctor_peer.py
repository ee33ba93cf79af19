"""How late another client of a shared filesystem sees a change: two doctors meet in the store.

Two parties meet in STORE/doctor/peer/: two doctor processes on two nodes
(`--peer`), or this process and a thread looking through another path to the
same folder (`--peer-path`). Whoever creates `writer` first (with O_EXCL)
writes; the other creates `watcher` and watches. They talk through files
written whole and renamed into place, one per message. Each round the writer
lays out probe files and says `ready.R`; the watcher looks at every probe, so
that its caches hold the old state, and says `primed.R`; the writer then
renews one probe (rewrites a byte, as a heartbeat does), renames a new file
over another, deletes a third and creates a fourth; the watcher polls until
it sees each change and says when, in `seen.R`. Both sides give times on the
filesystem's clock (their own clock plus the offset doctor_clock measured),
so the two hosts' clocks need not agree. Then both race processes to create
the same names with O_EXCL, from a moment the writer announces in
`race.start`; the watcher reports what its processes won in `raced`. The
writer sends the lags and the race it found in `final`, the watcher answers
`bye`, and the writer removes the folder.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from .doctor_checks import Race, race
from .doctor_clock import Clock
from .errors import UsageError
from .stores.identity import HOST, process

LAG_LIMIT = 30.0            # a change not seen after this long is reported as not seen at all
POLL = 0.002
STALE_PARTY = 60.0          # a `writer`/`watcher` file not refreshed this long is a crashed doctor's
ROUNDS = 3
PEER_RACERS, RACE_ROUNDS = 4, 500   # racing processes on each client, names they race for
# Changes that decide whether a live claim is judged right; listings only delay `status`.
CLAIM_KINDS = ("renewal", "replacement", "deletion", "creation")
KINDS = CLAIM_KINDS + ("listing",)


class PeerGone(Exception):
    """The other party did not answer in time."""


@dataclass
class Lags:
    lags: dict[str, float | None]   # worst lag per kind of change over the rounds; None: never seen
    uncertainty: float              # of each lag, from both parties' clock offsets
    rounds: int
    peer: str                       # who the other party was (host, pid)
    role: str
    race: Race | None = None        # both parties' exclusive creates of the same names


def _race_as_writer(folder: str, clock: Clock, worst: dict, alive: Callable[[], None]) -> Race:
    """Race the watcher's processes to create the same names, from a moment both clients see coming."""
    race_dir = os.path.join(folder, "race")
    os.makedirs(race_dir)
    lag = max((worst[k] for k in CLAIM_KINDS if worst[k] is not None), default=0.0)
    start = clock.fs_now() + 1.0 + 2 * min(lag, LAG_LIMIT)
    _send(folder, "race.start", {"start": start})
    outcome = race([race_dir], PEER_RACERS, RACE_ROUNDS, start - clock.offset)
    outcome.add(Race.from_json(_receive(folder, "raced", time.monotonic() + LAG_LIMIT * 2 + 60, alive)))
    return outcome


def _race_as_watcher(folder: str, clock: Clock, alive: Callable[[], None]) -> None:
    start = _receive(folder, "race.start", time.monotonic() + LAG_LIMIT * 2, alive)["start"]
    race_dir = os.path.join(folder, "race")
    deadline = time.monotonic() + LAG_LIMIT
    while not os.path.isdir(race_dir) and time.monotonic() < deadline:
        time.sleep(POLL * 4)  # made by the writer before it spoke, but this client may not show it yet
    outcome = race([race_dir], PEER_RACERS, RACE_ROUNDS, start - clock.offset, first=PEER_RACERS)
    _send(folder, "raced", outcome.to_json())


def _send(folder: str, name: str, data: dict) -> None:
    tmp = os.path.join(folder, f".{name}.{process.unique()}")
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, os.path.join(folder, name))


def _receive(folder: str, name: str, deadline: float, alive: Callable[[], None] = lambda: None) -> dict:
    path = os.path.join(folder, name)
    while True:
        try:
            with open(path) as f:
                text = f.read()
            if text:
                return json.loads(text)
        except FileNotFoundError:
            pass
        except ValueError:
            pass  # seen before its content reached this client: look again
        if time.monotonic() > deadline:
            raise PeerGone(name)
        alive()
        time.sleep(POLL * 4)


def _try_create(path: str, content: dict) -> bool:
    # Ctrl-C or SIGTERM as the exclusive create returns would leave an empty party file that names
    # nobody, so the interrupted doctor could not tell it was its own: they wait until it is written.
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except OSError as e:
            # SFTP reports a lost exclusive create as EPERM.
            if e.errno == errno.EEXIST or os.path.exists(path):
                return False
            raise
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(content, f)
        except BaseException:  # an empty party file would block the next pairing for a minute
            os.unlink(path)
            raise
        return True
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _party(path: str) -> dict | None:
    try:
        with open(path) as f:
            data = json.loads(f.read() or "null")
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _remove_if_stale(path: str, clock: Clock) -> bool:
    try:
        if clock.fs_now() - os.stat(path).st_mtime <= STALE_PARTY:
            return False
        os.unlink(path)  # left by a doctor that was killed
    except FileNotFoundError:
        pass
    return True


def _take_role(folder: str, clock: Clock, me: dict) -> tuple[str, str]:
    """("writer" or "watcher", the writer's token, which names every file of this pairing)."""
    writer_path, watcher_path = os.path.join(folder, "writer"), os.path.join(folder, "watcher")
    for attempt in range(100):
        if attempt:
            time.sleep(0.1)  # a party file just made may show empty to another client for a while
        if _try_create(writer_path, me):
            _remove_if_stale(watcher_path, clock)
            return "writer", me["token"]
        writer = _party(writer_path)
        if writer is None or _remove_if_stale(writer_path, clock):
            continue
        if _try_create(watcher_path, {**me, "pairs_with": writer.get("token")}):
            return "watcher", str(writer.get("token"))
        if not _remove_if_stale(watcher_path, clock):
            raise UsageError(f"{folder}: two `taskflow doctor --peer` are paired there already; "
                             "wait for them to finish")
    raise UsageError(f"{folder}: cannot take a role (other doctors keep coming and going)")


def _await_watcher(folder: str, token: str, clock: Clock, deadline: float, alive: Callable[[], None]) -> dict:
    path = os.path.join(folder, "watcher")
    while True:
        party = _party(path)
        if party is not None and party.get("pairs_with") == token:
            return party
        if party is not None:
            _remove_if_stale(path, clock)
        if time.monotonic() > deadline:
            raise PeerGone("watcher")
        alive()
        time.sleep(POLL * 4)


class _Refresher:
    """Keeps our party file young while we wait, so nobody takes it for a crashed doctor's."""

    def __init__(self, path: str):
        self.path = path
        self.last = 0.0

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self.last > 5:
            self.last = now
            try:
                with open(self.path, "r+b") as f:
                    os.pwrite(f.fileno(), f.read(1), 0)
            except FileNotFoundError:
                pass  # the pairing is over: the writer removed the folder


def meet(view: str, clock: Clock, wait: float, rounds: int = ROUNDS) -> Lags:
    """Take part in the protocol in `view` (a store's path as this client sees it).

    Raises PeerGone when no other party came within `wait` seconds, or one
    stopped answering.
    """
    folder = os.path.join(view, "doctor", "peer")
    os.makedirs(folder, exist_ok=True)
    me = {"host": HOST, "pid": process.pid, "token": process.unique() + os.urandom(4).hex()}
    role = None
    try:
        role, token = _take_role(folder, clock, me)
        mine = os.path.join(folder, role)
        alive = _Refresher(mine)
        deadline = time.monotonic() + wait
        session = os.path.join(folder, token)
        if role == "writer":
            peer = _await_watcher(folder, token, clock, deadline, alive)
            worst, uncertainty = _write_rounds(session, clock, rounds, alive)
            raced = _race_as_writer(session, clock, worst, alive)
            _send(folder, f"{token}.final", {"lags": worst, "uncertainty": uncertainty, "race": raced.to_json()})
            try:
                _receive(folder, f"{token}.bye", time.monotonic() + LAG_LIMIT)
            except PeerGone:
                pass
            return Lags(worst, uncertainty, rounds, f"{peer.get('host')} pid {peer.get('pid')}", role, raced)
        peer = _party(os.path.join(folder, "writer")) or {}
        _watch_rounds(session, clock, rounds, alive)
        _race_as_watcher(session, clock, alive)
        final = _receive(folder, f"{token}.final", time.monotonic() + LAG_LIMIT * 2, alive)
        _send(folder, f"{token}.bye", {})
        return Lags(final["lags"], final["uncertainty"], rounds, f"{peer.get('host')} pid {peer.get('pid')}", role,
                    Race.from_json(final["race"]))
    finally:
        if role is None:  # interrupted (Ctrl-C, SIGTERM) while taking a role: it may have been taken
            role = next((r for r in ("writer", "watcher")
                         if (_party(os.path.join(folder, r)) or {}).get("token") == me["token"]), None)
        if role == "writer":
            shutil.rmtree(folder, ignore_errors=True)
        elif role == "watcher":
            try:
                os.unlink(os.path.join(folder, role))
            except FileNotFoundError:
                pass


def _write_rounds(folder: str, clock: Clock, rounds: int, alive: Callable[[], None]) -> tuple[dict, float]:
    worst: dict[str, float | None] = {k: 0.0 for k in CLAIM_KINDS}
    worst["listing"] = None
    listed_from = 0.0
    uncertainty = clock.uncertainty
    # Probes apart from messages: a client's own write into a folder refreshes its cached listing.
    os.makedirs(os.path.join(folder, "probes"), exist_ok=True)
    for r in range(rounds):
        probe = os.path.join(folder, "probes", f"probe{r}")
        for kind, text in (("renewal", "t"), ("replacement", "old"), ("deletion", "d")):
            with open(f"{probe}.{kind}", "w") as f:
                f.write(text)
        laid = clock.fs_now()
        _send(folder, f"ready.{r}", {})
        _receive(folder, f"primed.{r}", time.monotonic() + LAG_LIMIT * 2, alive)
        # The renewal must move the stamp, or it could not be seen at all.
        time.sleep(max(0.0, laid + clock.granularity + 2 * clock.uncertainty + 0.01 - clock.fs_now()))
        changed = {"renewal": clock.fs_now()}
        fd = os.open(f"{probe}.renewal", os.O_WRONLY)
        os.pwrite(fd, b"t", 0)
        os.close(fd)
        changed["replacement"] = clock.fs_now()
        with open(f"{probe}.new", "w") as f:
            f.write("new")
        os.replace(f"{probe}.new", f"{probe}.replacement")
        changed["deletion"] = clock.fs_now()
        os.unlink(f"{probe}.deletion")
        changed["creation"] = clock.fs_now()
        open(f"{probe}.creation", "w").close()
        if r == 0:
            listed_from = changed["creation"]
        seen = _receive(folder, f"seen.{r}", time.monotonic() + LAG_LIMIT * 2, alive)
        uncertainty = clock.uncertainty + float(seen.get("uncertainty", 0.0))
        for kind in CLAIM_KINDS:
            at = seen["seen"].get(kind)
            if at is None:
                worst[kind] = None
            elif worst[kind] is not None:
                worst[kind] = max(worst[kind], at - changed[kind])
        if seen.get("listing") is not None:
            worst["listing"] = seen["listing"] - listed_from
    return worst, uncertainty


def _watch_rounds(folder: str, clock: Clock, rounds: int, alive: Callable[[], None]) -> None:
    """Watch each round's changes; the listing only of the first round's, all along the others.

    Listings can lag far behind (sshfs keeps them 20 s), and nothing about
    claims depends on them: waiting for them once is enough.
    """
    probes = os.path.join(folder, "probes")
    listing = lambda: _listed(probes, "probe0.creation", "probe0.deletion")  # noqa: E731
    listed: float | None = None
    listing_until = 0.0
    for r in range(rounds):
        _receive(folder, f"ready.{r}", time.monotonic() + LAG_LIMIT * 2, alive)
        probe = os.path.join(probes, f"probe{r}")
        old = _stamps(f"{probe}.renewal")
        _content(f"{probe}.replacement")
        _exists(f"{probe}.deletion")
        _exists(f"{probe}.creation")
        if r == 0:
            os.listdir(probes)
        _send(folder, f"primed.{r}", {})
        if r == 0:
            listing_until = time.monotonic() + LAG_LIMIT
        tests = _lag_tests(probe, old)
        seen: dict[str, float | None] = {}
        deadline = time.monotonic() + LAG_LIMIT
        last = r == rounds - 1
        while time.monotonic() < deadline:
            for kind, test in tests.items():
                if kind not in seen and test():
                    seen[kind] = clock.fs_now()
            if listed is None and time.monotonic() < listing_until and listing():
                listed = clock.fs_now()
            if len(seen) == len(tests) and (not last or listed is not None or time.monotonic() >= listing_until):
                break
            time.sleep(POLL)
        for kind in tests:
            seen.setdefault(kind, None)
        _send(folder, f"seen.{r}", {"seen": seen, "listing": listed, "uncertainty": clock.uncertainty})
        alive()


def _lag_tests(probe: str, old: tuple[int | None, int | None]) -> dict[str, Callable[[], bool]]:
    """Whether this client sees each change the writer made to the probe files of one round."""
    return {
        "renewal": lambda: all(new != was for new, was in zip(_stamps(f"{probe}.renewal"), old, strict=True)),
        "replacement": lambda: _content(f"{probe}.replacement") == "new",
        "deletion": lambda: not any(_exists(f"{probe}.deletion")),
        "creation": lambda: all(_exists(f"{probe}.creation")),
    }


def _stamps(path: str) -> tuple[int | None, int | None]:
    """The mtime as stat() and as fstat() after a fresh open see it: caches may serve either."""
    try:
        by_path: int | None = os.stat(path).st_mtime_ns
    except FileNotFoundError:
        by_path = None
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return by_path, None
    try:
        return by_path, os.fstat(fd).st_mtime_ns
    finally:
        os.close(fd)


def _content(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def _exists(path: str) -> tuple[bool, bool]:
    """Whether stat() and open() find `path` (has_result asks the one, claims are read with the other)."""
    try:
        os.stat(path)
        by_stat = True
    except FileNotFoundError:
        by_stat = False
    try:
        os.close(os.open(path, os.O_RDONLY))
        return by_stat, True
    except FileNotFoundError:
        return by_stat, False


def _listed(folder: str, present: str, absent: str) -> bool:
    names = set(os.listdir(folder))
    return present in names and absent not in names
