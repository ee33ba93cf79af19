"""The doctor's record of what a store needs: updates by doctors racing on one store."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from taskflow.stores.folder import needs as fsneeds
from taskflow.errors import StoreAccessError
from taskflow.stores.folder import FolderStore as Store

WRITERS = 6
UPDATES = 25

# Each writer waits for `go`, then adds itself UPDATES times to the record; the change sleeps
# inside the section, so that updates that are not serialised overwrite each other.
WRITER = textwrap.dedent("""
    import os, sys, time
    from taskflow.stores.folder import needs as fsneeds
    from taskflow.stores.folder import FolderStore as Store
    store, me, go = Store(sys.argv[1]), sys.argv[2], sys.argv[3]
    while not os.path.exists(go):
        time.sleep(0.005)

    def change(previous):
        record = dict(previous or {"min_lease": 1.0, "writes": []})
        time.sleep(0.002)
        record["writes"] = record["writes"] + [me]
        return record

    for _ in range(int(sys.argv[4])):
        fsneeds.update_needs(store, change)
""")

# Holds the section (lease as given) and says so, until killed.
HOLDER = textwrap.dedent("""
    import sys, time
    from taskflow.stores.folder import needs as fsneeds
    from taskflow.stores.folder import FolderStore as Store
    fsneeds.LOCK_LEASE = float(sys.argv[2])

    def change(previous):
        print("holding", flush=True)
        time.sleep(3600)
    fsneeds.update_needs(Store(sys.argv[1]), change)
""")


def _store(tmp_path) -> Store:
    store = Store(str(tmp_path / "store"))
    store.ensure()
    return store


def _holder(store: Store, lease: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, store.path, str(lease)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "holding\n"
    return proc


def test_updates_of_doctors_racing_on_one_store_are_never_lost(tmp_path):
    store = _store(tmp_path)
    go = tmp_path / "go"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, store.path, f"w{i}", str(go), str(UPDATES)])
               for i in range(WRITERS)]
    go.touch()
    assert [w.wait(timeout=120) for w in writers] == [0] * WRITERS
    writes = json.loads((tmp_path / "store" / fsneeds.NEEDS_FILE).read_text())["writes"]
    assert sorted(writes) == sorted(f"w{i}" for i in range(WRITERS) for _ in range(UPDATES))
    assert not os.path.exists(os.path.join(store.path, fsneeds.LOCK_FILE))


def test_a_doctor_killed_inside_the_update_does_not_block_the_next(tmp_path, monkeypatch):
    store = _store(tmp_path)
    monkeypatch.setattr(fsneeds, "LOCK_LEASE", 2.0)  # every contender must agree on the lease
    holder = _holder(store, 2.0)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert os.path.exists(os.path.join(store.path, fsneeds.LOCK_FILE))
    record = fsneeds.update_needs(store, lambda previous: {"min_lease": 3.0, "previous": previous})
    assert record == {"min_lease": 3.0, "previous": None}
    assert fsneeds.read_needs(store) == record


def test_an_update_held_up_by_a_live_doctor_past_the_wait_is_a_store_error(tmp_path, monkeypatch):
    store = _store(tmp_path)
    holder = _holder(store, fsneeds.LOCK_LEASE)
    try:
        monkeypatch.setattr(fsneeds, "LOCK_WAIT", 0.3)
        with pytest.raises(StoreAccessError, match=r"doctor\.json\.lock: held by another `taskflow doctor`"):
            fsneeds.update_needs(store, lambda previous: {"min_lease": 1.0})
    finally:
        holder.kill()
        holder.wait()
    assert fsneeds.read_needs(store) is None


def test_the_record_is_read_without_taking_the_lock(tmp_path):
    store = _store(tmp_path)
    fsneeds.write_needs(store, {"min_lease": 2.0})
    holder = _holder(store, fsneeds.LOCK_LEASE)
    try:
        assert fsneeds.read_needs(store) == {"min_lease": 2.0}
        assert fsneeds.lease_warning(store, 1.0) is not None
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.sharedfs
def test_updates_of_doctors_on_two_clients_of_one_store_are_never_lost(two_clients):
    """Each client has its own caches: the update must read the record as the other client left it."""
    Store(str(two_clients.origin / "store")).ensure()
    go = two_clients.origin / "go"
    writers = []
    for i in range(4):
        view = two_clients.mount_a if i % 2 == 0 else two_clients.mount_b
        writers.append(two_clients.spawn([sys.executable, "-c", WRITER, str(view / "store"), f"w{i}",
                                          str(view / "go"), "10"], view=view))
    go.touch()
    assert [w.wait(timeout=300) for w in writers] == [0] * 4
    writes = json.loads((two_clients.origin / "store" / fsneeds.NEEDS_FILE).read_text())["writes"]
    assert sorted(writes) == sorted(f"w{i}" for i in range(4) for _ in range(10))
