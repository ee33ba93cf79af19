"""Signed results (signing.py, resign.py): key files, results and failure records signed and checked,
what is refused and why, what execute does with it, and re-signing with a new key."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import run_cli, write_taskfile
from taskflow import encoding
from taskflow.errors import CorruptResultError, ExitCode, KeyFileError, UnsignedResultError
from taskflow.resign import sign_store
from taskflow.signing import Key, new_key, read_key
from taskflow.stores.folder import FolderStore
from taskflow.stores.folder.packed import PACK_FROM

A, B = "a1" * 16, "b2" * 16
META = {"name": "t.f"}


def keyed(path, key: Key | None) -> FolderStore:
    store = FolderStore(str(path))
    store.use_key(key)
    store.ensure()
    return store


@pytest.fixture
def key(tmp_path) -> Key:
    return new_key(str(tmp_path / "k.key"))


@pytest.fixture
def other_key(tmp_path) -> Key:
    return new_key(str(tmp_path / "other.key"))


# -- key files ---------------------------------------------------------------------------------

def test_a_new_key_is_a_file_only_its_owner_reads_and_is_never_written_over(tmp_path):
    made = new_key(str(tmp_path / "k.key"))
    assert os.stat(made.path).st_mode & 0o777 == 0o600
    assert read_key(made.path).id == made.id and len(made.id) == 8
    assert made.id not in open(made.path).read(), "the id says nothing of the key"
    with pytest.raises(KeyFileError, match="exists already"):
        new_key(made.path)
    assert read_key(made.path).id == made.id
    with pytest.raises(TypeError):
        import pickle
        pickle.dumps(made)


@pytest.mark.parametrize("mode, content, why", [
    (0o640, b"x" * 32, "mode 0640 lets others read or change it: chmod 600"),
    (0o604, b"x" * 32, "mode 0604 lets others read or change it"),
    (0o600, b"short\n", "holds 5 bytes, fewer than 16"),
])
def test_a_key_file_others_can_read_or_too_short_is_one_line_naming_it(tmp_path, mode, content, why):
    path = tmp_path / "k.key"
    path.write_bytes(content)
    path.chmod(mode)
    with pytest.raises(KeyFileError) as e:
        read_key(str(path))
    assert str(e.value).startswith(f"key file {path}: ") and why in str(e.value) and "\n" not in str(e.value)
    assert e.value.exit_code == ExitCode.USAGE
    with pytest.raises(KeyFileError, match="cannot read it: No such file"):
        read_key(str(tmp_path / "none.key"))


def test_a_bad_key_file_stops_a_command_in_one_line_with_exit_2(tmp_path):
    write_taskfile(tmp_path, "from taskflow import Task\nt = Task(abs, -1)\n")
    (tmp_path / "k.key").write_bytes(b"y" * 32)
    (tmp_path / "k.key").chmod(0o644)
    proc = run_cli("execute", "taskfile.py", "--key-file", "k.key", cwd=tmp_path, check=2)
    assert proc.stderr.strip() == (f"taskflow: error: key file {tmp_path / 'k.key'}: mode 0644 lets others read or "
                                   f"change it: chmod 600 {tmp_path / 'k.key'}")


# -- results ----------------------------------------------------------------------------------------

def _values():
    big = np.arange(3_000_000, dtype=np.float64)  # 24 MB: read and checked in chunks, the MAC on a thread
    return [("small", 42), ("array", np.arange(10.0)), ("large array", big),
            ("large pickle", {"a": big, "b": [1, 2]}), ("fortran", np.asfortranarray(np.ones((500, 700))))]


@pytest.mark.parametrize("label, value", _values())
def test_a_signed_result_loads_with_its_key_in_every_read_path(tmp_path, key, label, value):
    store = keyed(tmp_path / "s", key)
    store.save_result(A, value, META)
    header = encoding.parse_header("r", open(store.result_path(A), "rb").read(), os.path.getsize(store.result_path(A)))
    assert header.mac.startswith(f"hmac-sha256:{key.id}:")
    for mmap in (False, True):
        got = store.load_value(A, mmap=mmap)
        if isinstance(value, dict):
            assert np.array_equal(got["a"], value["a"]) and got["b"] == value["b"]
        else:
            assert np.array_equal(got, value)
    store.verify_result(A)
    assert encoding.read_meta(store.result_path(A)) == META, "the header reads as before"


@pytest.mark.parametrize("label, value", _values())
def test_a_result_changed_without_the_key_is_refused_in_every_read_path(tmp_path, key, other_key, label, value):
    store = keyed(tmp_path / "s", key)
    store.save_result(A, value, META)
    forger = keyed(tmp_path / "s", other_key)
    forged = encoding.Payload(value, META)
    forged.sign(forger.seal(A))
    # The forger keeps the MAC the key made and writes other data with a checksum of its own.
    real_mac = encoding.parse_header("r", open(store.result_path(A), "rb").read(),
                                     os.path.getsize(store.result_path(A))).mac
    raw = bytearray(_encoded(forged))
    fake_mac = encoding.parse_header("r", bytes(raw), len(raw)).mac
    start = raw.index(fake_mac.encode())
    raw[start:start + len(real_mac)] = real_mac.encode()
    raw[-1] ^= 0x01  # other data than the key signed...
    _rewrite_checksum(raw)  # ...with a checksum that matches it
    open(store.result_path(A), "wb").write(raw)
    encoding.verify(store.result_path(A))  # intact, as far as a checksum can tell
    for mmap in (False, True):
        with pytest.raises(UnsignedResultError, match="its signature does not match"):
            store.load_value(A, mmap=mmap)
    with pytest.raises(UnsignedResultError):
        store.verify_result(A)


def _encoded(payload: encoding.Payload) -> bytes:
    head, chunks, _ = payload.pieces()
    return b"".join([head, *chunks])


def _rewrite_checksum(raw: bytearray) -> None:
    header, offset = encoding._parse_header("r", bytes(raw), len(raw))
    from taskflow import checksum
    digest = checksum.of(header.checksum, [bytes(raw[offset:])], "r")
    old = f"{header.checksum}:{header.digest:016x}".encode()
    start = raw.index(old)
    raw[start:start + len(old)] = f"{header.checksum}:{digest:016x}".encode()


def test_unsigned_results_other_keys_and_other_tasks_results_are_refused_saying_which(tmp_path, key, other_key):
    store = keyed(tmp_path / "s", key)
    keyed(tmp_path / "s", None).save_result(A, 1, META)
    with pytest.raises(UnsignedResultError) as e:
        store.load_value(A)
    assert str(e.value) == (f"unsigned result {store.result_path(A)}: not signed, and this store's results must be "
                            f"signed with key {key.id}; a store signed with another key you hold is re-signed by "
                            "`taskflow store sign --old-key-file`")
    assert isinstance(e.value, CorruptResultError), "counted as damage: execute computes it again"
    keyed(tmp_path / "s", other_key).save_result(A, 1, META)
    with pytest.raises(UnsignedResultError, match=f"signed with key {other_key.id}, not with this store's key {key.id}"):
        store.load_value(A)
    store.save_result(B, 2, META)
    os.replace(store.result_path(B), store.result_path(A))  # a signed result, but another task's
    with pytest.raises(UnsignedResultError, match="another task's result"):
        store.load_value(A)
    assert keyed(tmp_path / "s", None).load_value(A) == 2, "without a key nothing is asked"


def test_a_pickle_refused_for_its_signature_is_never_unpickled(tmp_path, key):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return marker.touch, ()

    keyed(tmp_path / "s", None).save_result(A, Evil(), META)
    with pytest.raises(UnsignedResultError):
        keyed(tmp_path / "s", key).load_value(A)
    assert not marker.exists()


def test_packed_results_are_signed_and_checked(tmp_path, key, monkeypatch):
    monkeypatch.setenv("TASKFLOW_PACK", "1")
    monkeypatch.setenv("TASKFLOW_PACK_GRACE", "0")
    unsigned = keyed(tmp_path / "s", None)
    unsigned.expect_results(PACK_FROM)
    unsigned.save_payloads([(A, encoding.Payload(10, META)), ("c3" * 16, encoding.Payload(3, META))])
    unsigned.close_results()
    store = keyed(tmp_path / "s", key)
    store.expect_results(PACK_FROM)
    store.save_payloads([(B, encoding.Payload(2, META)), ("d4" * 16, encoding.Payload(4, META))])
    store.close_results()
    assert not os.path.exists(store.result_path(A)) and not os.path.exists(store.result_path(B)), "packed"
    reader = keyed(tmp_path / "s", key)
    assert reader.load_value(B) == 2
    reader.verify_result(B)
    with pytest.raises(UnsignedResultError, match="not signed"):
        reader.load_value(A)
    with pytest.raises(UnsignedResultError):
        reader.verify_result(A)
    assert reader.move_aside(A) is not None
    with pytest.raises(FileNotFoundError):
        reader.load_value(A)
    assert reader.load_value("d4" * 16) == 4
    assert sign_store(reader, None, unsigned=True).results == 1, "the other unsigned one, re-signed in place"
    assert keyed(tmp_path / "s", key).load_value("c3" * 16) == 3


# -- failure records ------------------------------------------------------------------------

def test_failure_records_are_signed_and_one_written_without_the_key_is_ignored(tmp_path, key, caplog):
    store = keyed(tmp_path / "s", key)
    store.save_failure(A, {"type": "ValueError", "message": "no", "traceback": "tb"})
    assert store.load_failure(A)["message"] == "no" and store.failed_hashes() == {A}
    keyed(tmp_path / "s", None).save_failure(B, {"type": "ValueError", "message": "forged", "traceback": ""})
    record = json.load(open(store.failure_path(A)))
    record["message"] = "changed"
    open(store.failure_path(A), "w").write(json.dumps(record))
    with caplog.at_level(logging.WARNING, logger="taskflow.signing"):
        assert store.failed_hashes() == set()
        assert store.load_failure(A) is None and store.load_failure(B) is None
    warned = [r.getMessage() for r in caplog.records]
    assert f"failure record {store.failure_path(B)} ignored: not signed, and this store's results must be signed " \
           f"with key {key.id}" in warned
    assert any(m.startswith(f"failure record {store.failure_path(A)} ignored: its signature does not match")
               for m in warned)
    assert len(warned) == 2, "once per record and process"
    assert keyed(tmp_path / "s", None).failed_hashes() == {A, B}


# -- execute -----------------------------------------------------------------------------------

TASKFILE = """
from taskflow import TaskGenerator

@TaskGenerator
def leaf(i):
    return i * 10

@TaskGenerator
def total(xs):
    return sum(xs)

@TaskGenerator
def broken():
    raise ValueError("broken on purpose")

leaves = [leaf(i) for i in range(4)]
result = total(leaves)
b = broken()
"""

LOAD = "import taskflow; ns = taskflow.init('taskfile.py'); print(taskflow.value(ns.leaves))"


def _load(folder, env: dict) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("TASKFLOW_KEY_FILE", "TASKFLOW_STORE")}
    return subprocess.run([sys.executable, "-c", LOAD], cwd=folder, env=dict(full, **env), capture_output=True,
                          text=True, timeout=120)


def test_execute_moves_an_unsigned_result_aside_and_computes_it_again(tmp_path, key):
    write_taskfile(tmp_path, TASKFILE)
    env = {"TASKFLOW_KEY_FILE": key.path}
    run_cli("execute", "taskfile.py", "-q", "--jobs", "3", cwd=tmp_path, env=env, check=1)  # claims among workers
    secret = open(key.path, "rb").read().strip()
    files = [os.path.join(d, n) for d, _, names in os.walk(tmp_path / "taskfile.taskflow") for n in names]
    assert len(files) > 5 and not [f for f in files if secret in open(f, "rb").read()], "the key stays in its file"
    assert any(secret[:8] in open(f, "rb").read() for f in [key.path]), "the search can find it"
    store = keyed(tmp_path / "taskfile.taskflow", key)
    store.taskfile = str(tmp_path / "taskfile.py")
    leaf = next(h for h in store.finished_hashes() if store.result_meta(h)["name"].endswith("leaf")
                and store.load_value(h) == 20)
    meta = store.result_meta(leaf)
    os.unlink(store.result_path(leaf))
    keyed(tmp_path / "taskfile.taskflow", None).save_result(leaf, 1000, meta)
    assert _load(tmp_path, {}).stdout.strip() == "[0, 10, 1000, 30]", "without the key the forgery would be believed"
    proc = run_cli("execute", "taskfile.py", "--verify", cwd=tmp_path, env=env, check=1)  # broken() stays failed
    assert f"not signed, and this store's results must be signed with key {key.id}" in proc.stderr, proc.stderr
    assert "computing taskfile.leaf again" in proc.stderr, proc.stderr
    assert [n for n in os.listdir(store.damaged_dir) if n.startswith(leaf)]
    assert store.load_value(leaf) == 20
    assert _load(tmp_path, env).stdout.strip() == "[0, 10, 20, 30]"
    status = run_cli("status", "taskfile.py", cwd=tmp_path, env=env, check=0)
    assert status.stdout.splitlines()[-1].split() == ["Total", "0", "0", "0", "5", "1"], status.stdout


def test_a_failure_record_written_without_the_key_does_not_stop_a_task(tmp_path, key):
    write_taskfile(tmp_path, TASKFILE)
    env = {"TASKFLOW_KEY_FILE": key.path}
    run_cli("execute", "taskfile.py", "-q", cwd=tmp_path, env=env, check=1)
    store = keyed(tmp_path / "taskfile.taskflow", key)
    total = next(h for h in store.finished_hashes() if store.result_meta(h)["name"].endswith("total"))
    store.remove_result(total)
    keyed(tmp_path / "taskfile.taskflow", None).save_failure(total, {"type": "X", "message": "forged",
                                                                     "traceback": ""})
    proc = run_cli("execute", "taskfile.py", cwd=tmp_path, env=env, check=1)
    assert store.load_value(total) == 60, proc.stderr
    assert total not in store.failed_hashes() and len(store.failed_hashes()) == 1  # broken() alone


# -- re-signing -------------------------------------------------------------------------------

def test_store_sign_replaces_the_old_keys_signatures_and_leaves_forgeries(tmp_path, key, other_key, monkeypatch):
    old = keyed(tmp_path / "s", other_key)
    old.save_result(A, [1, 2], META)
    old.save_result(B, np.arange(5.0), META)
    old.save_failure("d4" * 16, {"type": "E", "message": "m", "traceback": ""})
    keyed(tmp_path / "s", None).save_result("c3" * 16, "forged", META)
    new = keyed(tmp_path / "s", key)
    done = sign_store(new, other_key)
    assert (done.results, done.failures, done.already) == (2, 1, 0)
    assert done.refused == [f"{new.result_path('c3' * 16)}: signed neither with the old key nor with the new one"]
    assert new.load_value(A) == [1, 2] and np.array_equal(new.load_value(B), np.arange(5.0))
    assert new.failed_hashes() == {"d4" * 16}
    with pytest.raises(UnsignedResultError):
        keyed(tmp_path / "s", other_key).load_value(A)
    assert sign_store(new, other_key).already == 2, "signing again changes nothing"
    done = sign_store(new, None, unsigned=True)
    assert done.results == 1 and new.load_value("c3" * 16) == "forged"


def test_store_sign_on_the_command_line(tmp_path, key, other_key):
    write_taskfile(tmp_path, TASKFILE)
    run_cli("execute", "taskfile.py", "-q", cwd=tmp_path, check=1)  # a store made before it had a key
    refused = _load(tmp_path, {"TASKFLOW_KEY_FILE": key.path})
    assert refused.returncode != 0 and "not signed" in refused.stderr
    proc = run_cli("store", "sign", "taskfile.py", "--key-file", key.path, cwd=tmp_path, check=2)
    assert "--old-key-file OLD, or --unsigned" in proc.stderr
    proc = run_cli("store", "sign", "taskfile.py", "--key-file", key.path, "--unsigned", cwd=tmp_path, check=0)
    assert proc.stdout.strip().endswith(f"signed with key {key.id}: 5 results and 1 failure records signed again, "
                                        "0 signed already, 0 left as they were")
    assert _load(tmp_path, {"TASKFLOW_KEY_FILE": key.path}).stdout.strip() == "[0, 10, 20, 30]"
    proc = run_cli("store", "sign", "taskfile.py", "--key-file", other_key.path, "--old-key-file", key.path,
                   cwd=tmp_path, check=0)
    assert "5 results and 1 failure records signed again" in proc.stdout
    assert _load(tmp_path, {"TASKFLOW_KEY_FILE": other_key.path}).stdout.strip() == "[0, 10, 20, 30]"
    assert "not with this store's key" in _load(tmp_path, {"TASKFLOW_KEY_FILE": key.path}).stderr


# -- claims --------------------------------------------------------------------------------------

def test_a_claim_made_without_the_key_is_taken_over_at_once_and_a_signed_one_holds(tmp_path, key):
    plain, signed = keyed(tmp_path / "s", None), keyed(tmp_path / "s", key)
    forged = plain.claims(lease=600).claim(A)
    assert forged is not None and plain.claims(lease=600).claim(A) is None, "live, to a worker without a key"
    info = signed.claims(lease=600).inspect(A)
    assert info.stale and info.reason == (f"a claim not signed, and this store's results must be signed with "
                                          f"key {key.id}")
    ours = signed.claims(lease=600)
    mine = ours.claim(A)
    assert mine is not None and ours.holds(mine)
    assert ours.renew(mine) and ours.renew(mine), "renewing rewrites the counter, which the MAC leaves out"
    other = signed.claims(lease=600)
    assert other.claim(A) is None and other.inspect(A).reason == "live"
    raw = open(signed.lock_path(A), "rb").read()
    assert b'"mac": "hmac-sha256:' in raw and raw.startswith(b'{"renewal": "00000002"')
    open(signed.lock_path(A), "wb").write(raw.replace(b'"pid": ', b'"pid": 1'))  # changed without the key
    assert other.inspect(A).reason.startswith("a claim its signature does not match")


def test_key_file_in_pyproject_is_found_beside_the_taskfile(tmp_path):
    write_taskfile(tmp_path, TASKFILE)
    made = new_key(str(tmp_path / "run.key"))
    (tmp_path / "pyproject.toml").write_text('[tool.taskflow.store]\nkey_file = "run.key"\n')
    run_cli("execute", "taskfile.py", "-q", cwd=tmp_path, check=1)
    store = keyed(tmp_path / "taskfile.taskflow", None)
    heads = [open(store.result_path(h), "rb").read() for h in store.finished_hashes()]
    assert len(heads) == 5 and {encoding.parse_header("r", raw, len(raw)).mac.split(":")[1] for raw in heads} == {made.id}
    assert _load(tmp_path, {}).stdout.strip() == "[0, 10, 20, 30]"
    (tmp_path / "pyproject.toml").write_text('[tool.taskflow.store]\nkey_file = 5\n')
    proc = run_cli("status", "taskfile.py", cwd=tmp_path, check=2)
    assert "key_file = \"PATH\" (not key_file)" in proc.stderr


def test_workers_elsewhere_are_told_where_the_key_is_and_sign_with_it(tmp_path, key):
    """Engines started apart from the command (Dask workers here) get the key file's path through
    Store.worker_environment, never its bytes, and sign what they save."""
    store = keyed(tmp_path / "s", key)
    assert store.worker_environment() == {"TASKFLOW_KEY_FILE": key.path}
    assert keyed(tmp_path / "s", None).worker_environment() == {}
    write_taskfile(tmp_path, TASKFILE)
    run_cli("execute", "taskfile.py", "-q", "--dask", "local:2", "--key-file", key.path, cwd=tmp_path, check=1,
            timeout=300)
    done = keyed(tmp_path / "taskfile.taskflow", key)
    assert len(done.finished_hashes()) == 5 and done.failed_hashes() != set()
    for h in done.finished_hashes():
        done.verify_result(h)
    assert _load(tmp_path, {"TASKFLOW_KEY_FILE": key.path}).stdout.strip() == "[0, 10, 20, 30]"
