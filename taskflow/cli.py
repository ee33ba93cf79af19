"""The `taskflow` command: a thin layer over the library, and the only place
that maps errors to exit codes and configures logging.

Exit codes:
  0    every task finished (check: all finished)
  1    a task failed (check: not all finished)
  2    usage error, or a taskfile that cannot be loaded
  3    tasks remain that this worker could not run (limits, STOP, --wait, SIGTERM)
  4    the store could not be written or read (full disk, quota, permissions, read-only)
  130  interrupted with Ctrl-C
"""
from __future__ import annotations

import functools
import logging
import os
import sys
from typing import Any, Callable

import click

from ._version import __version__
from .errors import StoreAccessError, TaskflowError
from .store import Store

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REMAINING, EXIT_STORE, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130

EXIT_CODES_HELP = """\b
Exit codes:
  0    every task finished
  1    a task failed
  2    usage error, or the taskfile cannot be loaded
  3    tasks remain that this worker could not run
       (--max-tasks, --max-time, --wait, a STOP file, SIGTERM)
  4    the store could not be written or read (full disk, quota,
       permissions, read-only); the claim of the task at hand is given back
  130  interrupted with Ctrl-C"""

# Said once here for every command that selects tasks by name (see taskflow.selection).
TARGET_HELP = ("PATTERN is a task name, the part after its last dot, a shell glob (count_*) or /REGEX/ "
               "(README: Selecting tasks by name)")

log = logging.getLogger("taskflow")


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = "taskflow: " if record.levelno < logging.WARNING else f"taskflow: {record.levelname.lower()}: "
        return prefix + record.getMessage()


def _configure_logging(verbose: bool, quiet: bool) -> None:
    root = logging.getLogger("taskflow")
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    root.propagate = False


def _handle_errors(f: Callable) -> Callable:
    """Turn library errors into one line on stderr and an exit code; tracebacks only with --debug."""
    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = kwargs.get("debug") or os.environ.get("TASKFLOW_DEBUG") == "1"
        try:
            try:
                return f(*args, **kwargs)
            except OSError as e:
                # A command writing into a store it cannot write (read-only, permissions, full).
                from .store import UNWRITABLE
                if debug or e.errno not in UNWRITABLE:
                    raise
                raise StoreAccessError(f"cannot write {e.filename or 'in the store'}: {e.strerror}",
                                       path=e.filename) from e
        except TaskflowError as e:
            if debug:
                raise
            if kwargs.get("progress_fd") is not None:
                # A worker of --jobs: the pool prints each distinct error once, not once per worker.
                from .progress import send_error
                send_error(kwargs["progress_fd"], str(e))
            else:
                click.echo(f"taskflow: error: {e}", err=True)
            sys.exit(EXIT_STORE if isinstance(e, StoreAccessError) else EXIT_USAGE)
        except KeyboardInterrupt:
            click.echo("taskflow: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
    return wrapper


def _store_option(f: Callable) -> Callable:
    return click.option("--store", "store", metavar="DIR", envvar="TASKFLOW_STORE",
                        help="Store folder [default: <taskfile stem>.taskflow beside the taskfile; "
                             "env TASKFLOW_STORE].")(f)


def _common(f: Callable) -> Callable:
    f = click.argument("args", nargs=-1, type=click.UNPROCESSED)(f)
    f = click.argument("taskfile", metavar="FILE")(f)
    f = _store_option(f)
    f = click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")(f)
    f = click.option("-v", "--verbose", is_flag=True, help="Log more detail to stderr.")(f)
    return f


def _open_store(taskfile: str, store: str | None, fsync: bool = False) -> Store:
    from .taskfile import store_path

    s = Store(store_path(taskfile, store), fsync=fsync)
    s.check_format()
    return s


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="taskflow")
def main() -> None:
    """Run task graphs on one machine or many batch-cluster nodes, coordinated
    through a shared folder (the store).

    \b
    Example:
      taskflow execute taskfile.py --jobs 4
      taskflow status taskfile.py
    """
    from . import taskfile
    taskfile.by_command = True


def _duration(option: str) -> Callable:
    def convert(ctx, param, text):
        from .units import parse_duration

        if text is None:
            return None
        try:
            return parse_duration(text, option)
        except TaskflowError:
            # click names the option itself.
            raise click.BadParameter(f"cannot read {text!r} as a duration (examples: 90, 45m, 3h30m, 1d)") from None
    return convert


@main.command(epilog=EXIT_CODES_HELP)
@_common
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Start this many worker processes on this machine.")
@click.option("--target", "targets", multiple=True, metavar="PATTERN",
              help=f"Run only tasks matching PATTERN and their dependencies; {TARGET_HELP}. Repeatable.")
@click.option("--keep-going", is_flag=True, help="After a task fails, run everything that does not depend on it.")
@click.option("--retry-failed", is_flag=True, help="Run tasks that failed before again.")
@click.option("--lease", metavar="SECONDS", envvar="TASKFLOW_LEASE", callback=_duration("--lease"),
              default="300", show_default=True,
              help="Claims not renewed for this long are stale and taken over [env TASKFLOW_LEASE].")
@click.option("--wait", metavar="DURATION", callback=_duration("--wait"),
              help="Give up (exit 3) after waiting this long for tasks other workers run [default: forever].")
@click.option("--max-tasks", type=click.IntRange(min=1), help="Take no new task after running N tasks.")
@click.option("--max-time", metavar="DURATION", callback=_duration("--max-time"),
              help="Take no new task after this much time, e.g. 3h30m (for batch walltime limits).")
@click.option("--fsync", is_flag=True, envvar="TASKFLOW_FSYNC",
              help="fsync each result and its folder before it counts as finished [env TASKFLOW_FSYNC=1].")
@click.option("--verify", is_flag=True,
              help="First read every finished result and check its checksum; damaged ones run again "
                   "(after a node crash without --fsync).")
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
@click.option("--progress-fd", type=int, hidden=True)
@click.option("--rank", hidden=True)
@_handle_errors
def execute(taskfile: str, args: tuple, store: str | None, jobs: int, targets: tuple, keep_going: bool,
            retry_failed: bool, lease: float, wait: float | None, max_tasks: int | None,
            max_time: float | None, fsync: bool, verify: bool, quiet: bool, verbose: bool, debug: bool,
            progress_fd: int | None, rank: str | None) -> None:
    """Run the taskfile's tasks until all are finished.

    Start as many workers as you like, on this machine (--jobs) or on cluster
    nodes sharing the store: they claim tasks through lock files in the store.
    Arguments after FILE (put them after `--`) are the taskfile's sys.argv[1:].
    Create a file named STOP in the store to make every worker take no new task.

    \b
    Example:
      taskflow execute taskfile.py --jobs 4 -- --input data.csv
    """
    from .execute import blocked_message, execute as run_execute, run_pool
    from .lease import check_lease
    from .progress import LogReporter, PipeReporter, TerminalReporter
    from .worker import Options, Outcome

    _configure_logging(verbose, quiet and not verbose)
    from_env = click.get_current_context().get_parameter_source("lease") is click.core.ParameterSource.ENVIRONMENT
    lease = check_lease(lease, "TASKFLOW_LEASE" if from_env else "--lease")
    s = _open_store(taskfile, store, fsync)
    if progress_fd is not None:
        reporter = PipeReporter(progress_fd)
    elif quiet:
        from .worker import Reporter
        reporter = Reporter()
    elif sys.stderr.isatty():
        reporter = TerminalReporter()
    else:
        reporter = LogReporter()

    if jobs > 1:
        from .execute import warn_if_lease_short
        warn_if_lease_short(s, lease)  # here, once, rather than in every worker
        child = [taskfile, "--store", s.path, "--lease", str(lease), "-q"]
        for t in targets:
            child += ["--target", t]
        for flag, on in (("--keep-going", keep_going), ("--retry-failed", retry_failed), ("--fsync", fsync),
                         ("--verify", verify), ("--verbose", verbose), ("--debug", debug)):
            if on:
                child.append(flag)
        for opt, val in (("--wait", wait), ("--max-tasks", max_tasks), ("--max-time", max_time)):
            if val is not None:
                child += [opt, str(val)]
        if args:
            child += ["--", *args]
        sys.exit(run_pool(jobs, child, reporter, child_main=_run_forked_worker))

    worker_rank = worker_size = None
    if rank:
        worker_rank, worker_size = (int(x) for x in rank.split("/"))
    else:
        worker_rank, worker_size = _array_rank()
    options = Options(keep_going=keep_going, retry_failed=retry_failed, targets=targets, lease=lease,
                      wait=wait, max_tasks=max_tasks, max_time=max_time, rank=worker_rank, size=worker_size,
                      verify=verify)
    summary = run_execute(taskfile, s, args, options, reporter, check_lease=progress_fd is None)
    if summary.outcome is Outcome.FINISHED:
        sys.exit(EXIT_OK)
    if summary.outcome is Outcome.FAILED or summary.failed:  # a failure outranks work left over
        if summary.failed == 0 and summary.blockers:
            # This worker ran none of them: say which failures block it, and how to go on.
            message = blocked_message(summary)
            if progress_fd is not None:
                from .progress import send_error
                send_error(progress_fd, message)  # the pool prints it once for all its workers
            else:
                log.error(message)
        sys.exit(EXIT_FAILED)
    sys.exit(EXIT_REMAINING)


def _run_forked_worker(argv: list[str]) -> int:
    """`taskflow execute ARGV` in a process forked by --jobs; returns its exit code."""
    try:
        main.main(args=["execute", *argv], prog_name="taskflow", standalone_mode=True)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 0 if e.code is None else EXIT_FAILED
    return EXIT_OK


def _array_rank() -> tuple[int | None, int | None]:
    """This worker's place in its batch array, to spread the workers' starting points."""
    env = os.environ
    for idx, first, last in (("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX"),
                             ("SGE_TASK_ID", "SGE_TASK_FIRST", "SGE_TASK_LAST")):
        try:
            i, lo, hi = int(env[idx]), int(env[first]), int(env[last])
        except (KeyError, ValueError):
            continue
        if hi >= lo:
            return i - lo, hi - lo + 1
    return None, None


@main.command(epilog="Exit codes: 0 shown, 2 usage error or the taskfile cannot be loaded.")
@_common
@click.option("--json", "as_json", is_flag=True, help="Print counts as JSON.")
@click.option("--failed", "show_failed", is_flag=True, help="List failed tasks with their errors.")
@click.option("--running", "show_running", is_flag=True,
              help="List running tasks with their owner (host, pid, worker) and for how long.")
@click.option("--watch", "watch_every", is_flag=False, flag_value=2.0, type=float, default=None, metavar="[SECONDS]",
              help="Redraw every SECONDS (default 2) with progress bars, rate and time left, until all finish.")
@_handle_errors
def status(taskfile: str, args: tuple, store: str | None, as_json: bool, show_failed: bool,
           show_running: bool, watch_every: float | None, verbose: bool, debug: bool) -> None:
    """Count the tasks of each name: waiting, ready, running, finished, failed.

    \b
    Example:
      taskflow status taskfile.py --running
      taskflow status taskfile.py --watch 5
    """
    from .status import compute, dumps, running_lines, watch
    from .taskfile import load

    _configure_logging(verbose, False)
    s = _open_store(taskfile, store)
    if watch_every is not None:
        watch(taskfile, s, args, max(watch_every, 0.2), sys.stdout, clear=sys.stdout.isatty())
        return
    loaded = load(taskfile, s, args)
    report = compute(loaded.tasks, s, loaded.complete, details=show_failed)
    if as_json:
        click.echo(dumps(report))
        return
    click.echo(report.table())
    from .jobs import status_lines
    for line in status_lines(s, report):
        click.echo(line)
    if show_running:
        lines = running_lines(report)
        click.echo("\n".join(lines) if lines else "no task is running")
    if show_failed:
        for task, record in report.failed:
            click.echo(f"{task.name} {task.hash[:12]}: {record.get('type', '?')}: {record.get('message', '')}"
                       f"\n    on {record.get('host', '?')}; traceback in {s.failure_path(task.hash)}")
        if not report.failed:
            click.echo("no task failed")


@main.command(epilog="Exit codes: 0 all finished, 1 not all finished (or a damaged result with --verify), "
                     "2 usage error.")
@_common
@click.option("--verify", is_flag=True,
              help="Also read every finished result and check its checksum; move damaged ones to "
                   "STORE/damaged/ (the next execute computes them again) and list them on stderr.")
@_handle_errors
def check(taskfile: str, args: tuple, store: str | None, verify: bool, verbose: bool, debug: bool) -> None:
    """Exit 0 when every task is finished, 1 otherwise (silent unless -v or results were found damaged).

    Results this node's listing lacks but that a finished run, a journal or a
    dependent's result says exist are opened to be sure (a shared filesystem's
    caches can hide new files from a listing for a while).

    \b
    Example:
      taskflow check taskfile.py && echo done
      taskflow check taskfile.py --verify
    """
    from .status import confirmed, damage_hint

    _configure_logging(verbose, not verbose)
    s = _open_store(taskfile, store)
    loaded, report = confirmed(taskfile, s, args)
    if verbose:
        click.echo(report.table())
    elif report.damaged:
        click.echo(f"taskflow: {report.damaged} result(s) found damaged count as not finished: "
                   f"{damage_hint(s)} to compute them again", err=True)
    damaged = []
    if verify:
        from .damage import mark, move_aside

        by_hash = {t.hash: t for t in loaded.tasks}
        for h, reason in s.damaged(t.hash for t in loaded.tasks if t.hash in report.finished_hashes):
            try:
                moved = move_aside(s, h)
            except OSError as e:
                # A read-only view: leave it in place, marked if the store takes that much.
                next_step = (f"marked for recomputation: {damage_hint(s)}" if mark(s, h, by_hash[h].name, reason)
                             else f"run `taskflow execute {s.taskfile} --verify` where the store can be written")
                click.echo(f"taskflow: damaged: {reason}; cannot move it to {s.damaged_dir} "
                           f"({e.strerror or e}); {next_step}", err=True)
                damaged.append(h)
                continue
            if moved is None:
                continue  # intact from a fresh open: this client's cache was stale
            damaged.append(h)
            click.echo(f"taskflow: damaged: {reason}; moved to {moved}; {damage_hint(s)} to compute "
                       f"{by_hash[h].name} again", err=True)
    sys.exit(EXIT_OK if report.all_finished and not damaged else EXIT_FAILED)


@main.command(epilog="Exit codes: 0 done, 2 usage error or the taskfile cannot be loaded, "
                     "4 the store cannot be written.")
@_common
@click.option("--locks", "locks_only", is_flag=True,
              help="Remove only stale claims of dead or frozen workers, and what their takeovers and releases "
                   "left in locks/.")
@click.option("-n", "--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@_handle_errors
def cleanup(taskfile: str, args: tuple, store: str | None, locks_only: bool, dry_run: bool,
            verbose: bool, debug: bool) -> None:
    """Remove stale claims, leftover temp files, and results no task of FILE produces.

    Never removes a live claim. Prints what it removed, then one line per kind
    with its count.

    \b
    Example:
      taskflow cleanup taskfile.py --dry-run
    """
    from .cleanup import cleanup as run_cleanup
    from .taskfile import load

    _configure_logging(verbose, False)
    s = _open_store(taskfile, store)
    if locks_only:
        tasks, complete = [], True
    else:
        loaded = load(taskfile, s, args)
        tasks, complete = loaded.tasks, loaded.complete
    removed = run_cleanup(s, tasks, complete, dry_run=dry_run, locks_only=locks_only)
    verb = "would remove" if dry_run else "removed"
    for lock in removed.stale_locks:
        click.echo(f"{verb} stale claim {lock}")
    for h in removed.results:
        click.echo(f"{verb} result {h}")
    for h in removed.failures:
        click.echo(f"{verb} failure record {h}")
    for h in removed.suspects:
        click.echo(f"{verb} suspect mark {h}")
    for name in removed.records:
        click.echo(f"{verb} completion record {name}")
    for name in removed.leftovers:
        click.echo(f"{verb} leftover lock file {name}")
    for path in removed.tmp:
        click.echo(f"{verb} temp file {path}")
    for path in removed.doctor:
        click.echo(f"{verb} doctor's scratch folder {path}")
    for line in removed.summary(verb):
        click.echo(line)
    if removed.kept_live:
        click.echo(f"kept {len(removed.kept_live)} live claim(s)")
    if not removed.count():
        click.echo("nothing to remove")


from . import cli_cluster  # noqa: E402,F401  (registers submit and wait)
from . import cli_operate  # noqa: E402,F401  (registers invalidate, report, show, graph, shell)
from . import cli_jug  # noqa: E402,F401  (registers import-jug)


if __name__ == "__main__":  # pragma: no cover
    main()
