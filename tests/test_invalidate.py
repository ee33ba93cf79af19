"""invalidate: exactly the downstream set goes, and the next execute recomputes exactly that."""
from __future__ import annotations

import os

from conftest import NOTE_PREAMBLE, run_cli, status_json, write_taskfile

import taskflow
from taskflow.invalidate import invalidate
from taskflow.stores.folder.claims import FolderClaims as Leases
from taskflow.stores.folder import FolderStore as Store
from taskflow.taskfile import load

DIAMOND_AND_CHAIN = NOTE_PREAMBLE + """

@TaskGenerator
def top():
    note("top")
    return 1

@TaskGenerator
def left(x):
    note("left")
    return x + 1

@TaskGenerator
def right(x):
    note("right")
    return x + 2

@TaskGenerator
def bottom(a, b):
    note("bottom")
    return a + b

@TaskGenerator
def link(x):
    note("link", x)
    return x + 1

@TaskGenerator
def unrelated():
    note("unrelated")
    return 0

t = top()
d = bottom(left(t), right(t))
chain = link(link(link(100)))
other = unrelated()
"""


def lines(tmp_path):
    return sorted((tmp_path / "log").read_text().splitlines())


def test_invalidate_diamond_and_chain(tmp_path):
    tf = write_taskfile(tmp_path, DIAMOND_AND_CHAIN)
    env = {"TF_TEST_LOG": str(tmp_path / "log")}
    run_cli("execute", tf, env=env, check=0)
    (tmp_path / "log").unlink()

    out = run_cli("invalidate", tf, "--target", "left", check=0).stdout
    assert "removed 1 taskfile.left result(s)" in out and "removed 1 taskfile.bottom result(s)" in out
    assert "top" not in out and "right" not in out
    counts = status_json(tf)["tasks"]
    assert counts["taskfile.left"]["ready"] == 1 and counts["taskfile.bottom"]["waiting"] == 1
    run_cli("execute", tf, env=env, check=0)
    assert lines(tmp_path) == ["bottom", "left"]

    (tmp_path / "log").unlink()
    out = run_cli("invalidate", tf, "--target", "/^taskfile\\.top$/", check=0).stdout
    assert "removed 1 taskfile.top" in out and "removed 1 taskfile.bottom" in out
    run_cli("execute", tf, env=env, check=0)
    assert lines(tmp_path) == ["bottom", "left", "right", "top"]

    # In a chain, invalidating the middle link removes it and the last one only.
    dry = run_cli("invalidate", tf, "--target", "link", "--dry-run", check=0).stdout
    assert "would remove 3 taskfile.link result(s)" in dry
    assert status_json(tf)["total"]["finished"] == 8
    store = Store(str(tmp_path / "taskfile.taskflow"))
    tasks = load(str(tf), store).tasks
    last = next(t for t in tasks if t.name == "taskfile.link" and not any(u for u in tasks if t in u.deps))
    middle = last.args[0]
    (tmp_path / "log").unlink()
    done = invalidate(store, tasks, [middle])
    assert done.results == {"taskfile.link": 2}
    run_cli("execute", tf, env=env, check=0)
    assert lines(tmp_path) == ["link 101", "link 102"]


def test_invalidate_skips_a_live_claim(tmp_path):
    tf = write_taskfile(tmp_path, DIAMOND_AND_CHAIN)
    run_cli("execute", tf, check=0)
    ns = taskflow.init(str(tf))
    store = Store(str(tmp_path / "taskfile.taskflow"))
    claim = Leases(store, lease=60).claim(ns.d.hash)
    out = run_cli("invalidate", tf, "--target", "top", check=0).stdout
    assert f"skipped taskfile.bottom {ns.d.hash[:12]}" in out
    assert store.has_result(ns.d.hash) and not store.has_result(ns.t.hash)
    assert os.path.exists(claim.path)


def test_invalidate_needs_a_target(tmp_path):
    tf = write_taskfile(tmp_path, DIAMOND_AND_CHAIN)
    assert "--target" in run_cli("invalidate", tf, check=2).stderr
    assert "matches no task" in run_cli("invalidate", tf, "--target", "nope", check=2).stderr


CODE_V1 = """
from taskflow import TaskGenerator

@TaskGenerator
def prepare(x):
    return x * 2

@TaskGenerator
def analyse(x):
    return x + 1

@TaskGenerator
def summary(xs):
    return sum(xs)

prepared = [prepare(i) for i in range(3)]
analysed = [analyse(p) for p in prepared]
total = summary(analysed)
"""


def test_code_changes_are_reported_and_invalidated(tmp_path):
    tf = write_taskfile(tmp_path, CODE_V1)
    run_cli("execute", tf, check=0)
    assert "code changed" not in run_cli("status", tf, check=0).stdout

    # A comment and whitespace are not a change.
    tf.write_text(CODE_V1.replace("    return x + 1", "    # add one\n\n    return x  +  1"))
    assert "code changed" not in run_cli("status", tf, check=0).stdout

    # A body change is, for exactly that function's results.
    tf.write_text(CODE_V1.replace("return x + 1", "return x + 10"))
    out = run_cli("status", tf, check=0).stdout
    assert "code changed: 3 finished taskfile.analyse result(s)" in out
    assert "taskfile.prepare result" not in out
    inv = run_cli("invalidate", tf, "--changed", check=0).stdout
    assert "removed 3 taskfile.analyse result(s)" in inv and "removed 1 taskfile.summary result(s)" in inv
    assert "prepare" not in inv
    run_cli("execute", tf, check=0)
    assert taskflow.value(taskflow.init(str(tf)).total) == sum(2 * i + 10 for i in range(3))
    assert "code changed" not in run_cli("status", tf, check=0).stdout


def test_version_bump_is_reported(tmp_path):
    tf = write_taskfile(tmp_path, CODE_V1)
    run_cli("execute", tf, check=0)
    tf.write_text(CODE_V1.replace("@TaskGenerator\ndef prepare", "@TaskGenerator(version=2)\ndef prepare"))
    out = run_cli("status", tf, check=0).stdout
    assert "code changed: 3 finished taskfile.prepare result(s)" in out
    assert "taskfile.analyse result" not in out
    inv = run_cli("invalidate", tf, "--changed", "--dry-run", check=0).stdout
    assert "would remove 3 taskfile.prepare" in inv and "would remove 3 taskfile.analyse" in inv
