"""The store folder: atomic writes, listings, failure records, format marker."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from taskflow.errors import StoreError
from taskflow.stores.folder.store import MARKER, FolderStore as Store


def test_nothing_is_created_until_a_write(tmp_path):
    store = Store(str(tmp_path / "s"))
    assert store.finished_hashes() == set()
    assert store.failed_hashes() == set()
    assert not (tmp_path / "s").exists()


def test_save_and_list_results(tmp_path):
    store = Store(str(tmp_path / "s"))
    hashes = [f"{i:02x}" + "0" * 30 for i in range(40)]
    for h in hashes:
        store.save_result(h, {"h": h}, {"hash": h})
    assert store.finished_hashes() == set(hashes)
    assert store.load_value(hashes[3]) == {"h": hashes[3]}
    assert store.result_meta(hashes[3]) == {"hash": hashes[3]}
    # Results live in shard folders and nothing is left in tmp/.
    assert os.path.exists(os.path.join(store.results_dir, hashes[3][:2], hashes[3]))
    assert os.listdir(store.tmp_dir) == []
    assert store.remove_result(hashes[3]) and not store.remove_result(hashes[3])
    assert hashes[3] not in store.finished_hashes()


def test_failed_write_leaves_no_temp_file(tmp_path):
    store = Store(str(tmp_path / "s"))

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("no")

    store.ensure()
    with pytest.raises(RuntimeError):
        store.save_result("ab" * 16, Unpicklable(), {})
    assert os.listdir(store.tmp_dir) == []
    assert not store.has_result("ab" * 16)


def test_fsync_mode_writes_the_same_result(tmp_path):
    store = Store(str(tmp_path / "s"), fsync=True)
    store.save_result("cd" * 16, [1, 2, 3], {})
    assert store.load_value("cd" * 16) == [1, 2, 3]


def test_failure_records(tmp_path):
    store = Store(str(tmp_path / "s"))
    store.save_failure("ef" * 16, {"type": "ValueError", "message": "bad"})
    assert store.failed_hashes() == {"ef" * 16}
    assert store.load_failure("ef" * 16)["message"] == "bad"
    assert store.remove_failure("ef" * 16)
    assert store.load_failure("ef" * 16) is None


def test_refuses_a_foreign_folder_and_other_formats(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(StoreError, match="not a taskflow store"):
        Store(str(foreign)).ensure()
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / MARKER).write_text(json.dumps({"format": 99}))
    with pytest.raises(StoreError, match="format 99"):
        Store(str(newer)).check_format()


def test_many_processes_open_a_fresh_store_together(tmp_path):
    import multiprocessing as mp

    path = str(tmp_path / "fresh")
    ctx = mp.get_context("fork")
    start = ctx.Event()
    errors = ctx.Queue()

    def opener():
        start.wait()
        try:
            Store(path).ensure()
        except StoreError as e:
            errors.put(str(e))

    procs = [ctx.Process(target=opener) for _ in range(40)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(30)
    assert errors.empty(), errors.get()
    assert Store(path).exists()


def test_writes_through_tmp_where_unnamed_files_are_unavailable(tmp_path, monkeypatch):
    from taskflow.stores.folder import writes as store_module

    monkeypatch.setattr(store_module._anonymous, "usable", False)
    store = Store(str(tmp_path / "s"))
    store.save_result("ab" * 16, {"via": "tmp"}, {})
    assert store.load_value("ab" * 16) == {"via": "tmp"}
    assert os.listdir(store.tmp_dir) == []


def test_a_damaged_result_is_replaced(tmp_path):
    store = Store(str(tmp_path / "s"))
    h = "cd" * 16
    store.save_result(h, "first", {})
    with open(store.result_path(h), "r+b") as f:
        f.truncate(10)
    store.save_result(h, "second", {})
    assert store.load_value(h) == "second"
    assert os.listdir(store.tmp_dir) == []


def test_shards_are_made_on_first_use_without_giving_up_unnamed_files(tmp_path):
    from taskflow.stores.folder import writes as store_module

    usable = store_module._anonymous.usable
    store = Store(str(tmp_path / "s"))
    store.save_result("ef" * 16, 1, {})
    assert os.listdir(store.results_dir) == ["ef"]
    shutil.rmtree(os.path.join(store.results_dir, "ef"))  # as after a cleanup
    store.save_result("ef" * 16, 2, {})
    assert store.load_value("ef" * 16) == 2
    assert store_module._anonymous.usable == usable, "a missing shard is no reason to stop using unnamed files"
    assert os.listdir(store.tmp_dir) == []


@pytest.mark.parametrize("unnamed", [True, False], ids=["unnamed-file", "via-tmp"])
def test_a_missing_shard_costs_no_second_write_of_the_result(tmp_path, monkeypatch, unnamed):
    """The file is whole when its shard turns out missing: the shard is made and the same file put in
    place, not written again (for a large array, a second write costs as much as the first)."""
    import numpy as np

    from taskflow import encoding
    from taskflow.stores.folder import writes as store_module

    if not unnamed:
        monkeypatch.setattr(store_module._anonymous, "usable", False)
    usable = store_module._anonymous.usable
    writes = []
    real_write = encoding.Payload.write

    def counted(self, fd):
        writes.append(fd)
        return real_write(self, fd)

    monkeypatch.setattr(encoding.Payload, "write", counted)
    store = Store(str(tmp_path / "s"))
    arr = np.arange(3 << 20, dtype=np.float64)  # 24 MB: written in chunks
    for h in ("ab" * 16, "ac" * 16):  # two new shards: the second after the store's folders exist
        store.save_result(h, arr, {})
    assert len(writes) == 2
    shutil.rmtree(os.path.join(store.results_dir, "ab"))  # as after a cleanup
    store.save_result("ab" * 16, arr + 1, {})
    assert len(writes) == 3
    assert np.array_equal(store.load_value("ab" * 16), arr + 1)
    assert np.array_equal(store.load_value("ac" * 16), arr)
    assert os.listdir(store.tmp_dir) == []
    assert store_module._anonymous.usable == usable


def test_a_shard_removed_while_a_damaged_result_is_replaced_leaves_nothing_in_tmp(tmp_path, monkeypatch):
    """Replacing goes through a second name in tmp/; the shard vanishing just then (a cleanup) must not
    leave that name behind when the result is linked into the shard made again."""
    from taskflow.stores.folder import writes as store_module

    store = Store(str(tmp_path / "s"))
    h = "ce" * 16
    store.save_result(h, "first", {})
    shard = os.path.dirname(store.result_path(h))
    real_replace = os.replace
    calls = []

    def replace_after_a_cleanup(src, dst):
        calls.append(dst)
        if len(calls) == 1:
            shutil.rmtree(shard)
        return real_replace(src, dst)

    monkeypatch.setattr(store_module.os, "replace", replace_after_a_cleanup)
    store.save_result(h, "second", {})
    assert store.load_value(h) == "second"
    assert os.listdir(store.tmp_dir) == []


def test_a_shard_made_by_another_worker_meanwhile_is_used(tmp_path, monkeypatch):
    """Two workers meet a missing shard at once: one makes it while the other notices it missing."""
    from taskflow.stores.folder import writes as store_module

    usable = store_module._anonymous.usable
    store = Store(str(tmp_path / "s"))
    h = "12" * 16
    shard = os.path.dirname(store.result_path(h))
    real_place = store._place
    calls = []

    def place_racing(final, payload):
        calls.append(final)
        if len(calls) == 1:
            os.makedirs(shard)  # the other worker, between our failed write and our look
            raise FileNotFoundError(2, "No such file or directory", final)
        return real_place(final, payload)

    monkeypatch.setattr(store, "_place", place_racing)
    store.save_result(h, "mine", {})
    assert store.load_value(h) == "mine" and len(calls) == 2
    assert store_module._anonymous.usable == usable


FORMAT_TASKFILE = """
from taskflow import TaskGenerator

@TaskGenerator
def double(x):
    return 2 * x

xs = [double(i) for i in range(3)]
"""


def _future_store(tmp_path):
    """A taskfile whose store was computed, then marked as a future format."""
    from conftest import run_cli, write_taskfile

    tf = write_taskfile(tmp_path, FORMAT_TASKFILE)
    run_cli("execute", tf, check=0)
    store = tmp_path / "taskfile.taskflow"
    (store / MARKER).write_text(json.dumps({"format": 99}))
    return tf, store


def test_python_api_refuses_a_store_of_a_future_format(tmp_path):
    import taskflow
    from conftest import run_cli

    tf, store = _future_store(tmp_path)
    cli_error = run_cli("status", tf, check=2).stderr.strip()
    with pytest.raises(StoreError, match="format 99") as e:
        taskflow.init(str(tf))
    assert cli_error == f"taskflow: error: {e.value}", "the same error as the command line"
    with pytest.raises(StoreError, match="format 99"):
        taskflow.status(str(tf))
    with pytest.raises(StoreError, match="format 99"):
        taskflow.init(str(tf), store=str(store))


def test_value_refuses_a_store_of_a_future_format(tmp_path):
    """Tasks declared by hand against a store reach it only through value()."""
    import taskflow
    from taskflow.task import Declarations, activate

    tf, store = _future_store(tmp_path)
    previous = activate(Declarations(Store(str(store))))
    try:
        import importlib.util
        spec = importlib.util.spec_from_file_location("taskfile", tf)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert module.xs[0].store is not None
        with pytest.raises(StoreError, match="format 99"):
            taskflow.value(module.xs)
        with pytest.raises(StoreError, match="format 99"):
            module.xs[1].value()
    finally:
        activate(previous)
