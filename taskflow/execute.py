"""`execute`: load the taskfile, run the worker, reload past barriers; and `--jobs N`."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import traceback
from typing import Callable, Sequence

from . import taskfile as taskfile_module
from .progress import replay
from .store import Store
from .errors import UsageError
from .task import Task
from .worker import Options, Outcome, Reporter, RunSummary, Worker, select_targets

log = logging.getLogger(__name__)


def execute(taskfile: str, store: Store, argv: Sequence[str] = (), options: Options | None = None,
            reporter: Reporter | None = None, check_lease: bool = True) -> RunSummary:
    """Run tasks of `taskfile` until all are finished or this worker must stop.

    Reloads the taskfile each time the tasks above a barrier are finished, so
    one call goes through every barrier. With `check_lease`, first warns when
    the lease is shorter than the store needs (see `warn_if_lease_short`).
    """
    options = options or Options()
    if check_lease:
        warn_if_lease_short(store, options.lease)
    worker = Worker(store, options, reporter)
    total = RunSummary(Outcome.FINISHED)
    declared = -1
    while True:
        loaded = taskfile_module.load(taskfile, store, argv)
        if loaded.complete is False and len(loaded.tasks) == declared:
            # Everything selected above the barrier finished, yet it stays closed:
            # tasks above it that --target left out are not finished.
            log.warning("stopping at the barrier at %s: tasks above it outside --target are not finished, "
                        "so the tasks below it are not declared yet", loaded.barrier_at)
            return total
        tasks = _selected(loaded, options.targets)
        summary = worker.run(tasks)
        total.ran += summary.ran
        total.failed += summary.failed
        total.total = summary.total
        total.failed_hashes |= summary.failed_hashes
        total.outcome = summary.outcome
        if summary.outcome is not Outcome.FINISHED or loaded.complete:
            return total
        declared = len(loaded.tasks)
        if len(tasks) == declared:
            log.info("every task above the barrier at %s is finished; reloading", loaded.barrier_at)


def warn_if_lease_short(store: Store, lease: float) -> None:
    """One warning when `lease` is shorter than what the store's filesystem needs.

    What it needs comes from STORE/doctor.json, or else from its time stamps'
    granularity (see fsneeds): one read and one stat per call, none per task.
    """
    from .fsneeds import lease_warning

    advice = lease_warning(store, lease)
    if advice:
        log.warning("%s", advice)


def _selected(loaded: taskfile_module.Loaded, targets: Sequence[str]) -> list[Task]:
    """The tasks to run of what the taskfile declared so far (see select_targets)."""
    try:
        return select_targets(loaded.tasks, targets)
    except UsageError:
        if loaded.complete:
            raise
    # No target above the barrier: they can only be below it, which takes every task above it.
    log.info("no task matches --target %s above the barrier at %s; running the tasks above it first",
             ", ".join(targets), loaded.barrier_at)
    return loaded.tasks


# Worst first: how --jobs combines its workers' exit codes.
_SEVERITY = [2, 4, 1, 130, 3, 0]


def worst_exit_code(codes: Sequence[int]) -> int:
    known = [c for c in codes if c in _SEVERITY]
    unknown = [c for c in codes if c not in _SEVERITY]
    if unknown:
        return 1
    return min(known, key=_SEVERITY.index) if known else 0


def run_pool(jobs: int, child_args: Sequence[str], reporter: Reporter,
             child_main: Callable[[list[str]], int] | None = None) -> int:
    """Start `jobs` worker processes (`taskflow execute ...child_args`) and show
    their combined progress; returns the worst of their exit codes.

    With `child_main` (the command line's entry point, taking the arguments
    after `execute` and returning an exit code) and where the platform can
    fork, workers are forked from this process, which has taskflow imported
    already: a worker then starts working about a tenth of a second sooner
    than a new interpreter would. The fork happens before any taskfile is
    loaded, so no user code or thread is ever forked. Otherwise each worker is
    a new `python -m taskflow` process.

    Ctrl-C and SIGTERM reach every worker (each then gives back its claim and
    exits), and the pool waits for all of them before it returns.
    """
    read_fd, write_fd = os.pipe()
    pids: list[int] = []
    forwarded: list[int] = []

    def forward(signum: int, frame: object) -> None:
        forwarded.append(signum)
        for pid in pids:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    fork = child_main is not None and hasattr(os, "fork")
    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            for rank in range(jobs):
                # Before child_args: those may end with `-- taskfile arguments`.
                argv = ["--progress-fd", str(write_fd), "--rank", f"{rank}/{jobs}", *child_args]
                pids.append(_fork_worker(child_main, argv, read_fd) if fork else _spawn_worker(argv, write_fd))
        finally:
            os.close(write_fd)
        _relay_progress(read_fd, reporter)
        codes = [_wait_exit_code(pid) for pid in pids]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    reporter.end()
    codes = [130 if c in (-signal.SIGINT, 130) else 3 if c == -signal.SIGTERM else c for c in codes]
    if signal.SIGINT in forwarded:
        return 130
    if signal.SIGTERM in forwarded:
        return worst_exit_code(codes + [3])
    return worst_exit_code(codes)


def _fork_worker(child_main: Callable[[list[str]], int], argv: list[str], read_fd: int) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    # Held until the child has its own handlers: the pool's would forward to the child's siblings.
    held = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
        raise
    if pid:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
        return pid
    code = 1
    try:
        os.close(read_fd)  # or the pool would never see the pipe closed
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
        code = child_main(argv)
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # noqa: B902 - whatever happens, this process must not return into the pool
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _spawn_worker(argv: list[str], write_fd: int) -> int:
    cmd = [sys.executable, "-m", "taskflow", "execute", *argv]
    return subprocess.Popen(cmd, pass_fds=(write_fd,)).pid


def _wait_exit_code(pid: int) -> int:
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status)
        except InterruptedError:
            continue
        except ChildProcessError:
            return 1


def _relay_progress(read_fd: int, reporter: Reporter) -> None:
    """Feed the workers' progress messages to `reporter` until every worker closed the pipe."""
    buffer = b""
    errors: set[str] = set()
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        while True:
            chunk = pipe.read(65536)  # signals are handled without raising, so reads just resume
            if not chunk:
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                replay(reporter, line, errors)
