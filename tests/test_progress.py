"""The combined progress of the workers of --jobs, as the pool counts it from their messages."""
from __future__ import annotations

import io

from taskflow.progress import TerminalReporter


def _pool_display():
    stream = io.StringIO()
    return TerminalReporter(stream), stream


def test_a_sibling_beginning_after_a_task_finished_does_not_count_that_task_twice():
    reporter, stream = _pool_display()
    reporter.begin(8, 0, 0)     # the first worker, before any task
    reporter.begin(8, 1, 0)     # its sibling, after the first task finished, before its count came
    reporter.progress(7, "")    # every finished task, as the workers' own messages count them
    reporter.end()
    assert stream.getvalue().split("\r")[-1].startswith("7/8 finished"), stream.getvalue()


def test_a_later_pass_takes_what_the_store_holds():
    reporter, stream = _pool_display()
    reporter.begin(8, 0, 0)
    reporter.progress(8, "")
    reporter.begin(20, 8, 1)    # past a barrier: more tasks declared, the earlier ones finished
    reporter.end()
    last = stream.getvalue().split("\r")[-1]
    assert last.startswith("8/20 finished") and "1 failed" in last, last
