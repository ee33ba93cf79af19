"""`execute`: load the taskfile, run the worker, reload past barriers; and `--jobs N`."""
from __future__ import annotations

import logging
import os
import selectors
import signal
import subprocess
import sys
from typing import Sequence

from . import taskfile as taskfile_module
from .progress import replay
from .store import Store
from .worker import Options, Outcome, Reporter, RunSummary, Worker

log = logging.getLogger(__name__)


def execute(taskfile: str, store: Store, argv: Sequence[str] = (), options: Options | None = None,
            reporter: Reporter | None = None) -> RunSummary:
    """Run tasks of `taskfile` until all are finished or this worker must stop.

    Reloads the taskfile each time the tasks above a barrier are finished, so
    one call goes through every barrier.
    """
    options = options or Options()
    worker = Worker(store, options, reporter)
    total = RunSummary(Outcome.FINISHED)
    declared = -1
    while True:
        loaded = taskfile_module.load(taskfile, store, argv)
        summary = worker.run(loaded.tasks)
        total.ran += summary.ran
        total.failed += summary.failed
        total.total = summary.total
        total.failed_hashes |= summary.failed_hashes
        total.outcome = summary.outcome
        if summary.outcome is not Outcome.FINISHED or loaded.complete:
            return total
        if len(loaded.tasks) == declared:
            # A barrier that stays closed although everything above it finished:
            # only --target can cause that (tasks above it were not selected).
            log.info("stopping at a barrier in %s: tasks above it are outside --target", loaded.path)
            return total
        declared = len(loaded.tasks)
        log.info("all tasks above a barrier are finished; reloading %s", loaded.path)


# Worst first: how --jobs combines its workers' exit codes.
_SEVERITY = [2, 1, 130, 3, 0]


def worst_exit_code(codes: Sequence[int]) -> int:
    known = [c for c in codes if c in _SEVERITY]
    unknown = [c for c in codes if c not in _SEVERITY]
    if unknown:
        return 1
    return min(known, key=_SEVERITY.index) if known else 0


def run_pool(jobs: int, child_args: Sequence[str], reporter: Reporter) -> int:
    """Start `jobs` worker processes (`python -m taskflow execute ...child_args`) and
    show their combined progress; returns the worst of their exit codes."""
    read_fd, write_fd = os.pipe()
    procs = []
    try:
        for rank in range(jobs):
            cmd = [sys.executable, "-m", "taskflow", "execute", *child_args,
                   "--progress-fd", str(write_fd), "--rank", f"{rank}/{jobs}"]
            procs.append(subprocess.Popen(cmd, pass_fds=(write_fd,)))
    finally:
        os.close(write_fd)
    interrupted = False
    buffer = b""
    with selectors.DefaultSelector() as sel, os.fdopen(read_fd, "rb", buffering=0) as pipe:
        sel.register(pipe, selectors.EVENT_READ)
        while True:
            try:
                if not sel.select(timeout=1.0):
                    continue
                chunk = pipe.read(65536)
            except KeyboardInterrupt:
                # The terminal sent SIGINT to the whole group; make sure every worker got it.
                interrupted = True
                for p in procs:
                    if p.poll() is None:
                        p.send_signal(signal.SIGINT)
                continue
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                replay(reporter, line)
    codes = []
    for p in procs:
        while True:
            try:
                codes.append(p.wait())
                break
            except KeyboardInterrupt:
                interrupted = True
                p.send_signal(signal.SIGINT)
    reporter.end()
    codes = [130 if c in (-signal.SIGINT, 130) else 3 if c == -signal.SIGTERM else c for c in codes]
    if interrupted:
        return 130
    return worst_exit_code(codes)
