"""Private and group stores (stores/folder/sharing.py) and who may have written what is unpickled
(stores/folder/trust.py), with real users: tfalice and tfbob share group tfshare, tfeve is outside
it (tests/unix_users.py)."""
from __future__ import annotations

import os
import pathlib
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli, write_taskfile
from taskflow import encoding
from taskflow.errors import CorruptResultError, UntrustedResultError
from taskflow.stores.folder import FolderStore
from unix_users import GROUP, users  # noqa: F401

TASKFILE = """
from taskflow import TaskGenerator

@TaskGenerator
def leaf(i):
    return i * i

@TaskGenerator
def total(xs):
    return sum(xs)

leaves = [leaf(i) for i in range(6)]
result = total(leaves)
"""

LOAD = ("import sys, taskflow\n"
        "ns = taskflow.init('taskfile.py', trust=sys.argv[1] == 'trust')\n"
        "try:\n"
        "    print(taskflow.value(ns.result), taskflow.value(ns.leaves))\n"
        "except taskflow.UntrustedResultError as e:\n"
        "    print('refused:', e)\n"
        "    sys.exit(4)\n")


class Evil:
    """A value whose unpickling makes a file: what anyone who can write a result could put there."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def _entries(root: Path):
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            yield path, path.lstat()


def _project(users, owner: str) -> Path:
    """A folder of `owner`'s, readable by all, holding the taskfile."""
    folder = users.base / f"project-{owner}-{len(list(users.base.iterdir()))}"
    folder.mkdir()
    write_taskfile(folder, TASKFILE)
    os.chown(folder, users.uid(owner), -1)
    folder.chmod(0o755)
    return folder


def _store_of(project: Path) -> FolderStore:
    return FolderStore(str(project / "taskfile.taskflow"))


def _one_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_a_private_store_is_writable_by_its_owner_alone_even_with_umask_0(tmp_path):
    write_taskfile(tmp_path, TASKFILE)
    env = dict(os.environ, TASKFLOW_PACK="1")
    env.pop("TASKFLOW_STORE", None)
    proc = subprocess.run([sys.executable, "-m", "taskflow", "execute", "taskfile.py", "-q"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, preexec_fn=lambda: os.umask(0))
    assert proc.returncode == 0, proc.stderr
    entries = list(_entries(tmp_path / "taskfile.taskflow"))
    assert len(entries) > 10
    writable = [str(p) for p, st in entries if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)]
    assert writable == []
    assert {stat.S_IMODE(st.st_mode) for p, st in entries if stat.S_ISDIR(st.st_mode)} == {0o755}


def test_a_group_store_keeps_its_modes_whatever_the_umask(users, tmp_path):
    project = _project(users, "tfalice")
    proc = users.run("tfalice", "execute", "taskfile.py", "-q", "--group", GROUP, cwd=project, umask=0o077)
    assert proc.returncode == 0, proc.stderr
    store = project / "taskfile.taskflow"
    entries = [(store, store.stat()), *_entries(store)]
    assert len(entries) > 10
    assert {st.st_gid for _, st in entries} == {users.gid()}
    assert {stat.S_IMODE(st.st_mode) for _, st in entries if stat.S_ISDIR(st.st_mode)} == {0o2770}
    assert {stat.S_IMODE(st.st_mode) for _, st in entries if stat.S_ISREG(st.st_mode)} == {0o640}


def test_two_members_share_a_group_store_and_others_get_one_line(users):
    project = _project(users, "tfalice")
    first = users.run("tfalice", "execute", "taskfile.py", "-q", "--group", GROUP, "--max-tasks", "2", cwd=project)
    assert first.returncode == 3, first.stderr
    second = users.run("tfbob", "execute", "taskfile.py", "-q", cwd=project, umask=0o077)
    assert second.returncode == 0, second.stderr
    results = [st for p, st in _entries(project / "taskfile.taskflow" / "results") if stat.S_ISREG(st.st_mode)]
    assert sorted(st.st_uid for st in results).count(users.uid("tfbob")) == 5  # bob's 4 leaves and the total
    loaded = users.run("tfalice", "-c", LOAD, "check", cwd=project, taskflow=False)
    assert loaded.returncode == 0 and loaded.stdout.split(None, 1) == ["55", "[0, 1, 4, 9, 16, 25]\n"], loaded.stderr

    store = project / "taskfile.taskflow"
    outside = users.run("tfeve", "execute", "taskfile.py", "-q", cwd=project)
    line = _one_line(outside)
    assert outside.returncode == 4
    assert line == (f"taskflow: error: no access to {store}: Permission denied for tfeve (owner tfalice, "
                    f"group {GROUP}, mode 2770); writing in a store takes write access to its folders: its owner "
                    "can share it with a group of yours (`taskflow store share --group GROUP`)")


def test_a_private_store_refuses_another_users_worker_and_store_share_lets_the_group_in(users):
    project = _project(users, "tfalice")
    assert users.run("tfalice", "execute", "taskfile.py", "-q", "--max-tasks", "3", cwd=project).returncode == 3
    store = project / "taskfile.taskflow"
    refused = users.run("tfbob", "execute", "taskfile.py", "-q", cwd=project)
    assert refused.returncode == 4
    assert _one_line(refused).startswith(f"taskflow: error: no access to {store}: Permission denied for tfbob "
                                         "(owner tfalice, group tfalice, mode 0755)")
    # Bob could not even read her pickles without trusting her: a private store is hers alone.
    assert users.run("tfbob", "-c", LOAD, "check", cwd=project, taskflow=False).returncode != 0

    shared = users.run("tfalice", "store", "share", "taskfile.py", "--group", GROUP, cwd=project)
    assert shared.returncode == 0, shared.stderr
    assert shared.stdout.startswith(f"{store}: shared with group {GROUP}: ")
    assert {(st.st_gid, stat.S_IMODE(st.st_mode)) for p, st in _entries(store) if stat.S_ISDIR(st.st_mode)} \
        == {(users.gid(), 0o2770)}
    done = users.run("tfbob", "execute", "taskfile.py", "-q", cwd=project)
    assert done.returncode == 0, done.stderr
    loaded = users.run("tfalice", "-c", LOAD, "check", cwd=project, taskflow=False)
    assert loaded.returncode == 0 and loaded.stdout.startswith("55 "), loaded.stderr


def _finished_group_store(users) -> tuple[Path, FolderStore, str]:
    project = _project(users, "tfalice")
    assert users.run("tfalice", "execute", "taskfile.py", "-q", "--group", GROUP, cwd=project).returncode == 0
    store = _store_of(project)
    hashes = sorted(store.finished_hashes())
    meta = {h: store.result_meta(h) for h in hashes}
    leaf = next(h for h in hashes if meta[h].get("name", "").endswith("leaf"))
    return project, store, leaf


def test_a_result_or_folder_others_can_write_is_refused_unless_trusted(users):
    project, store, leaf = _finished_group_store(users)
    path = Path(store.result_path(leaf))
    path.chmod(0o646)
    refused = users.run("tfalice", "-c", LOAD, "check", cwd=project, taskflow=False)
    assert refused.returncode == 4
    assert refused.stdout.strip() == (f"refused: {path}: writable by every user; refusing to unpickle what others "
                                      "could have written (--trust-store or TASKFLOW_TRUST=1 loads it anyway)")
    for how in (("trust",), ("check",)):
        env = {"TASKFLOW_TRUST": "1"} if how == ("check",) else {}
        loaded = users.run("tfalice", "-c", LOAD, *how, cwd=project, taskflow=False, env=env)
        assert loaded.returncode == 0 and loaded.stdout.startswith("55 "), (how, loaded.stderr)
    path.chmod(0o640)

    shard = path.parent
    os.chown(shard, users.uid("tfeve"), -1)  # a folder a third user can write: she could replace the file
    refused = users.run("tfalice", "-c", LOAD, "check", cwd=project, taskflow=False)
    assert refused.returncode == 4
    assert refused.stdout.strip().startswith(f"refused: {shard}: owned by tfeve, whom this store does not trust "
                                             f"(the store's group is {GROUP})")
    # A worker loading the result as an input refuses it too, in one line, and runs it trusted.
    assert users.run("tfalice", "invalidate", "taskfile.py", "--target", "total", cwd=project).returncode == 0
    ran = users.run("tfalice", "execute", "taskfile.py", "-q", cwd=project)
    assert ran.returncode == 4 and _one_line(ran).startswith(f"taskflow: error: {shard}: owned by tfeve")
    ran = users.run("tfalice", "execute", "taskfile.py", "-q", "--trust-store", cwd=project)
    assert ran.returncode == 0, ran.stderr
    assert users.run("tfalice", "-c", LOAD, "trust", cwd=project, taskflow=False).stdout.startswith("55 ")


def test_a_pickle_that_would_run_code_runs_nothing_unless_trusted(users):
    project, store, leaf = _finished_group_store(users)
    path = Path(store.result_path(leaf))
    marker = users.home("tfalice") / f"ran-{leaf[:8]}"
    payload = encoding.Payload(Evil(marker), store.result_meta(leaf))
    os.unlink(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        payload.write(fd)
    finally:
        os.close(fd)
    os.chown(path, users.uid("tfeve"), users.gid())
    env = {"PYTHONPATH": os.pathsep.join(p for p in (users.pythonpath, os.path.dirname(__file__)) if p)}
    refused = users.run("tfalice", "-c", LOAD, "check", cwd=project, taskflow=False, env=env)
    assert refused.returncode == 4 and "owned by tfeve" in refused.stdout, refused.stderr
    assert not marker.exists()
    ran = users.run("tfalice", "-c", LOAD, "trust", cwd=project, taskflow=False, env=env)
    assert marker.exists(), ran.stderr  # the same file, trusted, runs what it holds: the check is what stopped it


FORGE = ("import os, pathlib, sys\n"
         "from taskflow import encoding\n"
         "class Evil:\n"
         "    def __reduce__(self):\n"
         "        return pathlib.Path.touch, (pathlib.Path(sys.argv[2]),)\n"
         "tmp = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(sys.argv[1]))), 'tmp', 'forged')\n"
         "fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)\n"
         "encoding.Payload(Evil(), {'name': 'taskfile.leaf'}).write(fd)\n"
         "os.close(fd)\n"
         "os.replace(tmp, sys.argv[1])\n")

LOAD_SIGNED = ("import taskflow\n"
               "ns = taskflow.init('taskfile.py')\n"
               "try:\n"
               "    print(taskflow.value(ns.leaves))\n"
               "except taskflow.CorruptResultError as e:\n"
               "    print('refused:', e)\n")


def test_with_a_key_a_result_a_member_without_it_replaced_is_refused_and_computed_again(users):
    project = _project(users, "tfalice")
    key = users.home("tfalice") / "project.key"
    made = users.run("tfalice", "store", "new-key", str(key), cwd=project)
    assert made.returncode == 0 and key.stat().st_uid == users.uid("tfalice"), made.stderr
    signed = {"TASKFLOW_KEY_FILE": str(key)}
    done = users.run("tfalice", "execute", "taskfile.py", "-q", "--group", GROUP, cwd=project, env=signed)
    assert done.returncode == 0, done.stderr
    store = _store_of(project)
    hashes = sorted(store.finished_hashes())
    leaf = next(h for h in hashes if store.result_meta(h)["name"].endswith("leaf"))
    path = store.result_path(leaf)
    marker = users.home("tfbob") / "ran"
    # Bob is in the group, so he may replace files in the store, but he does not hold the key.
    forged = users.run("tfbob", "-c", FORGE, path, str(marker), cwd=project, taskflow=False)
    assert forged.returncode == 0 and os.stat(path).st_uid == users.uid("tfbob"), forged.stderr

    refused = users.run("tfalice", "-c", LOAD_SIGNED, cwd=project, taskflow=False, env=signed)
    assert refused.stdout.strip().startswith(f"refused: unsigned result {path}: not signed, and this store's results "
                                             "must be signed with key "), (refused.stdout, refused.stderr)
    assert not marker.exists(), "refused before unpickling"
    again = users.run("tfalice", "execute", "taskfile.py", cwd=project, env=signed)
    assert again.returncode == 0 and "computing taskfile.leaf again" in again.stderr, again.stderr
    assert os.stat(path).st_uid == users.uid("tfalice")
    loaded = users.run("tfalice", "-c", LOAD_SIGNED, cwd=project, taskflow=False, env=signed)
    assert loaded.stdout.strip() == "[0, 1, 4, 9, 16, 25]", loaded.stderr
    assert not marker.exists()


def test_arrays_load_without_the_check_and_never_as_objects(tmp_path):
    import numpy as np

    store = FolderStore(str(tmp_path / "s"))
    store.ensure()
    store.save_payload("a" * 64, encoding.Payload(np.arange(10), {"name": "arr"}))
    path = Path(store.result_path("a" * 64))
    path.chmod(0o666)
    assert list(store.load_value("a" * 64)) == list(range(10))  # an array's load runs no code
    store.save_payload("b" * 64, encoding.Payload([1, 2], {"name": "obj"}))
    Path(store.result_path("b" * 64)).chmod(0o666)
    with pytest.raises(UntrustedResultError):
        store.load_value("b" * 64)
    # An "npy" result whose header says objects: refused as damage, never unpickled.
    fake = encoding.Payload(np.arange(3), {"name": "arr"})
    header = fake.segments[0].replace(b"'<i8'", b"'|O' ").replace(b"'<i4'", b"'|O' ")
    fake.segments[0] = header
    fake._digest = None
    store.save_payload("c" * 64, fake)
    with pytest.raises(CorruptResultError, match="objects"):
        store.load_value("c" * 64)


def test_a_store_folder_under_a_sticky_world_writable_folder_is_trusted(tmp_path):
    """/tmp is world-writable but sticky: others can neither rename nor remove what is not theirs."""
    store = FolderStore(str(tmp_path / "s"))
    store.ensure()
    store.save_payload("d" * 64, encoding.Payload({"x": 1}, {"name": "d"}))
    tmp_path.chmod(0o1777)
    assert store.load_value("d" * 64) == {"x": 1}
    tmp_path.chmod(0o777)
    fresh = FolderStore(str(tmp_path / "s"))
    with pytest.raises(UntrustedResultError, match="writable by every user"):
        fresh.load_value("d" * 64)
    fresh.trusted = True
    assert fresh.load_value("d" * 64) == {"x": 1}
    tmp_path.chmod(0o755)


def test_group_settings_are_checked(tmp_path):
    write_taskfile(tmp_path, TASKFILE)
    proc = run_cli("execute", "taskfile.py", "--group", "no-such-group-here", cwd=tmp_path)
    assert proc.returncode == 2 and _one_line(proc) == \
        "taskflow: error: --group no-such-group-here: no such group on this host"
    (tmp_path / "pyproject.toml").write_text('[tool.taskflow.store]\ngroup = 5\n')
    proc = run_cli("execute", "taskfile.py", cwd=tmp_path)
    assert proc.returncode == 2 and "takes url" in _one_line(proc) and "(not group)" in proc.stderr
