"""Damaged results: marked suspect by whoever finds them, counted as missing, checked again and moved aside."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import NOTE_PREAMBLE, run_cli, status_json, write_taskfile

LEAVES = NOTE_PREAMBLE + """
@TaskGenerator
def leaf(i):
    note("leaf", i)
    return list(range(100 * i))

@TaskGenerator
def total(xs):
    note("total")
    return sum(map(len, xs))

leaves = [leaf(i) for i in range(1, 7)]
"""


def log_lines(tmp_path):
    path = tmp_path / "log"
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def finished_run(tmp_path):
    """A run of six leaves, all finished; (taskfile, env, namespace, store)."""
    import taskflow
    from taskflow.stores.folder import FolderStore as Store

    tf = write_taskfile(tmp_path, LEAVES)
    env = {"TF_TEST_LOG": str(tmp_path / "log")}
    run_cli("execute", tf, env=env, check=0)
    ns = taskflow.init(str(tf))
    return tf, env, ns, Store(str(tmp_path / "taskfile.taskflow"))


def flip_a_byte(path: str) -> None:
    data = bytearray(open(path, "rb").read())
    data[-3] ^= 0xFF
    with open(path, "wb") as f:
        f.write(data)


def test_a_result_value_finds_damaged_is_missing_for_status_check_and_wait_until_execute_repairs_it(
        finished_run, tmp_path):
    import taskflow

    tf, env, ns, store = finished_run
    task = ns.leaves[3]
    path = store.result_path(task.hash)
    flip_a_byte(path)
    with pytest.raises(taskflow.CorruptResultError) as caught:
        taskflow.value(task)
    message = str(caught.value)
    assert path in message and f"marked for recomputation: run `taskflow execute {tf}`" in message
    assert os.path.exists(os.path.join(store.suspect_dir, task.hash))

    data = status_json(tf)
    assert data["total"]["finished"] == 5 and data["total"]["ready"] == 1 and data["damaged"] == 1
    table = run_cli("status", tf, check=0).stdout
    assert f"1 result(s) found damaged count as not finished until computed again: run `taskflow execute {tf}`" \
        in table
    proc = run_cli("check", tf, check=1)
    assert f"run `taskflow execute {tf}` to compute them again" in proc.stderr
    run_cli("wait", tf, "--timeout", "0", check=3)

    proc = run_cli("execute", tf, env=env, check=0)
    assert f"corrupt result {path}" in proc.stderr and "moved to" in proc.stderr
    assert log_lines(tmp_path)[6:] == ["leaf 4"]
    assert not os.path.exists(os.path.join(store.suspect_dir, task.hash))
    (kept,) = os.listdir(store.damaged_dir)
    assert kept.startswith(task.hash + ".")
    assert taskflow.value(task) == list(range(400))
    assert status_json(tf)["total"]["finished"] == 6
    run_cli("check", tf, "--verify", check=0)
    run_cli("wait", tf, "--timeout", "0", check=0)


def test_a_suspect_result_that_reads_intact_is_kept_and_unmarked(finished_run, tmp_path):
    # What a reader behind a stale cache leaves: a mark on a result that is fine on disk.
    from taskflow import damage

    tf, env, ns, store = finished_run
    task = ns.leaves[1]
    assert damage.mark(store, task.hash, task.name, "checksum mismatch (seen through a stale cache)")
    assert status_json(tf)["total"]["finished"] == 5
    run_cli("check", tf, check=1)
    proc = run_cli("execute", tf, "-v", env=env, check=0)
    assert "reads intact from a fresh open; keeping it" in proc.stderr
    assert len(log_lines(tmp_path)) == 6  # nothing ran again
    assert os.listdir(store.suspect_dir) == []
    assert not os.path.exists(store.damaged_dir)
    run_cli("check", tf, check=0)


def test_a_reader_that_cannot_write_the_mark_says_so_and_goes_on(finished_run):
    import taskflow

    tf, env, ns, store = finished_run
    task = ns.leaves[0]
    flip_a_byte(store.result_path(task.hash))
    with open(store.suspect_dir, "w"):  # a file where the folder would go: no mark can be written
        pass
    with pytest.raises(taskflow.CorruptResultError) as caught:
        taskflow.value(task)
    assert f"not marked (the store cannot be written): run `taskflow execute {tf} --verify`" in str(caught.value)
    assert taskflow.value(ns.leaves[1]) == list(range(200))


def test_check_verify_moves_damaged_results_aside_and_says_what_comes_next(finished_run, tmp_path):
    tf, env, ns, store = finished_run
    path = store.result_path(ns.leaves[2].hash)
    flip_a_byte(path)
    proc = run_cli("check", tf, "--verify", check=1)
    assert f"damaged: corrupt result {path}: checksum mismatch" in proc.stderr
    assert f"run `taskflow execute {tf}` to compute taskfile.leaf again" in proc.stderr
    assert not os.path.exists(path) and len(os.listdir(store.damaged_dir)) == 1
    data = status_json(tf)
    assert data["total"]["finished"] == 5 and data["may_lag"] is False  # missing for a known reason
    run_cli("execute", tf, env=env, check=0)
    assert log_lines(tmp_path)[6:] == ["leaf 3"]
    run_cli("check", tf, "--verify", check=0)


def test_show_and_report_mark_a_result_whose_header_is_damaged(finished_run):
    tf, env, ns, store = finished_run
    task = ns.leaves[4]
    path = store.result_path(task.hash)
    with open(path, "r+b") as f:
        f.write(b"XXXX")  # the magic bytes
    proc = run_cli("show", tf, "leaf[4]", check=0)
    assert f"marked for recomputation: run `taskflow execute {tf}`" in proc.stdout
    proc = run_cli("show", tf, "leaf[4]", check=0)
    assert f"state      found damaged, to be computed again (run `taskflow execute {tf}`)" in proc.stdout
    os.unlink(os.path.join(store.suspect_dir, task.hash))
    proc = run_cli("report", tf, check=0)
    assert path in proc.stderr and "marked for recomputation" in proc.stderr
    assert os.path.exists(os.path.join(store.suspect_dir, task.hash))
    assert status_json(tf)["total"]["finished"] == 5


def test_the_suspect_record_says_what_was_wrong_and_who_found_it(finished_run):
    import taskflow

    tf, env, ns, store = finished_run
    task = ns.leaves[5]
    flip_a_byte(store.result_path(task.hash))
    with pytest.raises(taskflow.CorruptResultError):
        taskflow.value(task)
    with open(os.path.join(store.suspect_dir, task.hash)) as f:
        record = json.load(f)
    assert record["name"] == "taskfile.leaf" and record["hash"] == task.hash
    assert "checksum mismatch" in record["reason"] and record["pid"] == os.getpid()


# -- on two clients of one shared folder --------------------------------------------------------

BIG_LEAF = """
from taskflow import TaskGenerator

@TaskGenerator
def leaf(i):
    return bytes([i]) * 300_000

result = leaf(7)
"""


def test_a_reader_whose_cache_holds_pages_of_a_replaced_result_reads_it_again_fresh(two_clients):
    # Client B read a damaged result and keeps its pages; the result is then replaced by an intact
    # one of the same size (as when another node computed it again). B must not call it damaged.
    tf = write_taskfile(two_clients.origin, BIG_LEAF)
    run_cli("execute", tf, "-q", check=0)
    results = list((two_clients.origin / "taskfile.taskflow" / "results").glob("*/*"))
    assert len(results) == 1
    good = results[0].read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    results[0].write_bytes(bad)
    two_clients.settle()
    via_b = two_clients.mount_b / results[0].relative_to(two_clients.origin)
    assert via_b.read_bytes() == bad  # now in B's page cache
    replacement = two_clients.origin / "replacement"
    replacement.write_bytes(good)
    # Written within the same second, as whole-second time stamps make likely: B sees nothing change.
    damaged = os.stat(results[0])
    os.utime(replacement, ns=(damaged.st_atime_ns, damaged.st_mtime_ns))
    os.replace(replacement, results[0])
    code = ("import taskflow; ns = taskflow.init(%r); v = taskflow.value(ns.result); "
            "print(len(v), v[:1] == bytes([7]))" % str(two_clients.mount_b / tf.name))
    proc = two_clients.spawn([sys.executable, "-c", code], host="client-b", cwd=two_clients.mount_b,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.split() == ["300000", "True"]
    assert not (two_clients.origin / "taskfile.taskflow" / "suspect").exists()


def test_moving_aside_gives_back_a_result_computed_again_meanwhile(finished_run, monkeypatch):
    # A second worker that found the same damage moves what is at the path by then: an intact
    # result another worker computed again. It must put it back.
    from taskflow import damage
    from taskflow.stores.folder import damage as folder_damage

    tf, env, ns, store = finished_run
    task = ns.leaves[2]
    path = store.result_path(task.hash)
    good = open(path, "rb").read()
    flip_a_byte(path)
    checks = []
    real = folder_damage._intact

    def recheck(where, seal):
        checks.append(where)
        if len(checks) == 1:
            intact = real(where, seal)
            with open(path, "wb") as f:  # computed again between this check and the rename
                f.write(good)
            return intact
        return real(where, seal)
    monkeypatch.setattr(folder_damage, "_intact", recheck)
    assert damage.move_aside(store, task.hash) is None
    assert open(path, "rb").read() == good
    assert os.listdir(store.damaged_dir) == []


def test_the_first_mark_in_a_store_is_not_reported_as_a_vanished_folder(tmp_path, caplog):
    import logging
    import shutil

    from taskflow import damage
    from taskflow.stores.folder import FolderStore as Store

    store = Store(str(tmp_path / "store"))
    store.ensure()
    store.save_result("ab" * 16, 1, {"name": "t"})
    with caplog.at_level(logging.WARNING, logger="taskflow"):
        assert damage.mark(store, "ab" * 16, "t", "checksum mismatch")
    assert store.suspect_hashes() == {"ab" * 16}
    assert not [r for r in caplog.records if "vanished" in r.getMessage()], caplog.text
    shutil.rmtree(store.tmp_dir)
    assert damage.mark(store, "ab" * 16, "t", "checksum mismatch"), "tmp/ deleted meanwhile is made again"
