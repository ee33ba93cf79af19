"""The store interface (taskflow.stores.base), checked on every kind of store.

Each kind is a fixture returning a `Kind`: the `--store` value of a new, empty
store, and how to damage a stored result behind the store's back. Adding a
backend means one fixture and one entry in KINDS; every test here then runs
on it too.
"""
from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from taskflow import encoding
from taskflow.errors import CorruptResultError, ExitCode, UsageError
from taskflow.stores import open_store
from taskflow.stores.base import LEFTOVER_KINDS, Claim, Store

H = "ab" * 16  # a task hash: 32 hex digits
HASHES = [f"{i:032x}" for i in range(1, 31)]


@dataclass
class Kind:
    url: str
    corrupt: Callable[[Store, str], None]  # damage the stored result of a hash behind the store's back


def _flip_a_byte_of_the_result_file(store: Store, task_hash: str) -> None:
    path = store.location("result", task_hash)
    data = bytearray(open(path, "rb").read())
    data[-3] ^= 0xFF
    with open(path, "wb") as f:
        f.write(data)


@pytest.fixture
def folder_kind(tmp_path) -> Kind:
    return Kind(str(tmp_path / "store"), _flip_a_byte_of_the_result_file)


def _flip_a_byte_of_the_redis_result(store: Store, task_hash: str) -> None:
    key = store.keys.result(task_hash)
    with store.connection.guard() as r:
        data = bytearray(r.hget(key, "0"))
        data[-3] ^= 0xFF
        r.hset(key, "0", bytes(data))


@pytest.fixture
def redis_kind(redis_url) -> Kind:
    return Kind(redis_url, _flip_a_byte_of_the_redis_result)


# Every kind of store the contract is checked on: the name of its fixture.
KINDS = ["folder_kind", "redis_kind"]


@pytest.fixture(params=KINDS)
def kind(request) -> Kind:
    return request.getfixturevalue(request.param)


@pytest.fixture
def store(kind) -> Store:
    s = open_store(kind.url)
    s.ensure()
    return s


def meta(name: str = "t.f", **more) -> dict:
    return {"name": name, "hash": H, "code": "c0de", "version": None, **more}


def save(store: Store, task_hash: str, value, name: str = "t.f") -> int:
    return store.save_payload(task_hash, encoding.Payload(value, meta(name, hash=task_hash)))


# -- identity and format ---------------------------------------------------------------

def test_a_store_opens_again_from_its_url_and_from_its_pickle(kind, store):
    save(store, H, [1, 2])
    assert str(store) and store.url
    again = open_store(store.url)
    assert again.load_value(H) == [1, 2]
    store.taskfile = "tf.py"
    unpickled = pickle.loads(pickle.dumps(store))
    assert unpickled.url == store.url and unpickled.taskfile == "tf.py"
    assert unpickled.load_value(H) == [1, 2]
    for where in ("store", "result", "failure", "suspect", "damaged", "stop", "jobs"):
        assert isinstance(store.location(where, H), str) and store.location(where, H)


def test_a_store_exists_once_ensured_and_ensuring_again_changes_nothing(kind):
    s = open_store(kind.url)
    assert not s.exists()
    s.check_format()  # a store not created yet passes
    s.ensure()
    s.ensure()
    assert s.exists()
    open_store(kind.url).check_format()
    assert s.finished_hashes() == set() and s.failed_hashes() == set()


def test_an_unknown_kind_of_store_is_a_usage_error_naming_the_value():
    with pytest.raises(UsageError, match="nosuch://host/x") as e:
        open_store("nosuch://host/x")
    assert e.value.exit_code == ExitCode.USAGE and "\n" not in str(e.value)


def test_a_file_url_is_a_folder(tmp_path):
    s = open_store(f"file://{tmp_path}/store")
    assert s.url == str(tmp_path / "store")
    with pytest.raises(UsageError, match="this host"):
        open_store("file://elsewhere/x")


# -- results ---------------------------------------------------------------------------

def test_results_round_trip_with_their_metadata(store):
    size = save(store, H, {"a": list(range(100))})
    assert size > 0
    assert store.has_result(H) and H in store.finished_hashes()
    assert store.load_value(H) == {"a": list(range(100))}
    assert store.load_value(H, fresh=True) == {"a": list(range(100))}
    assert store.result_meta(H)["name"] == "t.f"
    store.verify_result(H)
    assert list(store.damaged([H])) == []
    assert store.present([H, "cd" * 16]) == {H}

    class T:
        hash = H
    assert [m["name"] for _, m in store.metas([T()])] == ["t.f"]


def test_a_result_saved_again_replaces_the_old_one_whole(store):
    save(store, H, "old")
    save(store, H, "new")
    assert store.load_value(H) == "new"


def test_an_absent_result_is_file_not_found(store):
    assert not store.has_result(H)
    for read in (store.load_value, store.result_meta, store.verify_result):
        with pytest.raises(FileNotFoundError):
            read(H)
    assert list(store.damaged([H])) == []
    assert not store.remove_result(H)


def test_removing_a_result(store):
    save(store, H, 1)
    assert store.remove_result(H)
    assert not store.has_result(H) and H not in store.finished_hashes()
    assert not store.remove_result(H)


def test_results_of_a_large_graph_are_kept_and_removed_as_any_and_compaction_keeps_them(store, monkeypatch):
    # A worker of a large graph says so: the folder store then packs small results, the Redis
    # store changes nothing. Every promise holds alike, across processes opening the store anew.
    np = pytest.importorskip("numpy")
    monkeypatch.setenv("TASKFLOW_PACK", "1")
    store.expect_results(5000)
    hashes = [f"{i:032x}" for i in range(1200)]
    for i, h in enumerate(hashes):
        save(store, h, {"i": i})
    save(store, H, np.arange(300_000.0))  # a large one
    other = open_store(store.url)
    assert other.finished_hashes() >= set(hashes) | {H}
    assert other.present([hashes[5], "ef" * 16]) == {hashes[5]}
    assert other.load_value(hashes[7]) == {"i": 7} and other.result_meta(hashes[7])["name"] == "t.f"
    assert np.array_equal(other.load_value(H), np.arange(300_000.0))
    assert list(other.damaged(hashes[:50])) == []
    assert other.remove_result(hashes[3]) and not other.remove_result(hashes[3])
    assert hashes[3] not in open_store(store.url).finished_hashes()
    save(store, hashes[3], "again")
    assert open_store(store.url).load_value(hashes[3]) == "again"
    save(store, hashes[4], "replaced")
    assert open_store(store.url).load_value(hashes[4]) == "replaced"
    store.close_results()
    assert isinstance(open_store(store.url).compact(), dict)
    after = open_store(store.url)
    assert after.finished_hashes() >= set(hashes) | {H}
    assert [after.load_value(h) for h in hashes[:6]] == [{"i": 0}, {"i": 1}, {"i": 2}, "again", "replaced", {"i": 5}]
    assert other.load_value(hashes[1000]) == {"i": 1000}  # a reader from before the compaction


def test_a_damaged_result_is_never_returned_and_moves_aside(kind, store):
    save(store, H, list(range(1000)))
    kind.corrupt(store, H)
    with pytest.raises(CorruptResultError):
        store.load_value(H)
    with pytest.raises(CorruptResultError):
        store.load_value(H, fresh=True)
    with pytest.raises(CorruptResultError):
        store.verify_result(H)
    assert [h for h, _ in store.damaged([H])] == [H]
    store.mark_suspect(H, {"reason": "test"})
    where = store.move_aside(H)
    assert where
    assert not store.has_result(H) and H in store.moved_aside()
    assert not store.is_suspect(H), "moving aside drops the mark"
    assert store.move_aside(H) is None, "nothing left to move"


def test_an_intact_result_is_not_moved_aside(store):
    save(store, H, 1)
    assert store.move_aside(H) is None
    assert store.load_value(H) == 1


def test_mmap_loads_arrays_or_says_it_cannot(store):
    np = pytest.importorskip("numpy")
    save(store, H, np.arange(1000))
    try:
        got = store.load_value(H, mmap=True)
    except UsageError as e:
        assert "mmap" in str(e)
    else:
        assert (got == np.arange(1000)).all()


# -- suspect marks and failure records -------------------------------------------------

def test_suspect_marks(store):
    assert not store.is_suspect(H) and store.suspect_hashes() == set()
    store.mark_suspect(H, {"reason": "checksum", "host": "h"})
    assert store.is_suspect(H) and store.suspect_hashes() == {H}
    assert store.unmark_suspect(H)
    assert not store.unmark_suspect(H)
    assert not store.is_suspect(H)


def test_failure_records(store):
    assert store.load_failure(H) is None and store.failure_time(H) is None
    claims = store.claims()
    try:
        before = claims.now()
        store.save_failure(H, {"type": "ValueError", "message": "bad", "traceback": "tb"})
        recorded = store.failure_time(H)
        assert recorded is not None and recorded >= before - 2.0  # on the claims' clock (whole-second stamps)
    finally:
        claims.close()
    assert store.load_failure(H)["message"] == "bad"
    assert store.failed_hashes() == {H}
    store.save_failure(H, {"type": "KeyError", "message": "worse", "traceback": ""})
    assert store.load_failure(H)["type"] == "KeyError"
    assert store.remove_failure(H) and not store.remove_failure(H)
    assert store.failed_hashes() == set()


# -- claims ----------------------------------------------------------------------------

def test_a_claim_is_held_renewed_and_released_by_its_owner(store):
    mine, other = store.claims(lease=60, worker="me"), store.claims(lease=60, worker="other")
    try:
        claim = mine.claim(H)
        assert isinstance(claim, Claim) and claim.task_hash == H
        assert other.claim(H) is None and other.claim(H, take_over=False) is None
        assert mine.holds(claim) and mine.still_ours(claim)
        assert mine.renew(claim) and mine.still_ours(claim)
        info = other.inspect(H)
        assert info is not None and not info.stale and info.owner.get("worker") == "me"
        assert other.claimed() == {H} and other.owner(H).get("worker") == "me"
        assert mine.release(claim)
        assert claim.lost and not mine.holds(claim) and not mine.renew(claim) and not mine.release(claim)
        assert other.claimed() == set() and other.inspect(H) is None and other.owner(H) is None
        again = other.claim(H)
        assert again is not None and other.release(again)
    finally:
        mine.close()
        other.close()


def _stale(claims, task_hash: str) -> None:
    """Wait until `claims` judges the claim on the task stale, on the store's own clock."""
    deadline = time.monotonic() + 60
    while not ((info := claims.inspect(task_hash)) is not None and info.stale):
        assert time.monotonic() < deadline, "the claim never went stale"
        time.sleep(0.2)


def test_a_finished_tasks_claim_is_given_back_and_one_taken_over_is_left_to_its_taker(store):
    young, mine, other = (store.claims(lease=60, worker="me"), store.claims(lease=2, worker="me"),
                          store.claims(lease=2, worker="other"))
    try:
        claim = young.claim(H)
        assert claim is not None and young.release_finished(claim)
        assert claim.lost and not young.holds(claim) and not young.release_finished(claim)
        assert other.claimed() == set(), "given back"
        old = mine.claim(H)
        assert old is not None
        _stale(other, H)
        taken = other.claim(H)
        assert taken is not None
        assert not mine.release_finished(old), "no longer young: checked, and not ours"
        assert other.still_ours(taken) and other.release_finished(taken)
    finally:
        for claims in (young, mine, other):
            claims.close()


def test_only_the_owner_renews_or_releases_once_its_claim_was_taken_over(store):
    old, new = store.claims(lease=1, worker="old"), store.claims(lease=1, worker="new")
    try:
        first = old.claim(H)
        assert first is not None
        deadline = time.monotonic() + 60
        while True:  # until its lease runs out, on the store's own clock
            info = new.inspect(H)
            if info is not None and info.stale:
                break
            assert time.monotonic() < deadline, "the claim never went stale"
            time.sleep(0.2)
        second = new.claim(H)
        assert second is not None, "a stale claim is taken over"
        assert not old.renew(first) and first.lost
        assert not old.holds(first) and not old.still_ours(first)
        assert not old.release(first)
        assert new.still_ours(second) and new.inspect(H).owner.get("worker") == "new"
        assert new.release(second)
    finally:
        old.close()
        new.close()


def test_the_claims_clock_runs_forward(store):
    claims = store.claims()
    try:
        a = claims.now()
        b = claims.now()
        assert isinstance(a, float) and b >= a
    finally:
        claims.close()


def _use_a_pickled_claim(payload: bytes, out) -> None:
    claims, claim = pickle.loads(payload)
    try:
        out.put((claims.renew(claim), claims.holds(claim), claims.still_ours(claim), claims.release(claim)))
    finally:
        claims.close()


def test_a_claim_taken_in_one_process_is_renewed_and_released_in_another(store):
    claims = store.claims(lease=60)
    claim = claims.claim(H)
    assert claim is not None
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter, as an engine's worker is
    out = ctx.Queue()
    proc = ctx.Process(target=_use_a_pickled_claim, args=(pickle.dumps((claims, claim)), out))
    proc.start()
    got = out.get(timeout=120)
    proc.join(60)
    assert got == (True, True, True, True)
    assert claims.claimed() == set()
    claims.close()


def _race(url: str, start, hold, out) -> None:
    store = open_store(url)
    claims = store.claims(lease=60)
    start.wait(60)
    won = [(h, c) for h in HASHES if (c := claims.claim(h, take_over=False)) is not None]
    out.put([h for h, _ in won])
    hold.wait(120)  # keep every claim until all have tried: a released task may be claimed again
    for _, c in won:
        claims.release(c)
    claims.close()


def test_processes_racing_for_the_same_tasks_win_each_exactly_once(kind, store):
    ctx = multiprocessing.get_context("fork")
    racers = 4
    start, hold, out = ctx.Barrier(racers), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(kind.url, start, hold, out)) for _ in range(racers)]
    for p in procs:
        p.start()
    won = [out.get(timeout=120) for _ in procs]
    hold.set()
    for p in procs:
        p.join(60)
    assert sorted(h for got in won for h in got) == sorted(HASHES), "every task claimed exactly once"
    assert store.claims().claimed() == set()


def _claim_and_hang(url: str, ready) -> None:
    store = open_store(url)
    claims = store.claims(lease=300)
    assert claims.claim(H) is not None
    journal = store.journal()
    journal.add(H)
    journal.flush()
    ready.set()
    time.sleep(600)


def _take_over(url: str, start, out) -> None:
    claims = open_store(url).claims(lease=300)
    start.wait(60)
    claim = claims.claim(H)
    out.put(claim is not None)
    time.sleep(2)  # hold it while the others try


def _killed_owner(kind) -> None:
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    owner = ctx.Process(target=_claim_and_hang, args=(kind.url, ready))
    owner.start()
    assert ready.wait(60)
    os.kill(owner.pid, signal.SIGKILL)
    owner.join(60)


def test_the_claim_of_a_killed_owner_is_taken_over_by_exactly_one_racer(kind, store):
    _killed_owner(kind)
    info = store.claims(reader=True).inspect(H)
    assert info is not None and info.stale, "an owner killed on this host leaves a stale claim at once"
    ctx = multiprocessing.get_context("fork")
    racers = 4
    start, out = ctx.Barrier(racers), ctx.Queue()
    procs = [ctx.Process(target=_take_over, args=(kind.url, start, out)) for _ in range(racers)]
    for p in procs:
        p.start()
    wins = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    assert wins.count(True) == 1, wins


def test_a_stale_claim_is_removed_only_as_judged(kind, store):
    _killed_owner(kind)
    claims = store.claims()
    try:
        info = claims.inspect(H)
        assert info is not None and info.stale
        assert claims.remove_stale(info)
        assert claims.claimed() == set()
        assert not claims.remove_stale(info), "gone already"
        fresh = claims.claim(H)
        assert fresh is not None
        assert not claims.remove_stale(info), "a new claim is not the one judged"
        assert claims.still_ours(fresh)
        claims.release(fresh)
    finally:
        claims.close()


def test_a_reader_judges_claims(store):
    worker, reader = store.claims(lease=60), store.claims(reader=True)
    claim = worker.claim(H)
    info = reader.inspect(H)
    assert info is not None and not info.stale and info.age < 60
    assert 0 < info.left <= 60 and abs(info.left + info.age - 60) < 5, "live for the rest of its lease"
    worker.release(claim)
    worker.close()
    reader.close()


def test_a_stale_claim_has_no_time_left(store):
    old, other = store.claims(lease=1, worker="old"), store.claims(lease=60, worker="other")
    try:
        claim = old.claim(H)
        assert claim is not None
        _stale(other, H)
        info = other.inspect(H)
        assert info is not None and info.stale and info.left == 0
        old.release(claim)
    finally:
        old.close()
        other.close()


# -- attempts whose worker died ----------------------------------------------------

def _take_over_and_give_back(url: str, start, out) -> None:
    claims = open_store(url).claims(lease=300)
    start.wait(60)
    claim = claims.claim(H)
    out.put(None if claim is None else claim.died)
    time.sleep(1)  # hold it while the others try
    if claim is not None:
        claims.release(claim)


def test_each_dead_worker_is_counted_once_by_the_racer_that_takes_its_claim_over(kind, store):
    ctx = multiprocessing.get_context("fork")
    for n in (1, 2):
        _killed_owner(kind)
        start, out = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_take_over_and_give_back, args=(kind.url, start, out)) for _ in range(4)]
        for p in procs:
            p.start()
        wins = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(60)
        won = [w for w in wins if w is not None]
        # The winner sees the count with this death; a folder store's racer may claim the task in
        # the instant between the takeover moving the dead claim and making its own (0): the death
        # counts all the same, and the next takeover sees it.
        assert len(won) == 1 and won[0] in (n, 0), wins
        deaths = store.deaths(H)
        assert len(deaths) == n
        assert all(isinstance(d["owner"].get("pid"), int) and d["reason"] and d["time"] for d in deaths)
    assert store.died_hashes() == {H}
    assert store.forget_deaths(H) == 2
    assert store.deaths(H) == [] and store.died_hashes() == set() and store.forget_deaths(H) == 0


def test_a_claim_given_back_counts_no_death(store):
    claims = store.claims(lease=60)
    try:
        for _ in range(3):
            claim = claims.claim(H)
            assert claim is not None and claim.died == 0
            assert claims.release(claim)
        assert store.deaths(H) == [] and store.died_hashes() == set()
    finally:
        claims.close()


def test_a_claim_never_given_back_counts_when_the_next_one_replaces_it_and_not_once_its_owner_is_back(store):
    old, new = store.claims(lease=1, worker="old"), store.claims(lease=60, worker="new")
    try:
        first = old.claim(H)
        assert first is not None
        time.sleep(2.5)  # past two leases: a store that drops stale claims has dropped it
        second = new.claim(H)
        assert second is not None and second.died == 1, "the claim before was never given back"
        assert [d["owner"].get("worker") for d in store.deaths(H)] == ["old"]
        assert not old.renew(first), "its owner comes back to find it taken over..."
        assert store.deaths(H) == [], "...so it did not die: its attempt does not count"
        assert new.release(second)
    finally:
        old.close()
        new.close()


# -- batches: claims, results and records of many short tasks at once ---------------------

def test_a_batch_claims_only_the_tasks_nobody_holds_each_a_claim_of_its_own(store):
    a, b, c = (store.claims(lease=60, worker=w) for w in ("a", "b", "c"))
    try:
        assert a.claim_batch([]) == []
        plain = b.claim(HASHES[2])
        assert plain is not None
        got = a.claim_batch(HASHES[:6])
        assert [m.task_hash for m in got] == [h for h in HASHES[:6] if h != HASHES[2]], "in the order asked"
        assert all(isinstance(m, Claim) for m in got)
        assert all(a.holds(m) and a.still_ours(m) for m in got)
        assert b.still_ours(plain), "the other owner's claim is left alone"
        # A second batch over tasks partly held gets the free ones alone, still in order.
        more = c.claim_batch(HASHES[4:9])
        assert [m.task_hash for m in more] == HASHES[6:9]
        assert c.claim_batch(HASHES[:9]) == [] and b.claim(HASHES[0]) is None, "a live member is never taken"
        assert a.claimed() == set(HASHES[:9])
        info = b.inspect(HASHES[0])
        assert info is not None and not info.stale and info.owner.get("worker") == "a"
        assert b.owner(HASHES[1]).get("worker") == "a", "a member shows the batch's owner"
        assert all(m.died == 0 for m in got + more), "no worker died"
        a.release_all(got)
        c.release_all(more)
        assert b.release(plain) and a.claimed() == set()
    finally:
        for claims in (a, b, c):
            claims.close()


def test_a_batch_never_takes_over_a_stale_claim(kind, store):
    _killed_owner(kind)  # leaves a claim on H, stale at once
    claims = store.claims(lease=60)
    try:
        info = claims.inspect(H)
        assert info is not None and info.stale
        got = claims.claim_batch([HASHES[0], H, HASHES[1]])
        assert [m.task_hash for m in got] == HASHES[:2], "a stale claim is left for `claim` to take over"
        assert claims.inspect(H).raw == info.raw and store.deaths(H) == [], "nothing taken, nothing counted"
        claims.release_all(got)
        assert claims.claimed() == {H}
    finally:
        claims.close()


def test_renewing_a_batch_keeps_every_member_held_past_its_lease(store):
    mine, other = store.claims(lease=2, worker="me"), store.claims(lease=2, worker="other")
    try:
        assert mine.renew_all([])
        got = mine.claim_batch(HASHES[:4])
        assert len(got) == 4
        until = time.monotonic() + 5  # past two leases: the Redis server would have dropped them unrenewed
        while time.monotonic() < until:
            assert mine.renew_all(got)
            assert not any(other.inspect(h).stale for h in HASHES[:4])
            time.sleep(0.4)
        assert [other.claim(h) for h in HASHES[:4]] == [None] * 4, "renewed: nobody takes them over"
        assert all(mine.holds(m) and mine.still_ours(m) and not m.lost for m in got)
        mine.release_all(got)
    finally:
        mine.close()
        other.close()


def test_a_stale_batch_is_taken_over_member_by_member_and_what_is_left_stays_its_owners(store):
    old, new, third = (store.claims(lease=1, worker=w) for w in ("old", "new", "third"))
    try:
        got = old.claim_batch(HASHES[:3])
        assert len(got) == 3
        _stale(new, HASHES[1])
        taken = new.claim(HASHES[1])
        assert taken is not None and taken.died == 1, "the batch was never given back"
        assert len(store.deaths(HASHES[1])) == 1
        assert store.deaths(HASHES[0]) == [] and store.deaths(HASHES[2]) == [], "counted for that member alone"
        for m in got:
            m.made -= 60  # old on the owner's side too: every answer below is a look at the store
        assert not old.holds(got[1]) and got[1].why
        assert store.deaths(HASHES[1]) == [], "its owner is back: its attempt did not die"
        assert old.holds(got[0]) and old.holds(got[2]), "the other members are still the owner's"
        old.renew_all(got)
        assert new.still_ours(taken), "renewing the batch never writes into the taker's claim"
        old.release_all(got)
        assert new.still_ours(taken), "nor does releasing it"
        assert old.claimed() == {HASHES[1]}
        back = third.claim_batch([HASHES[0], HASHES[2]])
        assert [m.task_hash for m in back] == [HASHES[0], HASHES[2]], "the rest is free at once"
        third.release_all(back)
        assert new.release(taken)
    finally:
        for claims in (old, new, third):
            claims.close()


def test_renewing_a_batch_answers_false_once_any_member_was_taken_over(store):
    old, new = store.claims(lease=1, worker="old"), store.claims(lease=60, worker="new")
    try:
        got = old.claim_batch(HASHES[:3])
        _stale(new, HASHES[1])
        taken = new.claim(HASHES[1])
        assert taken is not None
        for m in got:
            m.made -= 60
        assert not old.renew_all(got), "a claim of it was lost"
        assert got[1].lost and not got[0].lost and not got[2].lost
        assert not old.renew(got[1]) and old.renew(got[0]), "the lost member alone answers False"
        assert not old.holds(got[1]) and old.holds(got[0]) and old.holds(got[2])
        assert new.still_ours(taken)
        assert new.owner(HASHES[1]).get("worker") == "new", "the renewals left the taker's claim alone"
        old.release_all(got)
        assert new.release(taken)
    finally:
        old.close()
        new.close()


def test_renewing_a_batch_whose_members_were_given_back_keeps_the_rest(store):
    mine, other = store.claims(lease=60, worker="me"), store.claims(lease=60, worker="other")
    try:
        got = mine.claim_batch(HASHES[:4])
        save(store, HASHES[0], "done")
        assert mine.release_finished(got[0]) and mine.release(got[1])
        for m in got:
            m.made -= 120  # old enough that holds() looks at the files
        assert mine.renew_all(got[2:]), "the members still held are renewed"
        assert not got[2].lost and not got[3].lost
        assert mine.holds(got[2]) and mine.holds(got[3])
        assert other.claim(HASHES[2], take_over=False) is None
        mine.release_all(got)
        assert other.claimed() == set()
    finally:
        mine.close()
        other.close()


def test_members_given_back_one_by_one_then_the_batch_leave_every_task_free(store):
    mine, other = store.claims(lease=60, worker="me"), store.claims(lease=60, worker="other")
    try:
        mine.release_all([])
        got = mine.claim_batch(HASHES[:4])
        save(store, HASHES[0], "done")
        assert mine.release_finished(got[0]), "a finished member is given back on its own"
        assert got[0].lost and not mine.holds(got[0]) and not mine.release_finished(got[0])
        assert other.claimed() == set(HASHES[1:4])
        first = other.claim(HASHES[0])
        assert first is not None, "free at once, while the batch goes on"
        assert mine.release(got[1]) and got[1].lost
        assert all(mine.holds(m) for m in got[2:]), "the others are still held"
        mine.release_all(got)
        assert all(m.lost for m in got) and other.claimed() == {HASHES[0]}
        rest = other.claim_batch(HASHES[:4])
        assert [m.task_hash for m in rest] == HASHES[1:4], "each released member can be claimed again"
        other.release_all(rest + [first])
        assert other.claimed() == set()
    finally:
        mine.close()
        other.close()


@pytest.mark.parametrize("large_graph", [False, True], ids=["one-by-one", "large-graph"])
def test_results_saved_together_are_each_saved_as_by_save_payload(store, monkeypatch, large_graph):
    # A worker of a large graph says so first: the folder store then writes a batch's small
    # results into a pack at once, which is where `save_payloads` differs from a loop.
    if large_graph:
        monkeypatch.setenv("TASKFLOW_PACK", "1")
        store.expect_results(5000)
    assert isinstance(store.saves_together, bool)
    assert store.save_payloads([]) == []
    values = [b"x" * n for n in (10, 1000, 200 << 10)] + [{"i": i} for i in range(5)]
    items = [(h, encoding.Payload(v, meta("t.g", hash=h))) for h, v in zip(HASHES, values, strict=False)]
    save(store, items[1][0], "old")
    sizes = store.save_payloads(items)
    # The same payloads saved one at a time, under other hashes by a client that packs nothing.
    alone = [open_store(store.url).save_payload(h, p) for h, (_, p) in zip(HASHES[10:], items, strict=False)]
    assert sizes == alone, "in the order given, each what save_payload answers"
    assert sizes[0] < sizes[1] < sizes[2]
    reader = open_store(store.url)
    assert [reader.load_value(h) for h, _ in items] == values, "saved over: replaced whole"
    assert reader.finished_hashes() >= {h for h, _ in items}
    assert reader.result_meta(items[3][0])["name"] == "t.g"
    assert list(reader.damaged([h for h, _ in items])) == []
    assert reader.code_tags("t.g") == {store.code_tag("c0de", None)}
    store.close_results()


def test_finished_among_is_exactly_the_asked_tasks_with_a_result_now(store):
    reader = open_store(store.url)
    assert reader.finished_among([]) == set()
    assert reader.finished_among(HASHES[:4]) == set()
    for h in HASHES[:3]:
        save(store, h, h)  # by another client, after the reader first looked
    store.remove_result(HASHES[1])
    asked = HASHES[:6] + [HASHES[0], H]  # a duplicate, and hashes never seen
    assert reader.finished_among(asked) == {HASHES[0], HASHES[2]}
    assert reader.finished_among(asked) == {h for h in asked if reader.has_result(h)}
    store.save_failure(HASHES[4], {"type": "E", "message": "m", "traceback": ""})
    assert HASHES[4] not in reader.finished_among(asked), "a failure is no result"


def test_failed_among_is_exactly_the_asked_tasks_with_a_failure_record_now(store):
    reader = open_store(store.url)
    assert reader.failed_among([]) == set()
    assert reader.failed_among(HASHES[:4]) == set()
    for h in HASHES[:3]:
        store.save_failure(h, {"type": "ValueError", "message": h, "traceback": ""})
    assert store.remove_failure(HASHES[1])
    save(store, HASHES[3], "a result is no failure")
    asked = HASHES[:6] + [HASHES[2], H]
    assert reader.failed_among(asked) == {HASHES[0], HASHES[2]}
    assert reader.failed_among(asked) == {h for h in asked if reader.failure_time(h) is not None}


# -- journals, completion records, code markers, jobs, STOP, leftovers -----------------

def test_journals_tell_other_workers_what_finished(store):
    reader = store.news()
    reader.start()
    assert not reader.journals_seen()
    journal = store.journal()
    for h in HASHES[:3]:
        journal.add(h)
    journal.flush()
    assert journal.ident
    assert reader.news() == set(HASHES[:3])
    assert reader.news() == set(), "news only once"
    journal.add(HASHES[3])
    journal.flush()
    assert reader.news(skip=journal.ident) == set(), "one's own journal is skipped"
    assert set(HASHES[:4]) <= store.journaled()
    late = store.news()
    late.start()
    assert late.journals_seen() and not late.journals_seen(skip=journal.ident)
    assert late.news() == set(), "what was journaled before start is not news"
    journal.close()
    assert not set(HASHES[:4]) & store.journaled()


def test_completion_records(store):
    digest = "0f" * 16
    assert not store.complete_recorded(digest) and store.complete_digests() == set()
    store.record_complete(digest, {"tasks": 3})
    store.record_complete(digest, {"tasks": 3})
    assert store.complete_recorded(digest) and store.complete_digests() == {digest}
    assert store.forget_complete(digest) and not store.forget_complete(digest)
    assert not store.complete_recorded(digest)


def test_code_markers_name_the_code_that_saved_results(store):
    store.save_payload(H, encoding.Payload(1, {"name": "t.f", "hash": H, "code": "abc", "version": "2"}))
    tag = store.code_tag("abc", "2")
    assert store.code_tags("t.f") == {tag}
    store.forget_code("t.f", tag)
    store.forget_code("t.f", tag)
    assert store.code_tags("t.f") == set()


def test_jobs_have_a_local_folder(store):
    assert os.path.isabs(store.jobs_folder())


def test_stop(store):
    assert not store.stop_requested()
    store.request_stop()
    assert store.stop_requested()
    store.request_stop(False)
    store.request_stop(False)
    assert not store.stop_requested()


def test_worker_records_are_published_replaced_and_aged_on_the_stores_clock(store):
    assert store.worker_records() == []
    store.ensure()
    store.publish_worker("host-a:12", {"running": True, "interval": 30, "capacity": {"cpus": 4}})
    store.publish_worker("slurm:99.3", {"running": True, "interval": 30, "walltime_skips": 0})
    store.publish_worker("slurm:99.3", {"running": False, "interval": 30, "walltime_skips": 2})
    records = {w.ident: w for w in store.worker_records()}
    assert set(records) == {"host-a:12", "slurm:99.3"}
    assert records["host-a:12"].record["capacity"] == {"cpus": 4}
    assert records["slurm:99.3"].record["walltime_skips"] == 2  # replaced, not added
    assert all(0 <= w.age < 30 for w in records.values())
    assert records["host-a:12"].live and not records["slurm:99.3"].live  # the second said it exited
    time.sleep(1.1)
    again = {w.ident: w for w in open_store(store.url).worker_records()}
    assert again["host-a:12"].age >= 1.0 - 0.05
    store.withdraw_worker("host-a:12")
    store.withdraw_worker("host-a:12")
    assert [w.ident for w in store.worker_records()] == ["slurm:99.3"]


def test_a_worker_record_older_than_three_intervals_is_not_live(store):
    store.ensure()
    store.publish_worker("w", {"running": True, "interval": 0.2})
    time.sleep(0.7)
    [record] = store.worker_records()
    assert not record.live


def test_leftovers_of_a_killed_worker_are_listed_and_removed(kind, store):
    for what in LEFTOVER_KINDS:
        assert store.leftovers(what) == [], what
    _killed_owner(kind)
    journals = store.leftovers("journal")
    assert len(journals) == 1 and journals[0].label
    assert store.remove_leftover(journals[0])
    assert store.leftovers("journal") == []
    assert H not in store.journaled()


def test_leftovers_of_a_running_worker_are_kept(store):
    journal = store.journal()
    journal.add(H)
    journal.flush()
    assert store.leftovers("journal") == []
    journal.close()


def test_the_cli_names_an_unknown_kind_of_store_in_one_line(tmp_path):
    from conftest import run_cli, write_taskfile

    tf = write_taskfile(tmp_path, "from taskflow import Task\n\ndef f():\n    return 1\n\nt = Task(f)\n")
    proc = run_cli("status", tf, "--store", "nosuch://somewhere/db", check=ExitCode.USAGE)
    assert proc.stderr.strip().count("\n") == 0 and "nosuch://somewhere/db" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- signed results (signing.py) ---------------------------------------------------------

def test_with_a_key_results_and_failures_are_signed_and_those_written_without_it_refused(kind, store):
    from taskflow.errors import UnsignedResultError
    from taskflow.resign import sign_store
    from taskflow.signing import Key

    signed = open_store(kind.url)
    signed.use_key(Key(b"k" * 32, "(test key)"))
    save(signed, H, [1, 2])
    signed.save_failure(HASHES[0], {"type": "E", "message": "signed", "traceback": ""})
    save(store, HASHES[1], "unsigned")
    store.save_failure(HASHES[2], {"type": "E", "message": "unsigned", "traceback": ""})
    assert signed.load_value(H) == [1, 2] and store.load_value(H) == [1, 2]
    signed.verify_result(H)
    with pytest.raises(UnsignedResultError, match="not signed"):
        signed.load_value(HASHES[1])
    with pytest.raises(UnsignedResultError):
        signed.verify_result(HASHES[1])
    assert signed.failed_hashes() == {HASHES[0]} and store.failed_hashes() == {HASHES[0], HASHES[2]}
    assert signed.load_failure(HASHES[2]) is None and signed.failure_time(HASHES[2]) is None
    assert signed.failure_time(HASHES[0]) is not None

    done = sign_store(signed, None, unsigned=True)
    assert (done.results, done.failures, done.already, done.refused) == (1, 1, 1, [])
    assert signed.load_value(HASHES[1]) == "unsigned" and signed.failed_hashes() == {HASHES[0], HASHES[2]}
    newer = open_store(kind.url)
    newer.use_key(Key(b"n" * 32, "(new key)"))
    done = sign_store(newer, signed.key)
    assert (done.results, done.failures) == (2, 2)
    assert newer.load_value(H) == [1, 2] and newer.failed_hashes() == {HASHES[0], HASHES[2]}
    with pytest.raises(UnsignedResultError, match="signed with key"):
        signed.load_value(H)
    save(store, H, "forged")
    assert signed.move_aside(H) is not None
    with pytest.raises(FileNotFoundError):
        signed.load_value(H)


def test_with_a_key_a_claim_made_without_it_is_stale_at_once_and_a_signed_one_holds(kind, store):
    from taskflow.signing import Key

    signed = open_store(kind.url)
    signed.use_key(Key(b"k" * 32, "(test key)"))
    plain = store.claims(lease=600)
    assert plain.claim(H) is not None and store.claims(lease=600).claim(H) is None, "live without a key"
    info = signed.claims(lease=600).inspect(H)
    assert info.stale and info.reason == "a claim not signed, and this store's results must be signed with key " \
                                         f"{signed.key.id}"
    mine = signed.claims(lease=600).claim(H)
    assert mine is not None
    assert signed.claims(lease=600).claim(H) is None and signed.claims(lease=600).inspect(H).reason == "live"
    assert store.claims(lease=600).claim(H) is None, "a worker without a key leaves a signed claim alone"
