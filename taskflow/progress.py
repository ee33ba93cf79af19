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
from .worker import NamedTask, Reporter

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
        self.announced = -1
        self.nothing_to_do = False

    def begin(self, total: int, finished: int, failed: int) -> None:
        if total == self.total:
            # Another worker of --jobs beginning the same pass: what it found finished beyond what
            # the first one did was done by its siblings, whose own messages count it (a worker
            # sends its counts at most five times a second, so they may come after this begin).
            return
        self.total = max(self.total, total)
        self.finished = max(self.finished, finished)
        self.failed = max(self.failed, failed)

    def announce(self, total: int) -> bool:
        """Whether a header for `total` tasks is news: the workers of --jobs each begin alike."""
        if total == self.announced:
            return False
        self.announced = total
        return True

    def line(self) -> str:
        self.finished = min(self.finished, self.total)  # other workers' tasks may be counted twice
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

    def task_failed(self, task: NamedTask, message: str):
        self.counter.failed += 1
        self._draw(force=True)
        self.stream.write(f"\nfailed: {task.name} ({task.hash[:12]}): {message}\n")

    def learned(self, finished, failed):
        self.counter.finished = max(self.counter.finished, finished)
        self.counter.failed = max(self.counter.failed, failed)
        self._draw()

    def progress(self, done: int, current: str) -> None:
        """Tasks finished by other processes (the workers of --jobs)."""
        self.counter.finished += done
        self.counter.ran += done
        self.counter.current = current
        self._draw()

    def already_finished(self, total: int) -> None:
        if not self.counter.nothing_to_do:
            self.counter.nothing_to_do = True
            self.stream.write(f"taskflow: {_all_finished(total)}\n")
            self.stream.flush()

    def end(self):
        if self._drawn:  # nothing drawn when every task was finished already
            self.counter.current = ""
            self._draw(force=True)
            self.stream.write("\n")
        self.stream.flush()


class LogReporter(Reporter):
    """One plain line per finished or failed task, for batch logs.

    Lines are buffered and flushed at most twice a second (and at once for a
    failure), so ten thousand tiny tasks do not cost ten thousand writes.
    """

    FLUSH_EVERY = 0.5

    def __init__(self, stream: TextIO | None = None) -> None:
        self.counter = Counter()
        target = stream or sys.stderr
        self.stream = open(target.fileno(), "w", buffering=1 << 16, closefd=False,
                           encoding=getattr(target, "encoding", None) or "utf-8", errors="replace")
        self._flushed = time.monotonic()

    def _line(self, text: str, urgent: bool = False) -> None:
        self.stream.write(f"taskflow: {text}\n")
        now = time.monotonic()
        if urgent or now - self._flushed > self.FLUSH_EVERY:
            self.stream.flush()
            self._flushed = now

    def begin(self, total, finished, failed):
        self.counter.begin(total, finished, failed)
        if self.counter.announce(total):
            self._line(f"{total} tasks, {finished} already finished, {failed} failed", urgent=True)

    def task_finished(self, task, seconds):
        self.counter.finished += 1
        self.counter.ran += 1
        self._line(f"finished {task.name} {task.hash[:12]} in {seconds:.3f}s "
                   f"[{self.counter.finished}/{self.counter.total}]")

    def task_failed(self, task, message):
        self.counter.failed += 1
        self._line(f"failed {task.name} {task.hash[:12]}: {message}", urgent=True)

    def learned(self, finished, failed):
        self.counter.finished = max(self.counter.finished, finished)
        self.counter.failed = max(self.counter.failed, failed)

    def progress(self, done: int, current: str) -> None:
        """Tasks finished by other processes (the workers of --jobs)."""
        self.counter.finished += done
        self.counter.ran += done
        self._line(self.counter.line())

    def already_finished(self, total: int) -> None:
        if not self.counter.nothing_to_do:
            self.counter.nothing_to_do = True
            self._line(_all_finished(total), urgent=True)

    def end(self):
        self.stream.flush()


class PipeReporter(Reporter):
    """Sends events to the --jobs parent through a pipe, as JSON lines.

    Finished tasks are sent as counts at most five times a second: one write
    per task would cost the parent as much CPU as a worker's tasks. What a
    worker learns from the store is not sent: the parent counts its
    siblings' work from their own messages.
    """

    SEND_EVERY = 0.2

    def __init__(self, fd: int):
        self.fd = fd
        self._done = 0
        self._current = ""
        self._sent = time.monotonic()

    def _send(self, *event) -> None:
        try:
            os.write(self.fd, json.dumps(event).encode() + b"\n")
        except OSError:
            pass  # the parent went away; the work goes on

    def _flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._sent > self.SEND_EVERY:
            if self._done or self._current:
                self._send("progress", self._done, self._current)
            self._done = 0
            self._sent = now

    def begin(self, total, finished, failed):
        self._send("begin", total, finished, failed)

    def task_started(self, task):
        self._current = f"running {task.name}"
        self._flush()

    def task_finished(self, task, seconds):
        self._done += 1
        self._current = ""
        self._flush()

    def task_failed(self, task, message):
        self._flush(force=True)
        self._send("fail", task.name, task.hash, message)

    def already_finished(self, total: int) -> None:
        self._send("already_finished", total)

    def end(self):
        self._flush(force=True)
        self._send("end")  # the pool wakes the idle siblings: the run may be over (worker/wakeup.py)


def _all_finished(total: int) -> str:
    return f"all {total} task{'s' if total != 1 else ''} already finished"


def send_error(fd: int, message: str) -> None:
    """Tell the --jobs parent about the error that stops this worker."""
    try:
        os.write(fd, json.dumps(["error", message]).encode() + b"\n")
    except OSError:
        sys.stderr.write(f"taskflow: error: {message}\n")


def replay(reporter: Reporter, line: bytes, errors: set[str]) -> str | None:
    """Feed one event line from a PipeReporter into the parent's reporter; returns its kind
    ("end": a worker ended a run), None for a line that is not an event.

    An error that stops a worker is printed the first time it comes: all
    workers of a pool usually stop for the same reason (a broken taskfile).
    """
    try:
        kind, *args = json.loads(line)
    except ValueError:
        return None
    if kind == "error":
        if args[0] not in errors:
            errors.add(args[0])
            sys.stderr.write(f"taskflow: error: {args[0]}\n")
            sys.stderr.flush()
    elif kind == "begin":
        reporter.begin(*args)
    elif kind == "progress":
        reporter.progress(*args)
    elif kind == "already_finished":
        reporter.already_finished(*args)
    elif kind == "fail":
        name, task_hash, message = args
        reporter.task_failed(_Named(name, task_hash), message)
    return kind


class _Named:
    def __init__(self, name: str, task_hash: str):
        self.name = name
        self.hash = task_hash
