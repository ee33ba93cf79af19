"""Journals of finished tasks (taskflow.stores.folder.journal): batching, incremental reading, and hints that lie."""
from __future__ import annotations

import os

import pytest

from conftest import NOTE_PREAMBLE, write_taskfile
from taskflow.stores import journals as journal_module
from taskflow.stores.folder.journal import FolderJournal as Journal, JournalReader
from taskflow.stores.journals import FLUSH_EVERY
from taskflow.stores.folder import FolderStore as Store

HASHES = [f"{i:032x}" for i in range(100)]


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(str(tmp_path / "store"))
    s.ensure()
    return s


def test_hashes_are_written_in_batches_and_read_once(store, monkeypatch):
    monkeypatch.setattr(journal_module, "FLUSH_AFTER", 3600)
    reader = JournalReader(store)
    reader.start()
    journal = Journal(store)
    for h in HASHES[:FLUSH_EVERY - 1]:
        journal.add(h)
    assert reader.news() == set(), "nothing written before a batch is full"
    journal.add(HASHES[FLUSH_EVERY - 1])
    assert reader.news() == set(HASHES[:FLUSH_EVERY])
    assert reader.news() == set(), "each line is news once"
    journal.add(HASHES[50])
    journal.flush()
    assert reader.news() == {HASHES[50]}
    assert reader.news(skip=journal.path) == set()


def test_a_reader_ignores_what_was_journaled_before_it_started(store):
    early = Journal(store)
    early.add(HASHES[0])
    early.flush()
    reader = JournalReader(store)
    reader.start()
    early.add(HASHES[1])
    early.flush()
    late = Journal(store)
    late.add(HASHES[2])
    late.flush()
    assert reader.news() == {HASHES[1], HASHES[2]}


def test_a_partial_line_waits_and_a_damaged_journal_is_not_read_further(store):
    reader = JournalReader(store)
    reader.start()
    os.makedirs(store.done_dir, exist_ok=True)
    path = os.path.join(store.done_dir, "host.1.x")
    with open(path, "ab") as f:
        f.write(f"{HASHES[0]}\n{HASHES[1][:10]}".encode())
    assert reader.news() == {HASHES[0]}
    with open(path, "ab") as f:
        f.write(f"{HASHES[1][10:]}\n".encode())
    assert reader.news() == {HASHES[1]}
    with open(path, "ab") as f:
        f.write(b"not a journal line at all, just some text that goes on\n" + f"{HASHES[2]}\n".encode())
    assert reader.news() == set()
    with open(path, "ab") as f:
        f.write(f"{HASHES[3]}\n".encode())
    assert HASHES[2] not in reader.news()


def test_closing_removes_the_journal(store):
    reader = JournalReader(store)
    reader.start()
    journal = Journal(store)
    journal.add(HASHES[0])
    journal.flush()
    assert os.path.exists(journal.path)
    journal.close()
    assert os.listdir(store.done_dir) == []
    assert reader.news() == set()


def test_a_hint_for_a_result_that_is_not_there_is_recomputed(tmp_path):
    """A journal line is a hint: a worker that believed it still gets every input right."""
    from taskflow.taskfile import load
    from taskflow.worker import Outcome, Worker

    tf = write_taskfile(tmp_path, NOTE_PREAMBLE + """
@TaskGenerator
def base():
    note("base")
    return 20

@TaskGenerator
def plus(x):
    return x + 1

b = base()
p = plus(b)
""")
    store = Store(str(tmp_path / "store"))
    tasks = load(str(tf), store).tasks
    base = next(t for t in tasks if t.name.endswith("base"))
    worker = Worker(store)
    prepare = worker._prepare

    def prepare_then_hear_a_lie(ts):
        prepare(ts)
        liar = Journal(store)  # another worker journaling a result that then vanished
        liar.add(base.hash)
        liar.flush()
        worker.collisions = 0
        worker._refresh()
        assert base.hash in worker.finished, "the hint was taken"

    worker._prepare = prepare_then_hear_a_lie
    summary = worker.run(tasks)
    assert summary.outcome is Outcome.FINISHED
    import taskflow
    ns = taskflow.init(str(tf), store=store.path)
    assert taskflow.value(ns.p) == 21 and taskflow.value(ns.b) == 20
