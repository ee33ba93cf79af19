"""The parts of a Redis store on a real redis-server: addresses, errors, claims, results, records."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time

import numpy as np
import pytest

from taskflow import encoding
from taskflow.errors import StoreServerError, UsageError
from taskflow.stores.redis import results as results_module
from taskflow.stores.redis.connection import Connection
from taskflow.stores.redis.records import Records
from taskflow.stores.redis.store import RedisStore
from taskflow.stores.redis.url import parse

H1, H2, H3 = "a1" * 16, "b2" * 16, "c3" * 16


def parts(url: str, lease: float = 30.0):
    store = RedisStore.from_value(url)
    return store.connection, store.keys, store.claims(lease=lease), store.results


# -- addresses ------------------------------------------------------------------

def test_url_parts_and_defaults():
    a = parse("redis://cache.example:6380/3?prefix=proj", environ={})
    assert (a.host, a.port, a.db, a.prefix, a.tls, a.password) == ("cache.example", 6380, 3, "proj", False, None)
    b = parse("rediss://node", environ={})
    assert (b.port, b.db, b.prefix, b.tls) == (6379, 0, "taskflow", True)
    assert b.client_kwargs()["ssl"] is True


def test_password_from_url_or_environment_is_never_shown():
    a = parse("redis://alice:s3cret%21@h:1/0", environ={"TASKFLOW_REDIS_PASSWORD": "other"})
    assert a.password == "s3cret!" and a.username == "alice"
    for text in (a.display, repr(a), str(a), a.server):
        assert "s3cret" not in text
    b = parse("redis://h:1/0", environ={"TASKFLOW_REDIS_PASSWORD": "fromenv"})
    assert b.password == "fromenv" and "fromenv" not in repr(b)


@pytest.mark.parametrize("url, words", [
    ("redis://:pw@h:1/x", "database must be a number"),
    ("redis://:pw@h:1/0?prefix=a:b", "prefix"),
    ("redis://:pw@h:1/0?colour=red", "unknown option 'colour'"),
    ("redis://:pw@/0", "names no host"),
])
def test_bad_urls_are_one_line_errors_without_the_password(url, words):
    with pytest.raises(UsageError) as e:
        parse(url, environ={})
    assert words in str(e.value) and "pw" not in str(e.value).replace("prefix", "")


# -- errors ---------------------------------------------------------------------

def _error(url: str, environ: dict | None = None) -> StoreServerError:
    connection = Connection(parse(url, environ={} if environ is None else environ))
    with pytest.raises(StoreServerError) as e:
        connection.ping()
    assert e.value.exit_code == 4
    assert "\n" not in str(e.value)
    pickle.loads(pickle.dumps(e.value))
    return e.value


def test_connection_refused_names_the_server():
    from redis_server import free_port, missing_requirement
    if missing_requirement():
        pytest.skip(missing_requirement())
    port = free_port()
    e = _error(f"redis://:hidden@127.0.0.1:{port}/0")
    assert f"127.0.0.1:{port}" in str(e) and "connection refused" in str(e) and "hidden" not in str(e)


def test_wrong_password_missing_password_and_wrong_database(own_redis):
    server = own_redis(extra=("--requirepass", "right-one", "--databases", "4"))
    wrong = _error(server.url(password="wrong-one"))
    assert "wrong user or password" in str(wrong) and "wrong-one" not in str(wrong) and server.address in str(wrong)
    missing = _error(server.url())
    assert "wants a password" in str(missing) and "TASKFLOW_REDIS_PASSWORD" in str(missing)
    no_db = _error(server.url(db=9, password="right-one"))
    assert "has no database 9" in str(no_db) and "right-one" not in str(no_db)
    Connection(parse(server.url(db=3), environ={"TASKFLOW_REDIS_PASSWORD": "right-one"})).ping()


def test_out_of_memory_is_one_line_and_writes_nothing(own_redis):
    server = own_redis(extra=("--maxmemory", "3mb"))
    connection, keys, claims, results = parts(server.url())
    with pytest.raises(StoreServerError) as e:
        results.save(H1, encoding.Payload(b"x" * (4 << 20), {"name": "t.big"}))
    assert "out of memory" in str(e.value) and server.address in str(e.value)
    assert results.finished() == set() and not results.exists(H1)


# -- claims -----------------------------------------------------------------------

def test_a_claim_is_exclusive_renewed_and_released_by_its_owner_only(redis_url):
    _, _, mine, _ = parts(redis_url)
    _, _, theirs, _ = parts(redis_url)
    claim = mine.claim(H1)
    assert claim is not None and theirs.claim(H1) is None
    info = theirs.inspect(H1)
    assert info is not None and not info.stale and info.owner["pid"] == os.getpid()
    assert "password" not in info.raw.decode()
    assert theirs.claimed() == {H1} and theirs.owner(H1)["pid"] == os.getpid()
    assert mine.renew(claim) and mine.holds(claim)
    assert mine.release(claim)
    assert theirs.inspect(H1) is None and theirs.claimed() == set()
    assert not mine.release(claim)  # given back: never ours again


def test_the_server_expires_a_claim_not_renewed_and_its_owner_then_loses_it(redis_url):
    _, _, mine, results = parts(redis_url, lease=1.0)
    _, _, theirs, _ = parts(redis_url, lease=30.0)
    claim = mine.claim(H1)
    time.sleep(1.3)
    taken = theirs.claim(H1)
    assert taken is not None
    assert not mine.renew(claim) and not mine.holds(claim)
    # Saving under the lost claim writes nothing: the winner's result is the one that counts.
    assert results.save(H1, encoding.Payload("late", {"name": "t.f"}), claim.token) is None
    assert results.save(H1, encoding.Payload("won", {"name": "t.f"}), taken.token) == \
        encoding.Payload("won", {"name": "t.f"}).pieces()[2]
    assert results.load(H1)[0] == "won"


def test_a_claim_whose_owner_died_on_this_host_is_taken_over_at_once(redis_url):
    code = ("import sys; from taskflow.stores import open_store; "
            "c = open_store(sys.argv[1]).claims(lease=300); "
            "assert c.claim(sys.argv[2]); print('claimed', flush=True); sys.stdin.read()")
    owner = subprocess.Popen([sys.executable, "-c", code, redis_url, H1], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert owner.stdout.readline().strip() == "claimed"
    _, _, mine, _ = parts(redis_url)
    assert mine.claim(H1) is None  # its owner lives
    owner.kill()
    owner.wait()
    info = mine.inspect(H1)
    assert info.stale and "is gone" in info.reason
    assert mine.claim(H1, take_over=False) is None
    taken = mine.claim(H1)
    assert taken is not None and mine.holds(taken)


# -- results --------------------------------------------------------------------

def test_small_and_chunked_results_round_trip_with_their_checks(redis_url, monkeypatch):
    monkeypatch.setattr(results_module, "CHUNK", 1 << 16)
    _, keys, _, results = parts(redis_url)
    arr = np.arange(100_000, dtype=np.int64).reshape(1000, 100)
    for h, value in ((H1, {"a": [1, 2]}), (H2, arr), (H3, [arr, b"y" * 70_001])):
        results.save(h, encoding.Payload(value, {"name": "t.f", "hash": h}))
    assert results.load(H1)[0] == {"a": [1, 2]}
    back = results.load(H2)[0]
    assert (back == arr).all() and back.flags.writeable
    assert results.load(H3)[0][1] == b"y" * 70_001
    assert results.meta(H2)["hash"] == H2
    assert results.finished() == {H1, H2, H3}
    with results.connection.guard() as r:
        assert r.hlen(keys.result(H2)) > 10  # it really is in chunks
        r.hset(keys.result(H2), "3", b"\0" * (1 << 16))  # damage one chunk
    with pytest.raises(encoding.CorruptResultError):
        results.load(H2)
    with pytest.raises(encoding.CorruptResultError):
        results.verify(H2)
    where = results.move_aside(H2, results.header(H2))
    assert where is not None and H2 not in results.finished() and not results.exists(H2)
    with pytest.raises(FileNotFoundError):
        results.load(H2)
    assert results.remove(H1) and H1 not in results.finished()


def test_a_writer_dying_midway_leaves_nothing_that_counts(redis_url, monkeypatch):
    monkeypatch.setattr(results_module, "CHUNK", 1 << 16)
    _, keys, _, results = parts(redis_url)
    calls = {"n": 0}
    real = results_module._chunks

    def dying(buffers, size=None):
        for chunk in real(buffers, results_module.CHUNK):
            calls["n"] += 1
            if calls["n"] == 6:
                raise KeyboardInterrupt
            yield chunk
    monkeypatch.setattr(results_module, "_chunks", dying)
    with pytest.raises(KeyboardInterrupt):
        results.save(H1, encoding.Payload(np.ones(200_000), {"name": "t.f"}))
    assert not results.exists(H1) and results.finished() == set()
    with results.connection.guard() as r:
        assert list(r.scan_iter(keys.tmp_pattern())) == []


# -- records and the journal -------------------------------------------------------

def test_records_failures_code_stop_suspect_complete(redis_url):
    connection, keys, _, _ = parts(redis_url)
    records = Records(connection, keys)
    records.check_format()
    records.ensure()
    records.check_format()
    records.save_failure(H1, {"name": "t.f", "type": "ValueError", "message": "no"})
    assert records.failed_hashes() == {H1} and records.load_failure(H1)["message"] == "no"
    assert records.failure_time(H1) > 0 and records.load_failure(H2) is None
    assert records.remove_failure(H1) and records.failed_hashes() == set()
    records.note_code("t.f", "abc-v2")
    assert records.code_tags("t.f") == {"abc-v2"}
    records.forget_code("t.f", "abc-v2")
    assert records.code_tags("t.f") == set()
    assert not records.stop_requested() and records.request_stop({"by": "test"}) and records.stop_requested()
    assert records.undo_stop() and not records.stop_requested()
    records.mark_suspect(H2, {"reason": "bad"})
    assert records.suspect_hashes() == {H2} and records.unmark_suspect(H2)
    records.record_complete("d1", {"tasks": 3})
    assert records.complete_recorded("d1") and records.forget_complete() == 1


def test_a_store_of_another_format_is_refused(redis_url):
    connection, keys, _, _ = parts(redis_url)
    with connection.guard() as r:
        r.set(keys.marker, json.dumps({"format": 99, "kind": "redis"}))
    with pytest.raises(Exception, match="format 99"):
        Records(connection, keys).check_format()


def test_journals_tell_only_what_others_finished_since_the_reader_started(redis_url):
    store = RedisStore.from_value(redis_url)
    early = store.journal()
    early.add(H1)
    early.flush()
    reader = store.news()
    reader.start()
    assert reader.journals_seen() and not reader.journals_seen(skip=early.ident)
    assert reader.news() == set()
    mine, theirs = store.journal(), store.journal()
    mine.add(H2)
    mine.flush()
    theirs.add(H3)
    theirs.flush()
    assert reader.news(skip=mine.ident) == {H3}
    assert reader.news(skip=mine.ident) == set()
    assert store.journaled() == {H1, H2, H3}
    early.close()
    mine.close()
    theirs.close()
    assert store.journaled() == set()


def test_a_result_over_512_mb_round_trips(redis_url):
    """Redis refuses one value over 512 MB: chunks make a 600 MB array work."""
    store = RedisStore.from_value(redis_url)
    arr = np.arange(600 * (1 << 20) // 8, dtype=np.float64)
    arr[::4096] = -1.0
    assert store.save_result(H1, arr, {"name": "t.big", "hash": H1}) > 600 * (1 << 20)
    back = store.load_value(H1)
    assert back.shape == arr.shape and back.dtype == arr.dtype and np.array_equal(back, arr)
    del back
    store.verify_result(H1)
    assert store.result_meta(H1)["name"] == "t.big" and store.finished_hashes() == {H1}
    with pytest.raises(UsageError, match="mmap=True needs a folder store"):
        store.load_value(H1, mmap=True)
    assert store.remove_result(H1)


def _race(url: str, task_hash: str, start_at: float, out, answered) -> None:
    store = RedisStore.from_value(url)
    claims = store.claims(lease=30)
    while time.time() < start_at:
        time.sleep(0.001)
    out.put(claims.claim(task_hash) is not None)
    # The winner lives on until every racer has answered: a claim whose owner process is gone
    # from this host is stale, and a slower racer would rightly take it over.
    answered.wait(60)


def test_twenty_processes_race_for_one_claim_and_exactly_one_wins(redis_url):
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    answered = ctx.Event()
    start_at = time.time() + 3
    procs = [ctx.Process(target=_race, args=(redis_url, H1, start_at, out, answered)) for _ in range(20)]
    for p in procs:
        p.start()
    won = [out.get(timeout=60) for _ in procs]
    answered.set()
    for p in procs:
        p.join(30)
    assert won.count(True) == 1


def test_claims_and_stores_pickle_without_the_password(own_redis):
    server = own_redis(extra=("--requirepass", "pickled-pw"))
    store = RedisStore.from_value(server.url(password="pickled-pw"))
    assert "pickled-pw" not in store.url and "pickled-pw" not in repr(store) and "pickled-pw" not in str(store)
    claims = store.claims(lease=30)
    claim = claims.claim(H1)
    again = pickle.loads(pickle.dumps(claims))
    assert again.still_ours(pickle.loads(pickle.dumps(claim)))
    assert again.release(pickle.loads(pickle.dumps(claim)))
    assert not claims.still_ours(claim)


def test_the_store_can_be_named_in_pyproject_but_never_with_a_password(tmp_path, monkeypatch):
    from taskflow.taskfile import store_path

    monkeypatch.delenv("TASKFLOW_STORE", raising=False)
    tf = tmp_path / "taskfile.py"
    tf.write_text("")
    assert store_path(str(tf)) == str(tmp_path / "taskfile.taskflow")
    (tmp_path / "pyproject.toml").write_text('[tool.taskflow.store]\nurl = "redis://cache:6379/2?prefix=p"\n')
    assert store_path(str(tf)) == "redis://cache:6379/2?prefix=p"
    assert store_path(str(tf), "elsewhere") == "elsewhere"
    monkeypatch.setenv("TASKFLOW_STORE", "redis://env:1/0")
    assert store_path(str(tf)) == "redis://env:1/0"
    monkeypatch.delenv("TASKFLOW_STORE")
    (tmp_path / "pyproject.toml").write_text('[tool.taskflow.store]\nurl = "redis://u:hunter2@cache:6379/2"\n')
    with pytest.raises(UsageError) as e:
        store_path(str(tf))
    assert "TASKFLOW_REDIS_PASSWORD" in str(e.value) and "hunter2" not in str(e.value)
    (tmp_path / "pyproject.toml").write_text('[tool.taskflow.store]\nurl = "shared/run.taskflow"\n')
    assert store_path(str(tf)) == str(tmp_path / "shared" / "run.taskflow")


def test_a_non_contiguous_array_is_stored_in_chunks_as_its_copy(redis_url, monkeypatch):
    monkeypatch.setattr(results_module, "CHUNK", 1 << 16)
    _, _, _, results = parts(redis_url)
    base = np.arange(600_000, dtype=np.float64).reshape(1000, 600)
    view = base[::3, ::2]
    results.save(H1, encoding.Payload(view, {"name": "t.f"}))
    back = results.load(H1)[0]
    assert back.shape == view.shape and np.array_equal(back, np.ascontiguousarray(view))
    results.verify(H1)
