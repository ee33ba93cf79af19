"""The workers of a --jobs pool check the store at once when a sibling ends its run."""
from __future__ import annotations

import json
import os
import time

from taskflow.execute import _relay_progress
from taskflow.progress import PipeReporter
from taskflow.worker import Reporter
from taskflow.worker.wakeup import Wakeup, wake


def test_a_pause_ends_when_the_pool_says_so_and_everything_said_is_taken_at_once():
    r, w = os.pipe()
    wakeup = Wakeup(r)
    wake([w, w, w])
    started = time.monotonic()
    wakeup.pause(30)
    assert time.monotonic() - started < 5, "woken, not slept out"
    wakeup.pause(0.05)  # nothing new said: the whole pause
    assert time.monotonic() - started >= 0.05
    os.close(w)
    os.close(r)


def test_a_worker_whose_pool_is_gone_sleeps_out_its_pauses():
    r, w = os.pipe()
    wakeup = Wakeup(r)
    os.close(w)  # the pool ended: the pipe reads as closed, at once and forever
    wakeup.pause(0.01)
    assert wakeup.fd is None
    started = time.monotonic()
    wakeup.pause(0.05)
    assert time.monotonic() - started >= 0.05, "no busy loop on a closed pipe"
    os.close(r)


def test_waking_a_worker_that_does_not_listen_never_blocks_the_pool():
    r, w = os.pipe()
    os.set_blocking(w, False)
    for _ in range(100_000):  # far more than a pipe holds
        wake([w])
    os.close(r)
    wake([w])  # and nobody reads any more: said to no one, no error
    os.close(w)


def test_the_pool_wakes_every_worker_when_one_ends_its_run():
    wakes = [os.pipe() for _ in range(2)]

    def relay(events) -> list[bytes]:
        progress_r, progress_w = os.pipe()
        events(PipeReporter(progress_w))
        os.close(progress_w)
        _relay_progress(progress_r, Reporter(), [w for _, w in wakes])
        return [_said(r) for r, _ in wakes]

    def working(reporter):
        reporter.begin(4, 0, 0)
        reporter.task_started(_Task())
        reporter.task_finished(_Task(), 0.1)

    assert relay(working) == [b"", b""], "no wake while workers only work"
    assert relay(lambda reporter: reporter.end()) == [b"!", b"!"], "one wake for each worker, for the one end"


class _Task:
    name, hash = "m.t", "0" * 32


def _said(fd: int) -> bytes:
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 100)
    except BlockingIOError:
        return b""


def test_without_descriptors_left_a_worker_goes_without_a_wake_pipe(monkeypatch):
    import errno

    from taskflow.worker import wakeup

    read_end, write_end = wakeup.pipe()
    assert read_end is not None and write_end is not None and not os.get_blocking(write_end)
    os.close(read_end)
    os.close(write_end)

    def exhausted():
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(wakeup.os, "pipe", exhausted)
    assert wakeup.pipe() == (None, None)
    started = time.monotonic()
    Wakeup(None).pause(0.05)
    assert time.monotonic() - started >= 0.05
