"""The checks of `taskflow doctor` that race and replace files: exclusive create, rename, link, O_TMPFILE.

Each one does what workers do, as hard as it can, in a folder it is given,
and returns a Check: a verdict and the figures behind it. Processes are
forked for the races (a thread would share the interpreter lock and rarely
race at all) and killed if the check is interrupted.
"""
from __future__ import annotations

import collections
import errno
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from .errors import StoreAccessError

OK, NOTE, SKIP, UNSAFE = "ok", "note", "skip", "unsafe"
RACERS, ROUNDS = 8, 500
RENAME_SECONDS = 0.5


@dataclass
class Check:
    name: str
    verdict: str
    figure: str
    data: dict[str, Any] = field(default_factory=dict)


def _errname(code: int | None) -> str:
    return errno.errorcode.get(code or 0, str(code))


# -- exclusive create ----------------------------------------------------

def _child(work: Any, conn: Any, *args: Any) -> None:
    """Run `work(*args)` in a forked process and send back its answer, or the OSError it met."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it kills us
    try:
        conn.send(("ok", work(*args)))
    except OSError as e:
        conn.send(("error", (e.errno, e.strerror, e.filename)))
    finally:
        conn.close()


def _run_children(ctx: Any, work: Any, arglists: list[tuple]) -> tuple[list, list]:
    """Start one forked process per argument tuple; (processes, pipes to read their answers from)."""
    procs, conns = [], []
    for args in arglists:
        recv, send = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_child, args=(work, send, *args), daemon=True)
        p.start()
        send.close()
        procs.append(p)
        conns.append(recv)
    return procs, conns


def _answer(conn: Any) -> Any:
    try:
        status, value = conn.recv()
    except EOFError:
        raise StoreAccessError("a doctor process died without answering") from None
    if status == "error":
        code, message, filename = value
        raise OSError(code, message, filename)
    return value


def _stop(procs: list) -> None:
    for p in procs:
        if p.is_alive():
            p.kill()
        p.join()


def _racer(folders: list[str], index: int, rounds: int, start_at: float) -> tuple:
    folder = folders[index % len(folders)]
    won: list = []
    lost: collections.Counter[str] = collections.Counter()
    failed: collections.Counter[str] = collections.Counter()
    while time.time() < start_at:
        pass  # spin rather than sleep: the racers must start within microseconds of one another
    for r in range(rounds):
        path = os.path.join(folder, f"r{r}")
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except OSError as e:
            # A lost race is one where the name is there afterwards, whatever the error says.
            (lost if os.path.exists(path) else failed)[_errname(e.errno)] += 1
            continue
        os.write(fd, str(index).encode())
        os.close(fd)
        won.append(r)
    return won, dict(lost), dict(failed)


@dataclass
class Race:
    """What racing processes won and lost; `won` maps a round to the racers that won it."""

    won: dict[int, list[int]] = field(default_factory=lambda: collections.defaultdict(list))
    lost: collections.Counter = field(default_factory=collections.Counter)
    failed: collections.Counter = field(default_factory=collections.Counter)
    overwritten: int = 0

    def add(self, other: Race) -> None:
        for r, who in other.won.items():
            self.won[r].extend(who)
        self.lost.update(other.lost)
        self.failed.update(other.failed)
        self.overwritten += other.overwritten

    def to_json(self) -> dict:
        return {"won": {str(r): who for r, who in self.won.items()}, "lost": dict(self.lost),
                "failed": dict(self.failed), "overwritten": self.overwritten}

    @classmethod
    def from_json(cls, data: dict) -> Race:
        race = cls()
        for r, who in data["won"].items():
            race.won[int(r)].extend(who)
        race.lost.update(data["lost"])
        race.failed.update(data["failed"])
        race.overwritten = int(data.get("overwritten", 0))
        return race


def race(folders: list[str], racers: int, rounds: int, start_at: float, first: int = 0) -> Race:
    """`racers` processes, numbered from `first`, create r0..r{rounds-1} in lockstep from
    `start_at` (this host's clock) on; racer i works through folders[i % len(folders)]."""
    ctx = multiprocessing.get_context("fork")
    procs: list = []
    try:
        procs, conns = _run_children(ctx, _racer, [(folders, first + i, rounds, start_at) for i in range(racers)])
        results = [_answer(c) for c in conns]
    finally:
        _stop(procs)
    outcome = Race()
    for i, (won, lost, failed) in enumerate(results):
        for r in won:
            outcome.won[r].append(first + i)
        outcome.lost.update(lost)
        outcome.failed.update(failed)
    for r, who in outcome.won.items():
        if len(who) == 1:
            # Read through the winner's own view: another's cache may still hold the empty new file.
            with open(os.path.join(folders[who[0] % len(folders)], f"r{r}")) as f:
                if f.read() != str(who[0]):
                    outcome.overwritten += 1
    return outcome


def race_check(name: str, outcome: Race, racers: int, rounds: int, where: str) -> Check:
    double = sorted(r for r, who in outcome.won.items() if len(who) > 1)
    lost, failed = outcome.lost, outcome.failed
    unwon = rounds - len(outcome.won)
    data = {"racers": racers, "rounds": rounds, "double_wins": len(double), "collisions": sum(lost.values()),
            "lost_race_errno": dict(lost), "failed_errno": dict(failed), "unwon_rounds": unwon,
            "overwritten": outcome.overwritten}
    returns = f" (a lost race returns {', '.join(sorted(lost))})" if lost else ""
    figure = f"{racers} processes x {rounds} rounds{where}: {len(double)} double wins, {sum(lost.values())} collisions"
    figure += returns
    verdict = OK
    if double or outcome.overwritten:
        verdict = UNSAFE
        if outcome.overwritten:
            figure += f"; {outcome.overwritten} winners' files overwritten"
    if failed or unwon:
        verdict = UNSAFE
        figure += f"; {sum(failed.values())} creates failed with no file there ({', '.join(sorted(failed))})"
    return Check(name, verdict, figure, data)


def check_exclusive_create(folders: list[str], racers: int = RACERS, rounds: int = ROUNDS) -> Check:
    """`racers` processes race to create the same names; `folders` are views of one folder."""
    outcome = race(folders, racers, rounds, time.time() + 0.1 + 0.02 * racers)
    check = race_check("exclusive create", outcome, racers, rounds,
                       f" through {len(folders)} views" if len(folders) > 1 else "")
    check.data["views"] = len(folders)
    return check


# -- rename and link ---------------------------------------------------------

def _version(n: int) -> bytes:
    return f"{n:08d}".encode() * 512


def _renamer(folder: str, target: str, seconds: float) -> int:
    n, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        n += 1
        tmp = os.path.join(folder, f"v{n}")
        with open(tmp, "wb") as f:
            f.write(_version(n))
        os.replace(tmp, target)
    return n


def check_rename(folder: str, seconds: float = RENAME_SECONDS) -> Check:
    """Rename over an existing file, while another process reads it all along."""
    src_dir, dst_dir = os.path.join(folder, "tmp"), os.path.join(folder, "dst")
    os.makedirs(src_dir)
    os.makedirs(dst_dir)
    target = os.path.join(dst_dir, "target")
    with open(target, "wb") as f:
        f.write(_version(0))
    ctx = multiprocessing.get_context("fork")
    reads = missing = torn = 0
    procs: list = []
    try:
        procs, (recv,) = _run_children(ctx, _renamer, [(src_dir, target, seconds)])
        while not recv.poll():
            try:
                with open(target, "rb") as f:
                    data = f.read()
            except OSError as e:
                # Network clients also answer ESTALE when the file they looked up was replaced.
                if e.errno not in (errno.ENOENT, errno.ESTALE):
                    raise
                missing += 1
                continue
            reads += 1
            if len(data) != 4096 or data != data[:8] * 512:
                torn += 1
        renames = _answer(recv)
    finally:
        _stop(procs)
    with open(target, "rb") as f:
        last_ok = f.read() == _version(renames)
    counts = {"renames": renames, "reads": reads, "missing": missing, "torn": torn, "final_content_right": last_ok}
    figure = f"{renames} renames over a file read {reads} times meanwhile: {missing} times missing, {torn} torn"
    verdict = OK
    if missing:
        # Readers see the whole file or none, as taskflow needs: none costs a recomputation at worst.
        verdict = NOTE
        figure += " (a reader may find a file missing while it is replaced: a recomputation, never a wrong result)"
    if torn or not last_ok or os.listdir(src_dir):
        verdict = UNSAFE
        if not last_ok:
            figure += "; the last rename did not replace the file"
    return Check("rename", verdict, figure, counts)


def check_link(folder: str) -> Check:
    a, b, c = (os.path.join(folder, f"link.{x}") for x in "abc")
    for path, text in ((a, "a"), (b, "b")):
        with open(path, "w") as f:
            f.write(text)
    try:
        os.link(a, c)
    except OSError as e:
        return Check("link", UNSAFE, f"link() is not supported ({_errname(e.errno)}): a claim renewed during a "
                     "takeover could not be put back", {"supported": False, "errno": _errname(e.errno)})
    refused = None
    try:
        os.link(a, b)
    except OSError as e:
        refused = _errname(e.errno)
    with open(b) as f:
        kept = f.read() == "b"
    data = {"supported": True, "refused_with": refused, "target_kept": kept}
    if refused is None or not kept:
        return Check("link", UNSAFE, "link() onto an existing name replaced it", data)
    return Check("link", OK, f"link() onto an existing name fails ({refused}) and leaves it alone", data)


def check_tmpfile(folder: str) -> Check:
    """Whether an O_TMPFILE file can be made and linked in, the way results are written."""
    if not hasattr(os, "O_TMPFILE"):
        return Check("O_TMPFILE", OK, "not on this platform: results are written to tmp/ and renamed",
                     {"supported": False})
    try:
        fd = os.open(folder, os.O_TMPFILE | os.O_WRONLY, 0o644)
    except OSError as e:
        return Check("O_TMPFILE", OK, f"refused ({_errname(e.errno)}): results are written to tmp/ and renamed",
                     {"supported": False, "errno": _errname(e.errno)})
    root = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.write(fd, b"x")
        os.link(f"/proc/self/fd/{fd}", os.path.join(folder, "anonymous"), src_dir_fd=root, follow_symlinks=True)
    except OSError as e:
        return Check("O_TMPFILE", OK, f"made, but not linked in ({_errname(e.errno)}): results are written to "
                     "tmp/ and renamed", {"supported": False, "errno": _errname(e.errno)})
    finally:
        os.close(root)
        os.close(fd)
    return Check("O_TMPFILE", OK, "supported: results are written as unnamed files and linked in",
                 {"supported": True})
