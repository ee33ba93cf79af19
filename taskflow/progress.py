"""Progress display: a redrawn line in a terminal, one log line per task in a batch log.

Worker processes started by `--jobs` send their events to the parent through
a pipe (`PipeReporter`), and the parent draws one combined display.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import TextIO

from .task import Task
from .worker import Reporter

log = logging.getLogger("taskflow.progress")


class Counter:
    """Totals across one or many workers, and the rate of finished tasks."""

    def __init__(self) -> None:
        self.total = 0
        self.finished = 0
        self.failed = 0
        self.ran = 0
        self.current = ""
        self.t0 = time.monotonic()

    def begin(self, total: int, finished: int, failed: int) -> None:
        self.total = max(self.total, total)
        self.finished = max(self.finished, finished)
        self.failed = max(self.failed, failed)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.t0, 1e-9)
        pct = 100.0 * self.finished / self.total if self.total else 100.0
        parts = [f"{self.finished}/{self.total} finished ({pct:.1f}%)"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        parts.append(f"{self.ran / elapsed:.1f} tasks/s")
        if self.current:
            parts.append(self.current)
        return " | ".join(parts)


class TerminalReporter(Reporter):
    """Redraws one status line on stderr, at most ten times a second."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.counter = Counter()
        self._drawn = 0.0
        self._width = 0

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn < 0.1:
            return
        self._drawn = now
        text = self.counter.line()
        self.stream.write("\r" + text.ljust(self._width))
        self._width = len(text)
        self.stream.flush()

    def begin(self, total, finished, failed):
        self.counter.begin(total, finished, failed)
        self._draw(force=True)

    def task_started(self, task: Task):
        self.counter.current = f"running {task.name}"
        self._draw()

    def task_finished(self, task: Task, seconds: float):
        self.counter.finished += 1
        self.counter.ran += 1
        self.counter.current = ""
        self._draw()

    def task_failed(self, task: Task, message: str):
        self.counter.failed += 1
        self._draw(force=True)
        self.stream.write(f"\nfailed: {task.name} ({task.hash[:12]}): {message}\n")

    def learned(self, finished, failed):
        self.counter.finished = finished
        self.counter.failed = failed
        self._draw()

    def end(self):
        self.counter.current = ""
        self._draw(force=True)
        self.stream.write("\n")
        self.stream.flush()


class LogReporter(Reporter):
    """One plain line per finished or failed task, for batch logs."""

    def __init__(self) -> None:
        self.counter = Counter()

    def begin(self, total, finished, failed):
        self.counter.begin(total, finished, failed)
        log.info("%d tasks, %d already finished, %d failed", total, finished, failed)

    def task_finished(self, task, seconds):
        self.counter.finished += 1
        log.info("finished %s %s in %.3fs [%d/%d]", task.name, task.hash[:12], seconds,
                 self.counter.finished, self.counter.total)

    def task_failed(self, task, message):
        self.counter.failed += 1
        log.error("failed %s %s: %s", task.name, task.hash[:12], message)

    def learned(self, finished, failed):
        self.counter.finished = finished
        self.counter.failed = failed


class PipeReporter(Reporter):
    """Sends events as JSON lines to a file descriptor the parent reads."""

    def __init__(self, fd: int):
        self.fd = fd

    def _send(self, *event) -> None:
        try:
            os.write(self.fd, json.dumps(event).encode() + b"\n")
        except OSError:
            pass  # the parent went away; the work goes on

    def begin(self, total, finished, failed):
        self._send("begin", total, finished, failed)

    def task_started(self, task):
        self._send("start", task.name)

    def task_finished(self, task, seconds):
        self._send("done", task.name)

    def task_failed(self, task, message):
        self._send("fail", task.name, task.hash, message)

    def learned(self, finished, failed):
        self._send("learned", finished, failed)


def replay(reporter: Reporter, line: bytes) -> None:
    """Feed one event line from a PipeReporter into a local reporter."""
    try:
        kind, *args = json.loads(line)
    except ValueError:
        return
    counter = getattr(reporter, "counter", None)
    if kind == "begin":
        reporter.begin(*args)
    elif kind == "done" and counter is not None:
        counter.finished += 1
        counter.ran += 1
        if isinstance(reporter, TerminalReporter):
            reporter._draw()
        else:
            log.info("finished %s [%d/%d]", args[0], counter.finished, counter.total)
    elif kind == "fail":
        name, task_hash, message = args
        reporter.task_failed(_Named(name, task_hash), message)
    elif kind == "start" and isinstance(reporter, TerminalReporter):
        counter.current = f"running {args[0]}"
        reporter._draw()
    elif kind == "learned" and counter is not None:
        counter.finished = max(counter.finished, args[0])
        counter.failed = max(counter.failed, args[1])


class _Named:
    def __init__(self, name: str, task_hash: str):
        self.name = name
        self.hash = task_hash
