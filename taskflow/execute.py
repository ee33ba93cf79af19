"""`execute`: load the taskfile, run the worker, reload past barriers; and `--jobs N`."""
from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Protocol

from . import taskfile as taskfile_module
from .progress import replay
from .errors import ExitCode, NoTaskMatchesError
from .selection import select_targets
from .stores.base import Store
from .task import Task
from .worker import Options, Outcome, Reporter, RunSummary, Worker
from .worker.wakeup import pipe as wakeup_pipe, wake

log = logging.getLogger(__name__)


class Runner(Protocol):
    """What runs one pass over the selected tasks: a Worker, or taskflow.dask's DaskRunner."""

    reporter: Reporter

    def run(self, tasks: list[Task]) -> RunSummary: ...


def execute(taskfile: str, store: Store, argv: Sequence[str] = (), options: Options | None = None,
            reporter: Reporter | None = None, check_lease: bool = True, runner: Runner | None = None) -> RunSummary:
    """Run tasks of `taskfile` until all are finished or this worker must stop.

    Reloads the taskfile each time what a barrier waits for is finished, so
    one call goes through every barrier. With `check_lease`, first warns when
    the lease is shorter than the store needs (see `warn_if_lease_short`).
    `runner` runs each pass instead of a Worker of this process (taskflow.dask's
    DaskRunner), with the same options and reporter.
    """
    options = options or Options()
    if not options.resource_defaults:
        from .resources import project_defaults
        options.resource_defaults = project_defaults(taskfile)
    if check_lease:
        warn_if_lease_short(store, options.lease)
    worker: Runner = runner or Worker(store, options, reporter)
    total = RunSummary(Outcome.FINISHED, already_finished=True)
    stopped_at = None  # (barriers passed, tasks declared) where the last pass stopped
    while True:
        loaded = taskfile_module.load(taskfile, store, argv)
        here = (loaded.barriers_passed, len(loaded.tasks))
        if not loaded.complete and here == stopped_at:
            # Everything selected before the barrier finished, yet it stays closed:
            # tasks it waits for that --target left out are not finished.
            if loaded.barrier_needs is None:
                log.warning("stopping at the barrier at %s: tasks above it outside --target are not finished, "
                            "so the tasks below it are not declared yet", loaded.barrier_at)
            else:
                log.warning("stopping at the bvalue() at %s: tasks it waits for are outside --target and not "
                            "finished, so the tasks below it are not declared yet", loaded.barrier_at)
            return total
        tasks = _selected(loaded, options.targets)
        _apply_limits(options, loaded.limits)
        summary = worker.run(tasks)
        total.ran += summary.ran
        total.failed += summary.failed
        total.total = summary.total
        total.failed_hashes |= summary.failed_hashes
        total.outcome = summary.outcome
        total.blockers, total.blocked = summary.blockers, summary.blocked
        total.already_finished = total.already_finished and summary.already_finished
        if summary.outcome is not Outcome.FINISHED or loaded.complete:
            if total.already_finished and total.outcome is Outcome.FINISHED:
                worker.reporter.already_finished(total.total)
            return total
        stopped_at = here
        ran = {t.hash for t in tasks}
        if all(t.hash in ran for t in loaded.waited_for()):
            log.info("every task the barrier at %s waits for is finished; reloading", loaded.barrier_at)


def _apply_limits(options: Options, limits: dict | None) -> None:
    """The stricter of the command line's limits and those the taskfile set (jug's exit hooks)."""
    if not limits:
        return
    for key in ("max_tasks", "max_time"):
        if key in limits:
            mine = getattr(options, key)
            setattr(options, key, limits[key] if mine is None else min(mine, limits[key]))
    for path in limits.get("stop_files", ()):
        if path not in options.stop_files:
            options.stop_files = (*options.stop_files, path)


def blocked_message(summary: RunSummary) -> str:
    """Why a run that stopped on failures cannot finish, naming the failed tasks."""
    n = len(summary.blockers)
    shown = ", ".join(f"{name} ({h[:12]})" for name, h in summary.blockers[:5])
    if n > 5:
        shown += f" and {n - 5} more"
    if n == 1:
        head = f"1 failed task keeps this run from finishing: {shown}"
    else:
        head = f"{n} failed tasks keep this run from finishing: {shown}"
    if summary.blocked:
        waits = "1 other task waits" if summary.blocked == 1 else f"{summary.blocked} other tasks wait"
        head += f"; {waits} on {'it' if n == 1 else 'them'}"
    return (head + ". Failed tasks are not run again unless you pass --retry-failed "
            "(`taskflow status --failed` shows why they failed)")


def warn_if_lease_short(store: Store, lease: float) -> None:
    """One warning when `lease` is shorter than what the store needs (`Store.lease_advice`)."""
    advice = store.lease_advice(lease)
    if advice:
        log.warning("%s", advice)


def _selected(loaded: taskfile_module.Loaded, targets: Sequence[str]) -> list[Task]:
    """The tasks to run of what the taskfile declared so far (see taskflow.selection).

    Stopped at a barrier, and without a target before it, that is what the
    barrier waits for: every task above a `barrier()`, only x's tasks and
    their dependencies for a `bvalue(x)`, so that other tasks above it, even
    failing ones, do not keep it closed. Those run once the load is past it.
    """
    if not targets:
        return loaded.tasks if loaded.complete else loaded.waited_for()
    try:
        return select_targets(loaded.tasks, targets)
    except NoTaskMatchesError as e:
        if loaded.complete:
            raise
        # A target not above the barrier can only be below it: open the barrier first.
        log.info("no task matches --target %s above the barrier at %s; running what it waits for first",
                 e.pattern, loaded.barrier_at)
        return loaded.waited_for()


# Worst first: how --jobs combines its workers' exit codes.
_SEVERITY: list[int] = [ExitCode.USAGE, ExitCode.STORE, ExitCode.FAILED, ExitCode.INTERRUPTED, ExitCode.REMAINING,
             ExitCode.OK]


def worst_exit_code(codes: Sequence[int]) -> int:
    known = [c for c in codes if c in _SEVERITY]
    unknown = [c for c in codes if c not in _SEVERITY]
    if unknown:
        return ExitCode.FAILED
    return ExitCode(min(known, key=_SEVERITY.index)) if known else ExitCode.OK


def run_pool(jobs: int, child_args: Sequence[str], reporter: Reporter,
             child_main: Callable[[int, int, int | None], object] | None = None) -> int:
    """Start `jobs` worker processes (`taskflow execute ...child_args`) and show
    their combined progress; returns the worst of their exit codes.

    With `child_main` and where the platform can fork, workers are forked from
    this process, which has taskflow imported and the command line parsed
    already: a worker then starts working about a tenth of a second sooner
    than a new interpreter would. `child_main(rank, progress_fd, wake_fd)` is
    worker `rank` of `jobs` (what `execute --rank RANK/JOBS --progress-fd FD
    --wake-fd FD ...child_args` would do), and ends with SystemExit(exit
    code; `wake_fd` None where no descriptor was left for it). Each worker's
    wake pipe is written to when a sibling ends a pass (worker/wakeup.py).
    The fork happens before any taskfile is loaded, so no user code or thread
    is ever forked. Otherwise each worker is a new `python -m taskflow`
    process.

    Ctrl-C and SIGTERM reach every worker (each then gives back its claim and
    exits), and the pool waits for all of them before it returns.
    """
    read_fd, write_fd = os.pipe()
    wake_ends: list[int] = []  # the pool's ends of its workers' wake pipes
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
    import gc
    thaw = fork and gc.get_freeze_count() == 0  # what a caller froze itself stays frozen
    try:
        try:
            if fork:
                # What the pool holds (modules, the parsed command line, the open store) lives as
                # long as the workers: frozen when they are forked, their collections never walk
                # it, nor copy its pages by touching it (Python's advice for fork without exec; 2
                # to 5 ms off a 2-worker run). Thawed here once they are forked.
                gc.freeze()
            for rank in range(jobs):
                wake_read, wake_write = wakeup_pipe()
                if wake_write is not None:
                    wake_ends.append(wake_write)
                wake_option = [] if wake_read is None else ["--wake-fd", str(wake_read)]
                # Before child_args: those may end with `-- taskfile arguments`.
                argv = ["--progress-fd", str(write_fd), *wake_option, "--rank", f"{rank}/{jobs}", *child_args]
                try:
                    pids.append(_fork_worker(child_main, rank, read_fd, write_fd, wake_read, wake_ends)
                                if fork and child_main is not None else _spawn_worker(argv, write_fd, wake_read))
                finally:
                    if wake_read is not None:
                        os.close(wake_read)
        finally:
            if thaw:
                gc.unfreeze()
            os.close(write_fd)
        _relay_progress(read_fd, reporter, wake_ends)
        codes = [_wait_exit_code(pid) for pid in pids]
    finally:
        for fd in wake_ends:
            os.close(fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    reporter.end()
    codes = [ExitCode.INTERRUPTED if c in (-signal.SIGINT, ExitCode.INTERRUPTED)
             else ExitCode.REMAINING if c == -signal.SIGTERM else c for c in codes]
    if signal.SIGINT in forwarded:
        return ExitCode.INTERRUPTED
    if signal.SIGTERM in forwarded:
        return worst_exit_code([*codes, ExitCode.REMAINING])
    return worst_exit_code(codes)


def _fork_worker(child_main: Callable[[int, int, int | None], object], rank: int, read_fd: int, write_fd: int,
                 wake_fd: int | None, pool_ends: list[int]) -> int:
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
    code: int = ExitCode.FAILED
    try:
        os.close(read_fd)  # or the pool would never see the pipe closed
        for fd in pool_ends:  # the write ends of its own and its elder siblings' wake pipes
            os.close(fd)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
        child_main(rank, write_fd, wake_fd)
        code = ExitCode.OK
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else ExitCode.OK if e.code is None else ExitCode.FAILED
    except KeyboardInterrupt:
        code = ExitCode.INTERRUPTED
    except BaseException:  # whatever happens, this process must not return into the pool
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _spawn_worker(argv: list[str], write_fd: int, wake_fd: int | None) -> int:
    import subprocess  # here: where workers are forked, as they are on Linux, no process imports it

    cmd = [sys.executable, "-m", "taskflow", "execute", *argv]
    return subprocess.Popen(cmd, pass_fds=(write_fd,) if wake_fd is None else (write_fd, wake_fd)).pid


def _wait_exit_code(pid: int) -> int:
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status)
        except InterruptedError:
            continue
        except ChildProcessError:
            return ExitCode.FAILED


def _relay_progress(read_fd: int, reporter: Reporter, wake_fds: list[int]) -> None:
    """Feed the workers' progress messages to `reporter` until every worker closed the pipe; wake
    the workers (`wake_fds`) whenever one of them ends a run."""
    buffer = b""
    errors: set[str] = set()
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        while True:
            chunk = pipe.read(65536)  # signals are handled without raising, so reads just resume
            if not chunk:
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            ended = False
            for line in lines:
                ended = replay(reporter, line, errors) == "end" or ended
            if ended:
                wake(wake_fds)
