#!/usr/bin/env python3
"""Claims: taskflow's leases side by side with the locks and leases of filelock.

Four requirements of a claim, measured for each implementation:

  skew      staleness judged on the filesystem's clock: a holder or a contender runs
            with its clock 10 minutes ahead or behind (faketime); is a live lock broken,
            is a dead one taken late, and by how much is the judged age off?
  race      takeover serialised: 2 and 8 processes, each as its own host, race to break
            the same stale lock; how many get it, how many still believe they hold it?
  syscalls  system calls of one failed claim (the lock held by a live owner), strace -c
  cost      claim + release of many distinct names: microseconds and system calls per name

Implementations: `taskflow` (FolderClaims.claim / release, with its Heartbeat for holders),
`taskflow-fast` (claim(take_over=False), what a worker does on its first pass: syscalls only),
`SoftFileLease` (filelock's heartbeat lease), `SoftFileLock` with `lifetime=` (age on the
local clock, renewed by the holder with utime, as a user of that option would), and
`StrictSoftFileLock`.

    python3 bench/filelock_claims.py                           # all, disk and /dev/shm
    python3 bench/filelock_claims.py --sshfs                   # also through two sshfs mounts (root)
    python3 bench/filelock_claims.py --only race,cost --repeat 5 --json out.json

Needs filelock (4.x) and taskflow importable by this interpreter, strace for `syscalls`
and `cost`, faketime and unshare (root) for `skew` and `race`, sshd and sshfs for --sshfs.
See bench/README.md ("Claims: taskflow and filelock").
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

SCRIPT = os.path.abspath(__file__)
IMPLS = ["taskflow", "SoftFileLease", "SoftFileLock", "StrictSoftFileLock"]
SKEW = 600  # seconds: the clock error of one client


# ---------------------------------------------------------------- the implementations (in children)

def taskflow_classes():
    from taskflow.stores.folder import FolderStore
    from taskflow.stores.folder.claims import FolderClaims
    from taskflow.stores.lease import Heartbeat

    return FolderClaims, Heartbeat, FolderStore


def task_name(i: int) -> str:
    return f"{i:040x}"  # shaped like a task hash


class TaskflowClaims:
    """One name claimed through taskflow's FolderClaims in the store folder `folder`."""

    def __init__(self, folder: str, lease: float, fast: bool = False):
        leases_cls, self._heartbeat_cls, store_cls = taskflow_classes()
        store = store_cls(folder)
        store.ensure()
        self.leases = leases_cls(store, lease=lease)
        self.fast = fast
        self.claim = None
        self.heartbeat = None

    def path(self, name: str) -> str:
        return os.path.join(self.leases.store.path, "locks", name)

    def try_acquire(self, name: str) -> bool:
        self.claim = self.leases.claim(name, take_over=not self.fast)
        return self.claim is not None

    def keep_renewing(self) -> None:
        self.heartbeat = self._heartbeat_cls(self.leases)
        self.heartbeat.watch(self.claim)

    def holds(self) -> bool:
        return self.claim is not None and self.leases.holds(self.claim)

    def marker_names_me(self) -> bool:
        return self.claim is not None and self.leases.still_ours(self.claim)

    def judged_age(self, name: str) -> float | None:
        info = self.leases.inspect(name)
        return None if info is None else info.age

    def release(self, name: str) -> None:
        self.leases.release(self.claim)
        self.claim = None


class FilelockClaims:
    """One name locked with one of filelock's soft locks in `folder`."""

    def __init__(self, folder: str, lease: float, kind: str):
        import filelock
        self.filelock = filelock
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        self.lease = lease
        self.kind = kind
        self.locks: dict[str, object] = {}
        self.renewer: threading.Thread | None = None

    def path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    def lock(self, name: str):
        got = self.locks.get(name)
        if got is None:
            fl, path = self.filelock, self.path(name)
            if self.kind == "SoftFileLease":
                got = fl.SoftFileLease(path, lease_duration=self.lease, poll_interval=0.005)
            elif self.kind == "SoftFileLock":
                got = fl.SoftFileLock(path, lifetime=self.lease, poll_interval=0.005)
            else:
                got = fl.StrictSoftFileLock(path, poll_interval=0.005)
            self.locks[name] = got
        return got

    def try_acquire(self, name: str) -> bool:
        try:
            self.lock(name).acquire(blocking=False)
        except self.filelock.Timeout:
            return False
        return True

    def keep_renewing(self) -> None:
        if self.kind != "SoftFileLock":
            return  # SoftFileLease runs its own heartbeat; a strict claim never expires
        # lifetime= has no heartbeat: renew the way its users do, by touching the marker.
        path = next(iter(self.locks.values())).lock_file

        def touch() -> None:
            while True:
                pause(self.lease / 4)
                try:
                    os.utime(path, None)
                except OSError:
                    pass
        self.renewer = threading.Thread(target=touch, daemon=True)
        self.renewer.start()

    def holds(self) -> bool:
        lock = next(iter(self.locks.values()))
        if not lock.is_locked:
            return False
        return getattr(lock, "compromise", None) is None

    def marker_names_me(self) -> bool:
        """Whether the file at the lock's path records this process (and, for a lease, its token)."""
        lock = next(iter(self.locks.values()))
        try:
            with open(lock.lock_file) as f:
                content = f.read()
        except OSError:
            return False
        token = getattr(lock, "token", None)
        if content.startswith("filelock/"):  # a lease's record: key=value lines
            return f"pid={os.getpid()}\n" in content and (token is None or f"token={token}\n" in content)
        return content.startswith(f"{os.getpid()}\n")

    def judged_age(self, name: str) -> float | None:
        """The age the lock's own expiry check uses: local time minus mtime for lifetime=, zero at
        a lease's first look (it times the marker from then on its own monotonic clock)."""
        if self.kind == "SoftFileLock":
            try:
                return time.time() - os.stat(self.path(name)).st_mtime
            except FileNotFoundError:
                return None
        return 0.0 if self.kind == "SoftFileLease" else None

    def release(self, name: str) -> None:
        self.locks.pop(name).release()


def make_claims(impl: str, folder: str, lease: float):
    if impl == "taskflow":
        return TaskflowClaims(folder, lease)
    if impl == "taskflow-fast":
        return TaskflowClaims(folder, lease, fast=True)
    return FilelockClaims(folder, lease, impl)


def pause(seconds: float) -> None:
    """time.sleep, but one that works under faketime (its clock_nanosleep fails with EINVAL there)."""
    threading.Event().wait(seconds)


def say(**fields) -> None:
    print(json.dumps(fields), flush=True)


def child(argv: list[str]) -> None:
    role, impl, folder, lease_s = argv[:4]
    lease = float(lease_s)
    rest = argv[4:]
    claims = make_claims(impl, folder, lease)
    name = task_name(0)
    if role == "holder":  # hold `name` until killed
        start = time.monotonic()
        while not claims.try_acquire(name):  # the lock is free: only a filesystem it cannot use fails here
            if time.monotonic() - start > 5:
                say(error="could not acquire a free lock in 5 s")
                return
            pause(0.05)
        claims.keep_renewing()
        say(held=True)
        while True:
            pause(3600)
    elif role == "contender":  # try for `window` seconds; report the judged age and when it got the lock
        window = float(rest[0])
        say(looking=True)
        sys.stdin.readline()  # the parent has read the lock's age on the filesystem's clock
        age = claims.judged_age(name)
        start = time.monotonic()
        while time.monotonic() - start < window:
            if claims.try_acquire(name):
                say(judged_age=age, acquired_after=time.monotonic() - start)
                return
            pause(0.05)
        say(judged_age=age, acquired_after=None)
    elif role == "racer":  # spin from `go` until `go + window` (this host's wall clock), then look
        go, window = float(rest[0]), float(rest[1])
        pause(max(0.0, go - time.time()))
        got_at = None
        # Tries end a second before the look: a winner that looked and exited may release on exit
        # (filelock's locks do), and a late try would then take the lock lawfully.
        while time.time() < go + window - 1:
            if claims.try_acquire(name):
                got_at = time.time() - go
                claims.keep_renewing()
                break
            pause(random.uniform(0.001, 0.01))
        # Every racer looks at the same moment (all run on this machine's one clock), holder or not.
        pause(max(0.0, go + window - time.time()))
        got = got_at is not None
        say(acquired=got, acquired_at=got_at, holds=got and claims.holds(),
            marker_names_me=got and claims.marker_names_me())
    elif role == "attempts":  # `count` failed claims of a name a live owner holds
        count = int(rest[0])
        for _ in range(count):
            if claims.try_acquire(name):
                say(error="the lock was free")
                return
        say(done=count)
    elif role == "cost":  # claim and release `count` distinct names
        count = int(rest[0])
        names = [task_name(i + 1) for i in range(count)]
        t0 = time.perf_counter()
        for n in names:
            if not claims.try_acquire(n):
                say(error="could not acquire a free lock")
                return
            claims.release(n)
        say(seconds=time.perf_counter() - t0)
    else:
        raise SystemExit(f"unknown role {role}")


# ---------------------------------------------------------------- running children

class Child:
    """A child process of this script, as host `host`, maybe under faketime; JSON lines on stdout."""

    def __init__(self, role: str, impl: str, folder: str, lease: float, *args: object,
                 host: str | None = None, skew: int = 0, strace: str | None = None):
        argv = [sys.executable, SCRIPT, "_child", role, impl, folder, str(lease), *map(str, args)]
        env = None
        if skew:
            argv = ["faketime", "-f", f"{skew:+d}", *argv]
            # A skewed host has a wrong wall clock, not a wrong monotonic one; a faked monotonic
            # clock also makes timed waits (threading.Event.wait) hang, freezing every heartbeat.
            env = {**os.environ, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
        if strace:
            argv = ["strace", "-f", "-c", "-o", strace, *argv]
        if host:
            argv = ["unshare", "--uts", "sh", "-c", 'hostname "$1" && shift && exec "$@"', "sh", host, *argv]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True, env=env)
        self._buf = ""

    def read(self, timeout: float) -> tuple[dict | None, float]:
        """The next JSON line and the time.monotonic() of this process when it arrived."""
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline() if select.select([self.proc.stdout], [], [],
                                                                max(0.0, deadline - time.monotonic()))[0] else None
            now = time.monotonic()
            if line:
                return json.loads(line), now
            if line == "" or now >= deadline:
                return None, now

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def wait(self, timeout: float = 60) -> dict:
        out, err = self.proc.communicate(timeout=timeout)
        lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
        if not lines:
            raise RuntimeError(f"child {self.proc.args} gave nothing:\n{err[-2000:]}")
        return lines[-1]

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def fresh(root: str, label: str) -> str:
    path = tempfile.mkdtemp(prefix=f"{label}-", dir=root)
    return path


def lock_folder(impl: str, folder: str) -> str:
    """Where children of `impl` keep their locks: taskflow's store, or a plain folder."""
    return folder if impl.startswith("taskflow") else os.path.join(folder, "locks")


# ---------------------------------------------------------------- 1. skew

def fs_age(folder: str, path: str) -> float | None:
    """Seconds since `path` was last stamped, on the filesystem's clock: the mtime of a probe
    file written just now in `folder`, minus the mtime of `path`."""
    probe = os.path.join(folder, ".clock-probe")
    with open(probe, "wb") as f:
        f.write(b"t")
    try:
        return os.stat(probe).st_mtime - os.stat(path).st_mtime
    except FileNotFoundError:
        return None


def skew_trial(impl: str, root: str, lease: float, state: str, side: str, skew: int) -> dict:
    """A holder on host node-a renews its lock for 1.5 leases; then, `live`, it goes on; `dead`, it is
    killed just before a contender on node-b starts; `stale`, it is killed 2 leases before. `side`
    runs with its wall clock off by `skew` seconds. The contender tries for 3 leases + 2 s."""
    folder = lock_folder(impl, fresh(root, "skew"))
    lock_path = os.path.join(folder, "locks" if impl.startswith("taskflow") else "", task_name(0))
    holder = Child("holder", impl, folder, lease, host="node-a", skew=skew if side == "holder" else 0)
    got, _ = holder.read(30)
    if not got or not got.get("held"):
        holder.kill()
        raise RuntimeError(f"{impl}: holder did not start: {got} {holder.proc.stderr.read()[-1500:]}")
    time.sleep(1.5 * lease)  # a few renewals, stamped however the implementation stamps them
    killed_at = None
    if state != "live":
        holder.kill()
        killed_at = time.monotonic()
        if state == "stale":
            time.sleep(2 * lease)
    window = 3 * lease + 2
    contender = Child("contender", impl, folder, lease, window, host="node-b",
                      skew=skew if side == "contender" else 0)
    looking, looked_at = contender.read(30)
    age = fs_age(os.path.dirname(lock_path), lock_path) if looking else None
    contender.go()
    done, done_at = contender.read(window + 30)
    holder.kill()
    contender.kill()
    if not looking or not done:
        raise RuntimeError(f"{impl}: contender gave no answer: {contender.proc.stderr.read()[-800:]}")
    judged = done.get("judged_age")
    acquired = done.get("acquired_after") is not None
    return {"impl": impl, "state": state, "side": side, "skew": skew, "lease": lease, "window": window,
            "acquired": acquired,
            "after_death_s": done_at - killed_at if acquired and killed_at is not None else None,
            "after_look_s": done_at - looked_at if acquired else None,
            "fs_age_s": age, "judged_minus_fs_s": None if judged is None or age is None else judged - age}


def run_skew(args, roots: dict[str, str]) -> list[dict]:
    rows = []
    root = roots["disk"]
    configs = [("none", 0)] + [(side, s) for side in ("holder", "contender") for s in (SKEW, -SKEW)]
    for rep in range(args.repeat_skew):
        for impl in args.impls:
            for state in ("live", "dead", "stale"):
                for side, skew in configs:
                    try:
                        row = skew_trial(impl, root, args.lease, state, side, skew)
                    except RuntimeError as e:  # recorded, and tried once more: the machine is shared
                        progress(f"skew {impl} {state} {side} {skew:+d}: {e}; again")
                        row = skew_trial(impl, root, args.lease, state, side, skew)
                    row["repeat"] = rep
                    rows.append(row)
                    progress(f"skew {impl} {state} {side} {skew:+d}: acquired={row['acquired']} "
                             f"after death {fmt(row['after_death_s'])}, after look {fmt(row['after_look_s'])}, "
                             f"judged - fs age {fmt(row['judged_minus_fs_s'])}")
    return rows


# ---------------------------------------------------------------- 2. race

def race_trial(impl: str, folders: list[str], lease: float, racers: int) -> dict:
    """A holder dies on node-0; `racers` processes, each its own host, spread over the views in
    `folders` (one folder seen by different clients), race to take over its lock."""
    holder = Child("holder", impl, folders[0], lease, host="node-0")
    got, _ = holder.read(30)
    holder.kill()
    if not got or not got.get("held"):
        raise RuntimeError(f"{impl}: holder did not start")
    go = time.time() + 3.0  # every racer started and imported
    window = lease + 4
    procs = [Child("racer", impl, folders[i % len(folders)], lease, go, window, host=f"node-{i + 1}")
             for i in range(racers)]
    results = [p.wait(timeout=window + 60) for p in procs]
    return {"impl": impl, "racers": racers, "acquired": sum(bool(r.get("acquired")) for r in results),
            "believe_hold": sum(bool(r.get("holds")) for r in results),
            "marker_names": sum(bool(r.get("marker_names_me")) for r in results),
            "acquired_at": sorted(round(r["acquired_at"], 3) for r in results if r.get("acquired_at") is not None)}


def run_race(args, roots: dict[str, str], views: dict[str, list[str]]) -> list[dict]:
    rows = []
    for where, view_roots in views.items():
        lease = args.lease if where != "sshfs" else max(args.lease, 3.0)
        for impl in args.impls:
            if impl == "StrictSoftFileLock":
                continue  # never breaks a holder of another host: nothing to race for (see skew)
            for racers in (2, 8):
                for rep in range(args.trials):
                    sub = f"race-{impl}-{racers}-{rep}"
                    os.makedirs(os.path.join(view_roots[0], sub))
                    folders = [lock_folder(impl, os.path.join(v, sub)) for v in view_roots]
                    row = race_trial(impl, folders, lease, racers)
                    row.update(where=where, repeat=rep, lease=lease)
                    rows.append(row)
                    progress(f"race {where} {impl} x{racers} #{rep}: acquired {row['acquired']}, "
                             f"believe they hold {row['believe_hold']}, lock file names {row['marker_names']}, "
                             f"at {row['acquired_at']}")
    return rows


# ---------------------------------------------------------------- strace

def strace_counts(path: str) -> dict[str, int]:
    counts = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            # % time, seconds, usecs/call, calls, [errors], syscall
            if len(parts) >= 5 and parts[-1] != "total" and re.fullmatch(r"[\d.]+", parts[0]):
                counts[parts[-1]] = int(parts[3])
    return counts


def per_op(small: dict[str, int], large: dict[str, int], ops: int) -> tuple[float, dict[str, float]]:
    """Marginal system calls per operation between a run of n and one of n + ops."""
    names = set(small) | set(large)
    diff = {n: (large.get(n, 0) - small.get(n, 0)) / ops for n in names}
    diff = {n: round(v, 2) for n, v in diff.items() if abs(v) >= 0.05}
    return round(sum(large.values()) / ops - sum(small.values()) / ops, 2), dict(sorted(diff.items(),
                                                                                    key=lambda kv: -kv[1]))


# ---------------------------------------------------------------- 3. syscalls of a failed claim

def run_syscalls(args, roots: dict[str, str]) -> list[dict]:
    rows = []
    n = args.n_attempts
    for where, root in roots.items():
        for impl in ["taskflow-fast", *args.impls]:
            holder_impl = "taskflow" if impl == "taskflow-fast" else impl
            folder = lock_folder(holder_impl, fresh(root, "sys"))
            holder = Child("holder", holder_impl, folder, args.lease_long, host="node-a")
            got, _ = holder.read(30)
            if not got or not got.get("held"):
                holder.kill()
                why = (got or {}).get("error") or "no answer"
                rows.append({"where": where, "impl": impl, "error": why})
                progress(f"syscalls {where} {impl}: {why}")
                continue
            totals = []
            for _rep in range(args.repeat):
                counts = []
                for k in (n, 2 * n):
                    out = os.path.join(args.strace_dir, f"strace.{impl}.{k}")
                    c = Child("attempts", impl, folder, args.lease_long, k, host="node-b", strace=out)
                    r = c.wait(timeout=600)
                    if "error" in r:
                        raise RuntimeError(f"{impl}: {r['error']}")
                    counts.append(strace_counts(out))
                    os.unlink(out)
                total, calls = per_op(counts[0], counts[1], n)
                totals.append((total, calls))
            holder.kill()
            total, calls = sorted(totals, key=lambda t: t[0])[len(totals) // 2]
            rows.append({"where": where, "impl": impl, "syscalls_per_attempt": total, "calls": calls})
            progress(f"syscalls {where} {impl}: {total} per failed claim: {calls}")
    return rows


# ---------------------------------------------------------------- 4. cost per claimed name

def run_cost(args, roots: dict[str, str]) -> list[dict]:
    rows = []
    for where, root in roots.items():
        n = args.n_cost if where != "sshfs" else args.n_cost_sshfs
        times: dict[str, list[float]] = {impl: [] for impl in args.impls}
        failed: dict[str, str] = {}
        for rep in range(args.repeat):
            order = args.impls[rep % len(args.impls):] + args.impls[:rep % len(args.impls)]
            for impl in order:  # interleaved: drift on the shared machine hits all alike
                folder = lock_folder(impl, fresh(root, "cost"))
                if impl in failed:
                    continue
                r = Child("cost", impl, folder, args.lease_long, n).wait(timeout=3600)
                if "error" in r:
                    failed[impl] = r["error"]
                    continue
                times[impl].append(r["seconds"] / n * 1e6)
                shutil.rmtree(os.path.dirname(folder) if not impl.startswith("taskflow") else folder,
                              ignore_errors=True)
        for impl in args.impls:
            if impl in failed:
                rows.append({"where": where, "impl": impl, "n": n, "error": failed[impl]})
                progress(f"cost {where} {impl}: {failed[impl]}")
                continue
            ns = max(n // 10, 100)
            counts = []
            for k in (ns, 2 * ns):
                folder = lock_folder(impl, fresh(root, "costs"))
                out = os.path.join(args.strace_dir, f"strace.cost.{impl}.{k}")
                r = Child("cost", impl, folder, args.lease_long, k, strace=out).wait(timeout=3600)
                counts.append(strace_counts(out))
                os.unlink(out)
            total, calls = per_op(counts[0], counts[1], ns)
            row = {"where": where, "impl": impl, "n": n, "us_per_name": round(statistics.median(times[impl]), 1),
                   "us_runs": [round(t, 1) for t in times[impl]], "syscalls_per_name": total, "calls": calls}
            rows.append(row)
            progress(f"cost {where} {impl}: {row['us_per_name']} us, {total} syscalls per claim+release {calls}")
    return rows


# ---------------------------------------------------------------- sshfs: one folder, two clients

class Mounts:
    """A private sshd on 127.0.0.1 serving a temporary folder, mounted twice with sshfs: two
    clients of one folder, each with its own caches (the mechanics of tests/sharedfs.py)."""

    CACHE = "cache=yes,kernel_cache,attr_timeout=1,entry_timeout=1"

    def __init__(self) -> None:
        self.root = tempfile.mkdtemp(prefix="filelock-claims-sshfs-")
        self.export = os.path.join(self.root, "export")
        self.mounts = [os.path.join(self.root, "a"), os.path.join(self.root, "b")]
        self.conf = os.path.join(self.root, "sshd")
        self.sshfs: list[subprocess.Popen] = []

    def start(self) -> None:
        for tool in ("sshfs", "ssh-keygen", "fusermount"):
            if shutil.which(tool) is None:
                raise SystemExit(f"filelock_claims: --sshfs needs {tool}")
        os.makedirs(self.export)
        os.makedirs(self.conf, mode=0o700)
        for m in self.mounts:
            os.makedirs(m)
        for key in ("host", "client"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{self.conf}/{key}"],
                           check=True, capture_output=True)
        shutil.copy(f"{self.conf}/client.pub", f"{self.conf}/authorized_keys")
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        with open(f"{self.conf}/sshd_config", "w") as f:
            f.write(f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.conf}/host\n"
                    f"AuthorizedKeysFile {self.conf}/authorized_keys\nPidFile {self.conf}/sshd.pid\n"
                    "PermitRootLogin yes\nPasswordAuthentication no\nUsePAM no\nStrictModes no\nUseDNS no\n"
                    "MaxStartups 100\nMaxSessions 100\nLogLevel ERROR\nSubsystem sftp internal-sftp\n")
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        subprocess.run([sshd, "-f", f"{self.conf}/sshd_config"], check=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        options = ",".join([f"IdentityFile={self.conf}/client", "StrictHostKeyChecking=no",
                            "UserKnownHostsFile=/dev/null", "BatchMode=yes", f"port={self.port}", self.CACHE])
        for m in self.mounts:
            self.sshfs.append(subprocess.Popen(["sshfs", "-f", "-o", options, f"root@127.0.0.1:{self.export}", m],
                                               stdin=subprocess.DEVNULL))
            deadline = time.monotonic() + 15
            while not os.path.ismount(m):
                if time.monotonic() > deadline:
                    raise SystemExit(f"filelock_claims: sshfs did not mount {m}")
                time.sleep(0.05)

    def stop(self) -> None:
        for m in self.mounts:
            if os.path.ismount(m):
                if subprocess.run(["fusermount", "-u", m], capture_output=True).returncode:
                    subprocess.run(["umount", "-l", m], capture_output=True)
        for p in self.sshfs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        try:
            with open(f"{self.conf}/sshd.pid") as f:
                os.kill(int(f.read().split()[0]), signal.SIGTERM)
        except (OSError, ValueError):
            pass
        if not any(os.path.ismount(m) for m in self.mounts):
            shutil.rmtree(self.root, ignore_errors=True)


# ---------------------------------------------------------------- report

def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def summarise(result: dict) -> None:
    out = sys.stdout
    if result.get("skew"):
        out.write(f"\n## Skew: a holder or contender 10 min off (lease {result['lease']:g}s; the contender tries "
                  "for 3 leases + 2 s)\n")
        out.write("| impl | holder | clock off | by (s) | lock taken | s after holder died | s after first look "
                  "| judged age - age on the fs clock (s) |\n|---|---|---|---|---|---|---|---|\n")
        groups: dict[tuple, list[dict]] = {}
        for r in result["skew"]:
            groups.setdefault((r["impl"], r["state"], r["side"], r["skew"]), []).append(r)

        def med(rs: list[dict], key: str) -> str:
            xs = [r[key] for r in rs if r[key] is not None]
            return fmt(statistics.median(xs)) if xs else "-"
        for (impl, state, side, skew), rs in groups.items():
            taken = sum(r["acquired"] for r in rs)
            out.write(f"| {impl} | {state} | {side} | {skew:+d} | {taken}/{len(rs)} | {med(rs, 'after_death_s')} | "
                      f"{med(rs, 'after_look_s')} | {med(rs, 'judged_minus_fs_s')} |\n")
    if result.get("race"):
        out.write("\n## Race: processes, each its own host, take over one stale lock\n")
        out.write("| where | impl | racers | trials | trials with > 1 acquirer | max acquirers | "
                  "trials with > 1 believing | none acquired |\n|---|---|---|---|---|---|---|---|\n")
        groups = {}
        for r in result["race"]:
            groups.setdefault((r["where"], r["impl"], r["racers"]), []).append(r)
        for (where, impl, racers), rs in groups.items():
            out.write(f"| {where} | {impl} | {racers} | {len(rs)} | {sum(r['acquired'] > 1 for r in rs)} | "
                      f"{max(r['acquired'] for r in rs)} | {sum(r['believe_hold'] > 1 for r in rs)} | "
                      f"{sum(r['acquired'] == 0 for r in rs)} |\n")
    if result.get("syscalls"):
        out.write("\n## System calls of one failed claim (owner alive, on another host)\n")
        out.write("| where | impl | syscalls | which |\n|---|---|---|---|\n")
        for r in result["syscalls"]:
            if "error" in r:
                out.write(f"| {r['where']} | {r['impl']} | - | {r['error']} |\n")
                continue
            calls = ", ".join(f"{k} {v:g}" for k, v in r["calls"].items())
            out.write(f"| {r['where']} | {r['impl']} | {r['syscalls_per_attempt']:g} | {calls} |\n")
    if result.get("cost"):
        out.write("\n## Claim + release of distinct names\n")
        out.write("| where | impl | names | µs per name (median) | syscalls per name | which |\n"
                  "|---|---|---|---|---|---|\n")
        for r in result["cost"]:
            if "error" in r:
                out.write(f"| {r['where']} | {r['impl']} | {r['n']} | - | - | {r['error']} |\n")
                continue
            calls = ", ".join(f"{k} {v:g}" for k, v in list(r["calls"].items())[:8])
            out.write(f"| {r['where']} | {r['impl']} | {r['n']} | {r['us_per_name']:g} | "
                      f"{r['syscalls_per_name']:g} | {calls} |\n")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        child(sys.argv[2:])
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="skew,race,syscalls,cost", help="comma-separated: skew, race, syscalls, cost")
    p.add_argument("--impls", default=",".join(IMPLS), help="comma-separated, of: " + ", ".join(IMPLS))
    p.add_argument("--repeat", type=int, default=3, help="repeats of the syscalls and cost measurements")
    p.add_argument("--repeat-skew", type=int, default=1, help="repeats of each skew case")
    p.add_argument("--trials", type=int, default=10, help="races per implementation and racer count")
    p.add_argument("--lease", type=float, default=2.0, help="lease of skew and race trials (sshfs: at least 3)")
    p.add_argument("--lease-long", type=float, default=300.0, help="lease of syscalls and cost runs")
    p.add_argument("--n-attempts", type=int, default=1000, help="failed claims per strace run")
    p.add_argument("--n-cost", type=int, default=10000, help="names claimed and released per cost run")
    p.add_argument("--n-cost-sshfs", type=int, default=10000, help="the same, on the sshfs mount")
    p.add_argument("--disk", default="/var/tmp", help="folder on the local disk to work in")
    p.add_argument("--tmpfs", default="/dev/shm", help="folder on tmpfs to work in ('' to skip)")
    p.add_argument("--sshfs", action="store_true", help="also measure through two sshfs mounts of one folder")
    p.add_argument("--json", help="write every trial and the summary here")
    args = p.parse_args()
    args.impls = [i for i in args.impls.split(",") if i]
    only = set(args.only.split(","))
    import filelock
    roots = {"disk": tempfile.mkdtemp(prefix="filelock-claims-", dir=args.disk)}
    args.strace_dir = tempfile.mkdtemp(prefix="filelock-claims-strace-")  # local, whatever is measured
    if args.tmpfs:
        roots["tmpfs"] = tempfile.mkdtemp(prefix="filelock-claims-", dir=args.tmpfs)
    views = {"disk": [roots["disk"]]}
    mounts = None
    result: dict = {"filelock": filelock.__version__, "lease": args.lease, "python": sys.version.split()[0],
                    "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "argv": sys.argv[1:]}
    try:
        if args.sshfs:
            mounts = Mounts()
            mounts.start()
            roots["sshfs"] = mounts.mounts[0]
            views["sshfs"] = mounts.mounts  # racers alternate between the two clients
        if "skew" in only:
            result["skew"] = run_skew(args, roots)
        if "race" in only:
            result["race"] = run_race(args, roots, views)
        if "syscalls" in only:
            result["syscalls"] = run_syscalls(args, roots)
        if "cost" in only:
            result["cost"] = run_cost(args, roots)
    finally:
        if mounts:
            mounts.stop()
        for where, root in roots.items():
            if where != "sshfs":
                shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(args.strace_dir, ignore_errors=True)
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    summarise(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
