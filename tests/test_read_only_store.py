"""A store this process cannot write: commands that only read work, a worker exits 4.

The main test looks at the store through a read-only bind mount (root only); the
second uses a store whose files and folders are not writable, read by an
unprivileged user (root ignores permission bits).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import run_cli, write_taskfile
from taskflow.stores.folder.claims import FolderClaims as Leases
from taskflow.stores.identity import BOOT_ID
from taskflow.stores.folder import FolderStore as Store
from taskflow.stores.identity import HOST

TASKFILE = """
from taskflow import TaskGenerator

@TaskGenerator
def leaf(i):
    if i == 7:
        raise ValueError("seven")
    return i * i

@TaskGenerator
def total(xs):
    return sum(xs)

leaves = [leaf(i) for i in range(8)]
result = total(leaves[:4])
"""

READ_ONLY_COMMANDS = [
    ("status",), ("status", "--running"), ("status", "--json"), ("status", "--failed"),
    ("show", "leaf[0]"), ("show", "leaf[1]"), ("report",), ("report", "--json"),
    ("wait", "--timeout", "0"), ("invalidate", "--target", "leaf", "--dry-run"),
]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _owner(task_hash: str, **fields) -> bytes:
    owner = {"host": "far-away-node", "boot": "another-boot", "pid": 4242, "worker": "far:4242",
             "lease": 60.0, "started": time.time(), "fs_started": time.time(), "task": task_hash, "token": "0" * 8}
    owner.update(fields)
    return json.dumps(owner).encode()


def _lock(store: Store, name: str, content: bytes, age: float = 0.0) -> str:
    path = os.path.join(store.locks_dir, name)
    with open(path, "wb") as f:
        f.write(content)
    if age:
        os.utime(path, (time.time() - age,) * 2)
    return path


def prepare(folder: Path) -> tuple[Path, Store, list]:
    """A half-run store holding live claims, stale claims and leftovers of dead workers."""
    tf = write_taskfile(folder, TASKFILE)
    run_cli("execute", tf, "--keep-going", "-q", check=1)  # leaf 7 fails
    import taskflow

    ns = taskflow.init(str(tf))
    store = Store(str(folder / "taskfile.taskflow"))
    h = [t.hash for t in ns.leaves]
    for i in range(4):
        store.remove_result(h[i])
    store.remove_result(ns.result.hash)
    ours = Leases(store, lease=60).claim(h[0])  # live: this very process
    _lock(store, h[1], _owner(h[1]))  # live: another host, renewed just now
    _lock(store, h[2], _owner(h[2], lease=2.0), age=120)  # stale: not renewed for a minute
    dead = _owner(h[3], host=HOST, boot=BOOT_ID, pid=_dead_pid())
    _lock(store, h[3], dead)  # stale at once: its process on this host is gone
    _lock(store, f"{h[3]}.released.0abc", dead)  # a worker killed while releasing
    _lock(store, f"{h[2]}.stale.0def", _owner(h[2]))  # a taker killed while taking over
    return tf, store, [ours, h]


def snapshot(root: Path) -> dict:
    """Every name below `root` with its size and mtime: what a write would change."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            out[os.path.relpath(os.path.join(dirpath, name), root)] = (st.st_size, st.st_mtime_ns)
    return out


def _claims_seen(text: str) -> set[tuple[str, str]]:
    """(running or stale, hash prefix) of each line of `status --running`."""
    found = set()
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] in ("running", "stale") and len(parts) > 2:
            found.add((parts[0], parts[2]))
    return found


@pytest.fixture
def read_only_view(tmp_path):
    """(writable folder, the same folder mounted read-only)."""
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    if not shutil.which("mount") or not shutil.which("umount"):
        pytest.skip("mount/umount not installed")
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    made = subprocess.run(["mount", "--bind", str(rw), str(ro)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {made.stderr.strip()}")
    try:
        remount = subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], capture_output=True, text=True)
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {remount.stderr.strip()}")
        yield rw, ro
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)
        if os.path.ismount(ro):
            subprocess.run(["umount", "-l", str(ro)], capture_output=True)


def test_reading_commands_work_on_a_read_only_mount_and_a_worker_exits_4(read_only_view):
    rw, ro = read_only_view
    tf_rw, store, (ours, h) = prepare(rw)
    tf = ro / "taskfile.py"
    ro_store = ro / "taskfile.taskflow"
    with pytest.raises(OSError):
        (ro_store / "probe").write_text("x")  # the view really is read-only
    judged_rw = _claims_seen(run_cli("status", tf_rw, "--running", check=0).stdout)
    before = snapshot(rw)

    for command in READ_ONLY_COMMANDS:
        proc = run_cli(command[0], tf, *command[1:], cwd=ro)
        assert proc.returncode in (0, 3), f"{command}: exit {proc.returncode}\n{proc.stderr}"
        assert "Traceback" not in proc.stderr and "error" not in proc.stderr, (command, proc.stderr)
    for command in (("check",), ("check", "--verify")):
        proc = run_cli(*command[:1], tf, *command[1:], cwd=ro, check=1)  # not every task is finished
        assert "Traceback" not in proc.stderr and "error" not in proc.stderr, (command, proc.stderr)
    graph = run_cli("graph", tf, "-o", rw.parent / "graph.dot", cwd=ro, check=0)
    assert "Traceback" not in graph.stderr

    # Claims are judged as on the writable store: live ones live, stale ones stale.
    seen = _claims_seen(run_cli("status", tf, "--running", cwd=ro, check=0).stdout)
    assert seen == {("running", h[0][:12]), ("running", h[1][:12]), ("stale", h[2][:12]), ("stale", h[3][:12])}
    assert seen == judged_rw
    data = json.loads(run_cli("status", tf, "--json", cwd=ro, check=0).stdout)
    assert data["tasks"]["taskfile.leaf"] == {"waiting": 0, "ready": 2, "running": 2, "finished": 3, "failed": 1}
    assert "state      running by" in run_cli("show", tf, "leaf[1]", cwd=ro, check=0).stdout
    assert "state      stale claim" in run_cli("show", tf, "leaf[3]", cwd=ro, check=0).stdout

    # The Python API: init() and value().
    script = ("import taskflow; ns = taskflow.init('taskfile.py'); print(taskflow.value(ns.leaves[4:7]));"
              "print(taskflow.status('taskfile.py').total['running'])")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ro, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.split("\n")[:2] == ["[16, 25, 36]", "2"], proc.stderr

    assert snapshot(rw) == before, "a reading command wrote into the store"

    # A worker cannot work here: one line naming the folder, exit 4, nothing run.
    for args in (("-q",), ("-q", "--jobs", "2")):
        proc = run_cli("execute", tf, *args, cwd=ro, check=4)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith(f"taskflow: error: cannot write in {ro_store}") \
            and "Read-only file system" in lines[0], lines[0]
    # Commands that write say so in one line.
    for command in (("cleanup", "--locks"), ("cleanup",), ("invalidate", "--target", "leaf")):
        proc = run_cli(command[0], tf, *command[1:], cwd=ro, check=4)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"taskflow: error: cannot write {ro_store}"), proc.stderr
    assert snapshot(rw) == before
    assert Leases(store, lease=60).release(ours)


def test_reading_commands_work_for_a_user_without_write_access(tmp_path):
    """The store's files and folders are not writable by the user reading them."""
    if os.geteuid() != 0:
        pytest.skip("needs root to read the store as another, unprivileged user")
    try:
        import pwd
        nobody = pwd.getpwnam("nobody")
    except (ImportError, KeyError):
        pytest.skip("no user 'nobody' to read the store as")
    # pytest's temp folders are private to their owner: this one the other user can enter.
    base = Path(tempfile.mkdtemp(prefix="taskflow-ro-"))
    try:
        base.chmod(0o755)
        tf, store, (ours, h) = prepare(base)
        for dirpath, dirnames, filenames in os.walk(base):
            for name in filenames:
                os.chmod(os.path.join(dirpath, name), 0o444)
            for name in dirnames:
                os.chmod(os.path.join(dirpath, name), 0o555)
        before = snapshot(base)

        # This interpreter and its packages may live in a folder only root can enter: then
        # another Python of the same version runs taskflow with a copy of its dependencies.
        import click
        import cloudpickle
        import taskflow
        try:
            import xxhash
        except ImportError:  # results are then checked with CRC-32, which needs no package
            xxhash = None
        deps = base.parent / (base.name + "-deps")
        for module in (click, cloudpickle, xxhash):
            if module is None:
                continue
            package = os.path.dirname(module.__file__)
            shutil.copytree(package, deps / os.path.basename(package))
        for dirpath, dirnames, filenames in os.walk(deps):
            os.chmod(dirpath, 0o755)
        paths = os.pathsep.join([os.path.dirname(os.path.dirname(taskflow.__file__)), str(deps)])
        version = f"python{sys.version_info[0]}.{sys.version_info[1]}"

        def as_nobody(*args: str) -> subprocess.CompletedProcess:
            env = {k: v for k, v in os.environ.items() if k != "TASKFLOW_STORE"}
            env.update(HOME=str(base), PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=paths)

            def drop() -> None:
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
            return subprocess.run(list(args), cwd=base, env=env, capture_output=True, text=True,
                                  preexec_fn=drop, timeout=120)

        python = None
        for candidate in (sys.executable, shutil.which(version, path="/usr/local/bin:/usr/bin:/bin")):
            try:
                if candidate and as_nobody(candidate, "-c", "import taskflow, click").returncode == 0:
                    python = candidate
                    break
            except PermissionError:
                continue
        if python is None:
            pytest.skip(f"user nobody can run no {version} that imports taskflow here")
        for command in READ_ONLY_COMMANDS + [("check",), ("check", "--verify")]:
            proc = as_nobody(python, "-m", "taskflow", command[0], "taskfile.py", *command[1:])
            assert proc.returncode in (0, 1, 3), f"{command}: exit {proc.returncode}\n{proc.stderr}"
            assert "Traceback" not in proc.stderr and "error" not in proc.stderr, (command, proc.stderr)
        seen = _claims_seen(as_nobody(python, "-m", "taskflow", "status", "taskfile.py", "--running").stdout)
        assert seen == {("running", h[0][:12]), ("running", h[1][:12]), ("stale", h[2][:12]),
                        ("stale", h[3][:12])}
        proc = as_nobody(python, "-c", "import taskflow; print(taskflow.value("
                         "taskflow.init('taskfile.py').leaves[4:7]))")
        assert proc.returncode == 0 and proc.stdout.strip() == "[16, 25, 36]", proc.stderr
        proc = as_nobody(python, "-m", "taskflow", "execute", "taskfile.py", "-q")
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 4 and len(lines) == 1, proc.stderr
        assert lines[0].startswith(f"taskflow: error: no access to {store.path}") \
            and "Permission denied" in lines[0], lines[0]
        assert snapshot(base) == before, "a command wrote into the store"
    finally:
        for dirpath, dirnames, filenames in os.walk(base):
            os.chmod(dirpath, 0o755)
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(base.parent / (base.name + "-deps"), ignore_errors=True)


def test_the_clock_of_a_reader_that_cannot_write(read_only_view):
    """This host's clock, never behind a time stamp just read; a worker's leases fail instead."""
    import errno

    rw, ro = read_only_view
    store = Store(str(rw / "store"))
    store.ensure()
    ahead, behind = "a1" * 16, "b2" * 16
    _lock(store, ahead, _owner(ahead, lease=60.0), age=-3600)  # renewed "an hour from now"
    _lock(store, behind, _owner(behind, lease=60.0), age=3600)
    view = Store(str(ro / "store"))

    reader = Leases(view, reader=True)
    old = reader.inspect(behind)
    assert reader.read_only and old.stale and 3590 < old.age < 3700
    new = reader.inspect(ahead)
    assert not new.stale and new.age == 0.0, "a claim is never younger than its own time stamp"
    assert reader.fs_now() >= os.stat(store.lock_path(ahead)).st_mtime
    assert 7190 < reader.inspect(behind).age < 7300, "the clock moved to the newest time stamp seen"
    assert os.listdir(store.clock_dir) == []

    with pytest.raises(OSError) as e:
        Leases(view).inspect(behind)  # a worker must not judge by a clock it cannot check
    assert e.value.errno == errno.EROFS


def test_status_watch_on_a_read_only_mount(read_only_view):
    rw, ro = read_only_view
    tf = write_taskfile(rw, TASKFILE.replace("i == 7", "i == 70"))
    run_cli("execute", tf, "-q", check=0)
    import taskflow

    ns = taskflow.init(str(tf))
    store = Store(str(rw / "taskfile.taskflow"))
    h = ns.leaves[0].hash
    _lock(store, h, _owner(h, host=HOST, boot=BOOT_ID, pid=_dead_pid()))  # left by a worker killed at the end
    proc = run_cli("status", ro / "taskfile.py", "--watch", "0.2", cwd=ro, check=0, timeout=60)
    assert "Traceback" not in proc.stderr and "9/9" in proc.stdout
