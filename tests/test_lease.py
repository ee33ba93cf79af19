"""Claims of the folder store (taskflow.stores.folder.claims): claim, release, ownership checks, staleness, takeover."""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import subprocess
import sys
import time

import pytest

from taskflow.stores.folder import takeover
from taskflow.stores.folder.claims import FS_TIME_SLACK, FolderClaims as Leases

from taskflow.stores.identity import BOOT_ID, pid_alive

from taskflow.stores.lease import Heartbeat
from taskflow.stores.folder import FolderStore as Store
from taskflow.stores.identity import HOST

H = "ab" * 20
HOUR = 3600.0


def foreign_owner(task_hash: str = H, lease: float = 2.0) -> dict:
    return {"host": "far-away-node", "boot": "another-boot", "pid": 4242, "worker": "far:4242",
            "started": time.time(), "lease": lease, "task": task_hash, "token": "0" * 32}


def write_lock(store: Store, owner: dict | bytes, age: float = 0.0, task_hash: str = H) -> str:
    """A claim file as another worker would have left it, last renewed `age` seconds ago."""
    store.ensure()
    path = store.lock_path(task_hash)
    with open(path, "wb") as f:
        f.write(owner if isinstance(owner, bytes) else json.dumps(owner).encode())
    if age:
        t = time.time() - age
        os.utime(path, (t, t))
    return path


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(str(tmp_path / "store"))
    s.ensure()
    return s


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# -- claim and release ---------------------------------------------------------


def test_claim_is_exclusive_until_released(store):
    a, b = Leases(store, lease=10, worker="a"), Leases(store, lease=10, worker="b")
    claim = a.claim(H)
    assert claim is not None and os.path.exists(claim.path)
    assert b.claim(H) is None and b.claim(H, take_over=False) is None
    assert a.claim(H) is None, "a claim is not re-entrant"
    assert a.release(claim)
    assert not os.path.exists(claim.path)
    again = b.claim(H)
    assert again is not None and read(again.path) == again.content


def test_claim_records_owner_and_is_live(store):
    leases = Leases(store, lease=7, worker="me")
    claim = leases.claim(H)
    info = Leases(store, lease=1).inspect(H)
    assert info is not None and not info.stale and info.reason == "live"
    assert info.owner["host"] == HOST and info.owner["boot"] == BOOT_ID and info.owner["pid"] == os.getpid()
    assert info.owner["worker"] == "me" and info.owner["lease"] == 7 and info.owner["task"] == H
    assert -1 < info.age < 5
    assert Leases(store).inspect("cd" * 20) is None
    leases.release(claim)
    assert leases.inspect(H) is None


def test_two_claims_differ_even_from_one_worker(store):
    leases = Leases(store, lease=10)
    first = leases.claim(H)
    leases.release(first)
    second = leases.claim(H)
    assert first.content != second.content, "each claim carries its own token"
    assert not leases.holds(first), "an old claim object must not count as the new claim"
    assert leases.holds(second)


def test_release_leaves_a_claim_that_is_no_longer_ours(store, caplog):
    a = Leases(store, lease=10, worker="a")
    claim = a.claim(H)
    claim.made -= 3600  # only a claim older than its lease can be taken over
    other = json.dumps(foreign_owner()).encode()
    tmp = claim.path + ".new"
    with open(tmp, "wb") as f:
        f.write(other)
    os.replace(tmp, claim.path)  # as a takeover leaves it
    with caplog.at_level(logging.WARNING, logger="taskflow"):
        assert a.release(claim) is False
    assert read(claim.path) == other
    assert claim.lost
    assert "no longer ours" in caplog.text


@pytest.mark.parametrize("claim_age", ["young", "old"])
def test_release_frozen_after_its_check_leaves_the_takers_claim(store, monkeypatch, claim_age):
    """The owner checks its claim, then freezes past its lease before removing it; another
    worker takes over meanwhile. The owner must not remove that worker's live claim."""
    a = Leases(store, lease=10, worker="a")
    b = Leases(store, lease=10, worker="b")
    mine = a.claim(H)
    if claim_age == "old":
        mine.made -= 3600  # old enough to be read when checked
    taken = []

    def freeze_then_take_over():
        mine.made -= 3600  # the freeze: the owner's claim is no longer young
        old = time.time() - 60
        os.utime(mine.path, (old, old))  # nor renewed for a whole lease
        taken.append(b.claim(H))
        assert taken[0] is not None, "the frozen owner's claim is stale and taken over"

    real_rename = os.rename
    real_unlink = os.unlink
    frozen = []

    def at_the_claim(real):
        def call(src, *args, **kwargs):
            if os.fspath(src) == mine.path and not frozen:
                frozen.append(True)
                freeze_then_take_over()  # between the owner's check and its removal or move
            return real(src, *args, **kwargs)
        return call

    monkeypatch.setattr(os, "rename", at_the_claim(real_rename))
    monkeypatch.setattr(os, "unlink", at_the_claim(real_unlink))
    assert a.release(mine) is False
    monkeypatch.undo()
    assert b.holds(taken[0]) and read(store.lock_path(H)) == taken[0].content
    assert Leases(store, lease=10, worker="c").claim(H) is None, "the task is still claimed, by b"
    assert os.listdir(store.locks_dir) == [H]


def test_holds_reads_the_file_once_the_claim_could_have_been_taken_over(store):
    leases = Leases(store, lease=300)
    claim = leases.claim(H)
    assert leases.holds(claim) and leases.still_ours(claim)
    claim.made -= 150 - FS_TIME_SLACK  # half a lease old (less the time-stamp slack): others may judge it
    os.unlink(claim.path)
    assert not leases.still_ours(claim)
    # A claim file that vanished with no result in the store was deleted, not taken over
    # (a takeover leaves a claim in its place): it is made again, and held.
    assert leases.holds(claim) and read(claim.path) == claim.content
    os.unlink(claim.path)
    store.save_result(H, 42, {"name": "t"})
    assert not leases.holds(claim), "a claim whose file is gone while the task is finished is not held"
    claim.lost = False
    write_lock(store, foreign_owner())
    assert not leases.holds(claim)
    assert not leases.renew(claim) and claim.lost


def test_young_claim_is_held_without_a_look_until_released(store, monkeypatch):
    leases = Leases(store, lease=300)
    claim = leases.claim(H)
    monkeypatch.setattr(leases, "still_ours", lambda c: pytest.fail("read a claim nobody could have taken yet"))
    assert leases.holds(claim)
    assert leases.release(claim) and not os.path.exists(claim.path)
    assert not leases.holds(claim), "a released claim is not held"
    assert not leases.release(claim)


def test_short_lease_claims_are_always_read(store):
    leases = Leases(store, lease=2)  # half a lease is within the time-stamp slack
    claim = leases.claim(H)
    os.unlink(claim.path)
    write_lock(store, foreign_owner())  # taken over at once: only reading the file tells
    assert not leases.holds(claim)


# -- renewal ---------------------------------------------------------------------


def test_renew_touches_the_file_and_keeps_its_content(store):
    leases = Leases(store, lease=2)
    claim = leases.claim(H)
    old = time.time() - 100
    os.utime(claim.path, (old, old))
    assert Leases(store).inspect(H).stale
    assert leases.renew(claim)
    info = Leases(store).inspect(H)
    assert not info.stale and info.age < 5
    assert read(claim.path) == claim.content


def test_renewal_changes_the_bytes_so_every_client_can_see_it(store):
    """Other clients of a network filesystem may see a stale mtime, but a renewal also
    changes the file's bytes: a counter rewritten in place, the rest of the claim alike."""
    leases = Leases(store, lease=2)
    claim = leases.claim(H)
    seen = [read(claim.path)]
    for _ in range(3):
        assert leases.renew(claim)
        seen.append(read(claim.path))
    assert len(set(seen)) == 4, "each renewal leaves other bytes"
    assert len({len(b) for b in seen}) == 1, "rewritten in place: the size stays"
    records = [json.loads(b) for b in seen]
    assert [r.pop("renewal") for r in records] == ["00000000", "00000001", "00000002", "00000003"]
    assert all(r == records[0] for r in records), "owner, token and start stay the same"
    assert leases.holds(claim) and leases.still_ours(claim)
    assert leases.release(claim) and os.listdir(store.locks_dir) == []


def test_a_claim_renewed_while_its_owner_checks_it_stays_ours(store):
    """The heartbeat thread renews while the main thread checks: a check must never
    mistake its own claim at another renewal for another worker's."""
    leases = Leases(store, lease=2)
    claim = leases.claim(H)
    stale_copy = claim.content
    assert leases.renew(claim)
    import dataclasses
    before_renewal = dataclasses.replace(claim, content=stale_copy, renewals=0)
    assert leases.still_ours(before_renewal) and leases.holds(before_renewal)


def test_renew_never_touches_a_claim_that_replaced_ours(store):
    leases = Leases(store, lease=2)
    claim = leases.claim(H)
    path = write_lock(store, foreign_owner(), age=100)
    before = os.stat(path).st_mtime_ns
    assert leases.renew(claim) is False and claim.lost
    assert os.stat(path).st_mtime_ns == before, "renewing must not keep someone else's claim alive"
    assert Leases(store).inspect(H).stale


def test_heartbeat_keeps_a_claim_live_and_stops_when_unwatched(store):
    leases = Leases(store, lease=1.0)
    claim = leases.claim(H)
    beat = Heartbeat(leases)
    try:
        beat.watch(claim)
        judge = Leases(store, lease=1.0)
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            info = judge.inspect(H)
            assert not info.stale, f"claim went stale under a running heartbeat (age {info.age:.2f}s)"
            time.sleep(0.05)
        beat.watch(None)
        time.sleep(0.3)  # a renewal already under way may still land
        first = os.stat(claim.path).st_mtime_ns
        time.sleep(0.8)  # three renewal intervals
        assert os.stat(claim.path).st_mtime_ns == first, "an unwatched claim must not be renewed"
        assert read(claim.path) == claim.content
    finally:
        beat.stop()


# -- judging staleness -------------------------------------------------------------


def test_foreign_claim_is_judged_by_age_against_its_own_lease(store):
    judge = Leases(store, lease=1000)
    write_lock(store, foreign_owner(lease=5), age=1)
    info = judge.inspect(H)
    assert not info.stale and 0 < info.age < 4
    write_lock(store, foreign_owner(lease=5), age=30)
    info = judge.inspect(H)
    assert info.stale and "not renewed for 30s (lease 5s)" in info.reason
    assert 28 < info.age < 33


def test_claim_of_dead_process_on_this_host_is_stale_at_once(store):
    owner = dict(foreign_owner(lease=1000), host=HOST, boot=BOOT_ID, pid=dead_pid())
    write_lock(store, owner)
    info = Leases(store).inspect(H)
    assert info.stale and "is gone" in info.reason
    # The same pid on another boot of this host (or another host) says nothing about liveness.
    write_lock(store, dict(owner, boot="another-boot"))
    assert not Leases(store).inspect(H).stale
    write_lock(store, dict(owner, host="far-away-node", boot=BOOT_ID))
    assert not Leases(store).inspect(H).stale


def test_claim_of_live_process_on_this_host_is_live(store):
    owner = dict(foreign_owner(lease=1000), host=HOST, boot=BOOT_ID, pid=os.getppid())
    write_lock(store, owner)
    assert not Leases(store).inspect(H).stale


def test_unreaped_child_counts_as_dead(store):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert pid_alive(child.pid)
        child.kill()
        deadline = time.monotonic() + 30
        while pid_alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not pid_alive(child.pid), "a zombie must count as dead"
        write_lock(store, dict(foreign_owner(lease=1000), host=HOST, boot=BOOT_ID, pid=child.pid))
        assert Leases(store).inspect(H).stale
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize("content", [b"", b"{\"host\": \"far\"", b"[1, 2]", b"\xff\xfe",
                                     json.dumps({"lease": "soon", "host": "far"}).encode()])
def test_damaged_or_half_written_claim_is_judged_by_age_alone(store, content):
    judge = Leases(store, lease=5)
    write_lock(store, content)
    info = judge.inspect(H)
    assert not info.stale, "a claim being written right now must not be taken over"
    write_lock(store, content, age=60)
    assert judge.inspect(H).stale
    claim = judge.claim(H)
    assert claim is not None and read(claim.path) == claim.content


# -- taking over ------------------------------------------------------------------------


def test_stale_claim_is_taken_over(store, caplog):
    write_lock(store, foreign_owner(), age=60)
    leases = Leases(store, lease=10, worker="taker")
    assert leases.claim(H, take_over=False) is None, "without take_over a claim is never judged"
    with caplog.at_level(logging.WARNING, logger="taskflow"):
        claim = leases.claim(H)
    assert claim is not None and read(claim.path) == claim.content
    assert "took over stale claim" in caplog.text and "far:4242" in caplog.text
    assert sorted(os.listdir(store.locks_dir)) == [H], "no takeover leftovers"


def test_live_claim_is_never_taken_over(store):
    write_lock(store, foreign_owner(lease=60), age=10)
    assert Leases(store, lease=1).claim(H) is None
    assert json.loads(read(store.lock_path(H)))["worker"] == "far:4242"


def test_remove_stale_spares_a_claim_renewed_after_it_was_judged(store):
    owner_leases = Leases(store, lease=2, worker="owner")
    claim = owner_leases.claim(H)
    old = time.time() - 100
    os.utime(claim.path, (old, old))
    judge = Leases(store, lease=2)
    info = judge.inspect(H)
    assert info.stale
    assert owner_leases.renew(claim)  # the frozen owner wakes up
    assert judge.remove_stale(info) is False
    assert owner_leases.holds(claim)
    assert sorted(os.listdir(store.locks_dir)) == [H]


def test_remove_stale_spares_a_claim_that_replaced_the_judged_one(store):
    write_lock(store, foreign_owner(), age=60)
    judge = Leases(store, lease=2)
    info = judge.inspect(H)
    winner = Leases(store, lease=2, worker="winner")
    won = winner.claim(H)
    assert won is not None
    assert judge.remove_stale(info) is False
    assert winner.holds(won)


def test_slow_racer_never_moves_the_winners_claim(store, monkeypatch):
    """A racer that judged the old file stale and acts only after the winner
    claimed must leave the winner's claim in place: if it moved it away even
    briefly, a third worker could claim the task in that moment."""
    write_lock(store, foreign_owner(), age=60)
    slow = Leases(store, lease=10, worker="slow")
    judged = slow.inspect(H)
    assert judged.stale
    winner = Leases(store, lease=10, worker="winner")
    won = winner.claim(H)
    assert won is not None

    third = Leases(store, lease=10, worker="third")
    grabbed = []
    real_rename = os.rename

    def rename(src, dst, *args, **kwargs):
        real_rename(src, dst, *args, **kwargs)
        if os.fspath(src) == store.lock_path(H):
            grabbed.append(third.claim(H, take_over=False))  # a worker arriving at that moment

    monkeypatch.setattr(os, "rename", rename)
    assert slow.claim(H) is None
    assert slow.remove_stale(judged) is False
    monkeypatch.undo()
    holders = [c for c in [won, *grabbed] if c is not None]
    assert holders == [won], "exactly the winner holds the claim"
    assert winner.holds(won)
    assert read(store.lock_path(H)) == won.content


def _die_holding_token(store_path: str, block: bool) -> None:
    """Judge the stale claim and win the right to take it over, then die (or hang) before acting."""
    leases = Leases(Store(store_path), lease=2)
    info = leases.inspect(H)
    assert info.stale

    def stop(path, info):
        if block:
            time.sleep(600)
        os._exit(0)

    takeover.move_away = stop  # in this child process only
    leases.remove_stale(info)


@pytest.mark.parametrize("holder", ["dead", "frozen"])
def test_taker_that_stopped_mid_takeover_does_not_block_forever(store, holder):
    write_lock(store, foreign_owner(lease=1), age=60)
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(target=_die_holding_token, args=(store.path, holder == "frozen"))
    proc.start()
    try:
        deadline = time.monotonic() + 60
        while not [n for n in os.listdir(store.locks_dir) if ".takeover." in n]:
            assert time.monotonic() < deadline and (proc.is_alive() or holder == "dead"), "no takeover token"
            time.sleep(0.01)
        if holder == "frozen":
            # A live taker owns the takeover for now: nobody else acts on the claim.
            assert Leases(store, lease=1).claim(H) is None
            assert json.loads(read(store.lock_path(H)))["worker"] == "far:4242"
            # ... until it has held it for a whole lease without finishing.
            time.sleep(2.5)
        else:
            proc.join(30)
        claim = Leases(store, lease=10, worker="next").claim(H)
        assert claim is not None and read(store.lock_path(H)) == claim.content
    finally:
        proc.kill()
        proc.join()


# -- clocks ------------------------------------------------------------------------------


def test_fs_now_is_the_filesystems_time(store, tmp_path):
    leases = Leases(store)
    probe = tmp_path / "probe"
    probe.write_bytes(b"x")
    assert abs(leases.fs_now() - os.stat(probe).st_mtime) < 2.0
    leases.close()
    assert os.listdir(store.clock_dir) == [], "close removes the clock file"


@pytest.mark.parametrize("skew", [+3 * HOUR, -3 * HOUR])
def test_skewed_wall_clock_neither_steals_nor_keeps_dead_claims(store, skew):
    skewed = Leases(store, lease=2, worker="skewed", clock=lambda: time.time() + skew)
    normal = Leases(store, lease=2, worker="normal")

    # Judging others: a live claim stays live, a dead one is stale.
    write_lock(store, foreign_owner(lease=2), age=0.5)
    assert not skewed.inspect(H).stale
    assert skewed.claim(H) is None
    write_lock(store, foreign_owner(lease=2), age=30)
    assert skewed.inspect(H).stale
    mine = skewed.claim(H)
    assert mine is not None
    assert abs(skewed.fs_now() - normal.fs_now()) < 2.0

    # Being judged: its claim is live while renewed, stale once renewals stop.
    assert skewed.renew(mine)
    assert not normal.inspect(H).stale
    assert normal.claim(H) is None
    old = time.time() - 30
    os.utime(mine.path, (old, old))
    assert normal.inspect(H).stale
    taken = normal.claim(H)
    assert taken is not None and not skewed.holds(mine) and not skewed.renew(mine)


def test_a_lost_exclusive_create_answered_with_eperm_is_a_collision(store, monkeypatch):
    """sshfs answers a lost O_CREAT|O_EXCL race with EPERM (SFTP v3 has no 'exists' status)."""
    import errno

    real_open = os.open
    refusals = []

    def sftp_open(path, flags, *args, **kwargs):
        if flags & os.O_EXCL and os.fspath(path) == store.lock_path(H):
            if os.path.lexists(path) or not refusals:
                refusals.append(path)  # the first one: a winner that gave its claim back at once
                raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), path)
        return real_open(path, flags, *args, **kwargs)

    a, b = Leases(store, lease=60, worker="a"), Leases(store, lease=60, worker="b")
    monkeypatch.setattr(os, "open", sftp_open)
    mine = a.claim(H)
    assert mine is not None, "EPERM with no file left is tried again"
    assert b.claim(H) is None, "EPERM with the file in place is a lost race"
    assert len(refusals) == 2
    assert a.release(mine)
    assert b.claim(H) is not None
