"""ESTALE (taskflow.stale): reads of results, claims, journals and failure records made again
from the name, and taken for a missing file when the name keeps answering ESTALE.

A network client answers ESTALE when another client renamed a file over the one it had looked
up; here os.open answers it in-process for chosen paths.
"""
from __future__ import annotations

import builtins
import errno
import json
import os

import pytest

import taskflow
from conftest import write_taskfile
from taskflow.errors import ResultMissingError
from taskflow.stores.folder.journal import FolderJournal as Journal, JournalReader
from taskflow.stores.folder.claims import FolderClaims as Leases
from taskflow.stores.folder import FolderStore as Store
from taskflow.stores.identity import HOST
from taskflow.task import active

H = "cd" * 20


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(str(tmp_path / "store"))
    s.ensure()
    return s


@pytest.fixture
def stale_open(monkeypatch):
    """stale_open(fragment, times): the next `times` opens of a path containing `fragment`
    fail with ESTALE (times=None: every one). Returns a list counting the failures."""
    real_open, real_builtin_open = os.open, builtins.open

    def arm(fragment: str, times: int | None = 1) -> list:
        failed: list = []

        def fail(path) -> None:
            if isinstance(path, (str, os.PathLike)) and fragment in os.fspath(path) \
                    and (times is None or len(failed) < times):
                failed.append(path)
                raise OSError(errno.ESTALE, os.strerror(errno.ESTALE), path)

        def fake_open(path, flags, *args, **kwargs):
            fail(path)
            return real_open(path, flags, *args, **kwargs)

        def fake_builtin_open(file, *args, **kwargs):
            fail(file)
            return real_builtin_open(file, *args, **kwargs)

        monkeypatch.setattr(os, "open", fake_open)
        monkeypatch.setattr(builtins, "open", fake_builtin_open)
        return failed
    return arm


def test_a_result_read_meeting_estale_is_read_again(store, stale_open):
    store.save_result(H, [1, 2, 3], {"name": "t"})
    failed = stale_open(f"results{os.sep}{H[:2]}", times=1)
    assert store.load_value(H) == [1, 2, 3]
    assert store.result_meta(H)["name"] == "t"
    assert list(store.damaged([H])) == []
    assert len(failed) == 1


def test_a_result_that_keeps_answering_estale_is_missing(store, stale_open):
    store.save_result(H, 7, {"name": "t"})
    stale_open(f"results{os.sep}{H[:2]}", times=None)
    with pytest.raises(FileNotFoundError):
        store.load_value(H)
    assert list(store.damaged([H])) == [], "absent, not damaged"


def test_value_says_missing_not_oserror_when_the_result_keeps_answering_estale(tmp_path, stale_open):
    tf = write_taskfile(tmp_path, """
        from taskflow import TaskGenerator

        @TaskGenerator
        def one():
            return 1

        r = one()
    """)
    ns = taskflow.init(str(tf))
    store = ns.r.store or active().store
    store.save_result(ns.r.hash, 1, {"name": ns.r.name})
    assert taskflow.value(ns.r) == 1
    stale_open(os.sep + ns.r.hash, times=None)
    with pytest.raises(ResultMissingError):
        taskflow.value(ns.r)


def test_a_claim_read_meeting_estale_is_read_again(store, stale_open):
    claim = Leases(store, lease=60, worker="a").claim(H)
    assert claim is not None
    judge = Leases(store, lease=60, worker="b")
    stale_open(store.lock_path(H), times=1)
    info = judge.inspect(H)
    assert info is not None and not info.stale and info.owner["worker"] == "a"


def test_a_claim_that_keeps_answering_estale_is_gone(store, stale_open):
    leases = Leases(store, lease=60, worker="a")
    claim = leases.claim(H)
    stale_open(store.lock_path(H), times=None)
    assert leases.inspect(H) is None
    assert not leases.still_ours(claim)


def test_renewal_meeting_estale_once_keeps_the_claim(store, stale_open):
    leases = Leases(store, lease=60, worker="a")
    claim = leases.claim(H)
    stale_open(store.lock_path(H), times=1)
    assert leases.renew(claim)
    assert not claim.lost and claim.renewals == 1


def test_a_journal_meeting_estale_is_read_again(store, stale_open):
    reader = JournalReader(store)
    reader.start()
    journal = Journal(store)
    journal.add(H[:32])
    journal.flush()
    stale_open(store.done_dir, times=1)
    assert reader.news() == {H[:32]}


def test_a_journal_that_keeps_answering_estale_is_passed_over(store, stale_open):
    reader = JournalReader(store)
    reader.start()
    journal = Journal(store)
    journal.add(H[:32])
    journal.flush()
    stale_open(store.done_dir, times=None)
    assert reader.news() == set()


def test_a_failure_record_meeting_estale(store, stale_open):
    store.save_failure(H, {"type": "ValueError", "message": "no", "host": HOST})
    failed = stale_open(store.failure_path(H), times=1)
    assert store.load_failure(H)["message"] == "no"
    assert len(failed) == 1
    stale_open(store.failure_path(H), times=None)
    assert store.load_failure(H) is None


def test_a_result_confirmed_by_opening_through_estale_is_present(store, stale_open):
    from taskflow import confirm

    store.save_result(H, 1, {"name": "t"})
    stale_open(os.sep + H, times=1)
    assert confirm.present(store, [H]) == {H}
    stale_open(os.sep + H, times=None)
    assert confirm.present(store, [H]) == set()
