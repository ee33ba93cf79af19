"""One folder seen by two clients of a network filesystem, for tests on this one machine.

A private sshd on 127.0.0.1 serves a temporary folder over SFTP; two sshfs mounts of that
folder, each with its own attribute, name and page caches, behave like two nodes of a cluster
sharing one filesystem: the same file has another st_dev and st_ino in each, time stamps have
whole seconds, and a change made through one is seen through the other only once its caches
expire. The folder itself is the third view, as a local disk sees it.

`two_clients` gives each test a fresh empty subfolder in all three views, and starts processes
under `unshare --uts` with their own hostname, so that workers on different views also believe
they run on different hosts.

Tests using it skip, saying why, without sshfs, sshd, fusermount, /dev/fuse or unshare, or when
not run as root; with TASKFLOW_REQUIRE_SHAREDFS=1 (as in CI) they fail instead.
The daemon and the mounts are stopped at the end of the session, also when a test fails or
the run is interrupted (a finalizer and atexit); every process a test spawned is killed first.
"""
from __future__ import annotations

import atexit
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pytest

REQUIRE = os.environ.get("TASKFLOW_REQUIRE_SHAREDFS") == "1"

# Caching on, as on a cluster's NFS client: attributes and names are trusted for 1 s.
CACHE_OPTIONS = "cache=yes,kernel_cache,attr_timeout=1,entry_timeout=1"
# sshfs answers a look up of a missing name from the server each time; NFS (lookupcache=all,
# its default) trusts a "not found" until the folder's attributes expire. This asks the
# kernel to trust one for 1 s too, for `two_forgetful_clients`.
NEGATIVE_OPTIONS = CACHE_OPTIONS + ",negative_timeout=1"
# Long enough for every cache of a mount to have expired once (attr and entry timeouts of
# 1 s, plus the whole-second mtimes the SFTP server hands out).
SETTLE_SECONDS = 2.5


def unavailable(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"{reason}; TASKFLOW_REQUIRE_SHAREDFS=1 says this test must run, not skip")
    pytest.skip(reason)


def missing_requirement() -> str | None:
    """Why the fixture cannot run here, or None."""
    for tool in ("sshfs", "ssh-keygen", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} not found on PATH"
    if sshd_path() is None:
        return "sshd (openssh-server) not found"
    if fusermount_path() is None:
        return "fusermount not found (fuse3)"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist"
    if os.geteuid() != 0:
        return "needs root (unshare --uts to set a hostname, sshd as a private daemon)"
    return None


def sshd_path() -> str | None:
    return shutil.which("sshd") or next(
        (p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if os.access(p, os.X_OK)), None)


def fusermount_path() -> str | None:
    return shutil.which("fusermount") or shutil.which("fusermount3")


def spare_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class SharedFS:
    """One sshd and two sshfs mounts of its `export` folder; `stop()` may be called any number
    of times."""

    def __init__(self, options: str = CACHE_OPTIONS) -> None:
        self.options = options
        self.root = Path(tempfile.mkdtemp(prefix="taskflow-sharedfs-"))
        self.export = self.root / "export"
        self.mounts = [self.root / "mount_a", self.root / "mount_b"]
        self.conf = self.root / "sshd"
        self.pidfile = self.conf / "sshd.pid"
        self.port = 0
        self.sshfs: list[subprocess.Popen] = []
        self.clients: list[TwoClients] = []   # whose processes to kill before unmounting
        self.stopped = False

    # -- start ------------------------------------------------------------------------------
    def start(self) -> None:
        self.export.mkdir()
        self.conf.mkdir(mode=0o700)
        for m in self.mounts:
            m.mkdir()
        keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", ""]
        subprocess.run([*keygen, "-f", str(self.conf / "host_ed25519")], check=True,
                       capture_output=True)
        subprocess.run([*keygen, "-f", str(self.conf / "client_ed25519")], check=True,
                       capture_output=True)
        shutil.copy(self.conf / "client_ed25519.pub", self.conf / "authorized_keys")
        # sshd refuses to start without its privilege-separation folder.
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
        for attempt in range(5):
            self.port = spare_port()
            self._write_config()
            subprocess.run([sshd_path(), "-f", str(self.conf / "sshd_config"),
                            "-E", str(self.conf / "sshd.log")], check=True, capture_output=True)
            if self._wait_listening():
                break
            self._stop_sshd()   # lost the port to someone else: try another
        else:
            raise RuntimeError("sshd did not start listening:\n" + tail(self.conf / "sshd.log"))
        for mount in self.mounts:
            self._mount(mount)

    def _write_config(self) -> None:
        c = self.conf
        (c / "sshd_config").write_text(
            f"Port {self.port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {c / 'host_ed25519'}\n"
            f"AuthorizedKeysFile {c / 'authorized_keys'}\n"
            f"PidFile {self.pidfile}\n"
            "PermitRootLogin yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "UseDNS no\n"
            "MaxStartups 100\n"
            "MaxSessions 100\n"
            "LogLevel ERROR\n"
            "Subsystem sftp internal-sftp\n")

    def _wait_listening(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pidfile.exists():
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        return True
                except OSError:
                    pass
            time.sleep(0.05)
        return False

    def _mount(self, mount: Path) -> None:
        log = open(self.root / f"{mount.name}.log", "wb")
        options = ",".join([
            f"IdentityFile={self.conf / 'client_ed25519'}", "StrictHostKeyChecking=no",
            "UserKnownHostsFile=/dev/null", "BatchMode=yes", "LogLevel=ERROR",
            f"port={self.port}", self.options])
        # -f keeps sshfs in the foreground: it is our child, so we know its pid to stop it.
        proc = subprocess.Popen(["sshfs", "-f", "-o", options, f"root@127.0.0.1:{self.export}",
                                 str(mount)], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        self.sshfs.append(proc)
        deadline = time.monotonic() + 15
        while not os.path.ismount(mount):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshfs did not mount {mount}:\n"
                                   + tail(self.root / f"{mount.name}.log"))
            time.sleep(0.05)

    # -- stop -------------------------------------------------------------------------------
    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        for clients in self.clients:
            clients.kill_all()
        for mount in self.mounts:
            if os.path.ismount(mount):
                done = subprocess.run([fusermount_path() or "fusermount", "-u", str(mount)],
                                      capture_output=True)
                if done.returncode != 0:
                    subprocess.run(["umount", "-l", str(mount)], capture_output=True)
        for proc in self.sshfs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._stop_sshd()
        if not any(os.path.ismount(m) for m in self.mounts):
            shutil.rmtree(self.root, ignore_errors=True)

    def _stop_sshd(self) -> None:
        try:
            pid = int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        else:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
        self.pidfile.unlink(missing_ok=True)


@dataclass
class TwoClients:
    """One fresh folder in three views: the folder itself and each of the two mounts."""

    origin: Path
    mount_a: Path
    mount_b: Path
    views: list[Path] = field(init=False)
    names: dict[Path, str] = field(init=False)
    processes: list[subprocess.Popen] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.views = [self.origin, self.mount_a, self.mount_b]
        self.names = {self.origin: "origin", self.mount_a: "client-a", self.mount_b: "client-b"}
        self._serial = itertools.count()

    def view_of(self, path: Path | str) -> Path | None:
        """The view a path lies in, or None."""
        path = Path(path)
        for view in self.views:
            if path == view or view in path.parents:
                return view
        return None

    def host_for(self, view: Path) -> str:
        """The hostname processes started for a view get by default."""
        return self.names[view]

    def spawn(self, argv: Sequence[str], *, host: str | None = None, view: Path | None = None,
              **popen_kwargs) -> subprocess.Popen:
        """Start `argv` under `unshare --uts` with hostname `host`; by default the name of
        `view`, or of the view `cwd` lies in, or a fresh `node-N`. Popen keywords pass through.
        The process is killed at the end of the test if still running."""
        if host is None:
            view = view or (self.view_of(popen_kwargs["cwd"]) if "cwd" in popen_kwargs else None)
            host = self.names[view] if view is not None else f"node-{next(self._serial)}"
        wrapped = ["unshare", "--uts", "sh", "-c", 'hostname "$1" && shift && exec "$@"', "sh",
                   host, *map(str, argv)]
        proc = subprocess.Popen(wrapped, **popen_kwargs)
        self.processes.append(proc)
        return proc

    def settle(self, seconds: float = SETTLE_SECONDS) -> None:
        """Wait until every cache of both mounts has expired at least once."""
        time.sleep(seconds)

    def kill_all(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                try:
                    proc.kill()   # also ends a stopped process
                except ProcessLookupError:
                    pass
        for proc in self.processes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


@pytest.fixture(scope="session")
def sharedfs_server():
    """The session's sshd and two mounts, started on first use."""
    yield from _server(CACHE_OPTIONS)


@pytest.fixture(scope="session")
def forgetful_server():
    """Another sshd and two mounts that also cache "not found" for 1 s (NEGATIVE_OPTIONS)."""
    yield from _server(NEGATIVE_OPTIONS)


def _server(options: str):
    reason = missing_requirement()
    if reason:
        unavailable(reason)
    server = SharedFS(options)
    atexit.register(server.stop)
    # atexit does not run on SIGTERM (a CI timeout): stop first, then die of it as before.
    previous = signal.getsignal(signal.SIGTERM)
    if previous == signal.SIG_DFL:
        def stop_and_die(signum, frame):
            server.stop()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        signal.signal(signal.SIGTERM, stop_and_die)
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        server.stop()
        unavailable(f"could not start sshd + sshfs on 127.0.0.1: {exc}")
    try:
        yield server
    finally:
        server.stop()
        if previous == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, previous)


_folders = itertools.count()


@pytest.fixture
def two_clients(sharedfs_server: SharedFS, request):
    """A fresh empty folder seen directly (`origin`) and through each mount (`mount_a`,
    `mount_b`), with `spawn` to start processes there under their own hostnames."""
    yield from _clients(sharedfs_server, request)


@pytest.fixture
def two_forgetful_clients(forgetful_server: SharedFS, request):
    """As `two_clients`, on mounts that trust a "not found" for 1 s, as NFS does by default."""
    yield from _clients(forgetful_server, request)


def _clients(sharedfs_server: SharedFS, request):
    name = f"t{next(_folders)}-{request.node.name[:40]}".replace("/", "_").replace("[", "_") \
        .replace("]", "_")
    origin = sharedfs_server.export / name
    origin.mkdir()
    clients = TwoClients(origin, *(m / name for m in sharedfs_server.mounts))
    sharedfs_server.clients.append(clients)
    deadline = time.monotonic() + 10
    while not all(v.is_dir() for v in clients.views):
        if time.monotonic() > deadline:
            pytest.fail(f"{name} did not appear through both mounts")
        time.sleep(0.1)
    try:
        yield clients
    finally:
        clients.kill_all()
        sharedfs_server.clients.remove(clients)
        shutil.rmtree(origin, ignore_errors=True)
