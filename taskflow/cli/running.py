"""Running tasks: `taskflow execute` and `taskflow shell`."""
from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

from .base import (EXIT_CODES_HELP, TARGET_HELP, ExitCode, _common, _configure_logging, _duration, _handle_errors,
                   _open_store, handling_errors, log, main)

if TYPE_CHECKING:
    from ..stores.base import Store
    from ..worker import RunSummary


@main.command(epilog=EXIT_CODES_HELP)
@_common
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Start this many worker processes on this machine.")
@click.option("--target", "targets", multiple=True, metavar="PATTERN",
              help=f"Run only tasks matching PATTERN and their dependencies; {TARGET_HELP}. Repeatable.")
@click.option("--keep-going", is_flag=True, help="After a task fails, run everything that does not depend on it.")
@click.option("--retry-failed", is_flag=True, help="Run tasks that failed before again.")
@click.option("--max-attempts", type=click.IntRange(min=1), metavar="N",
              help="Fail a task once its worker died N times while running it (killed for memory or "
                   "walltime, a crash) [default: max-attempts of [tool.taskflow.execute], else 3].")
@click.option("--lease", metavar="SECONDS", envvar="TASKFLOW_LEASE", callback=_duration("--lease"),
              default="300", show_default=True,
              help="Claims not renewed for this long are stale and taken over [env TASKFLOW_LEASE].")
@click.option("--batch-time", metavar="SECONDS", envvar="TASKFLOW_BATCH_TIME", callback=_duration("--batch-time"),
              default="1", show_default=True,
              help="Claim short tasks in batches that take about this long (at most a tenth of the lease); "
                   "0: one claim per task [env TASKFLOW_BATCH_TIME].")
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
@click.option("--cpus", type=click.IntRange(min=1), help="Cpus this worker was given [default: the scheduler's "
              "allocation, else this machine's].")
@click.option("--mem", metavar="SIZE", help="Memory this worker was given, e.g. 16G [default: the scheduler's "
              "allocation, else this machine's].")
@click.option("--gpus", type=click.IntRange(min=0),
              help="GPUs this worker was given: its tasks see the first N of CUDA_VISIBLE_DEVICES.")
@click.option("--dask", "dask_address", metavar="ADDRESS",
              help="Run the tasks on a Dask cluster: a scheduler address (tcp://host:8786) or local:N for N "
                   "worker processes here; claims and results stay in the store [needs taskflow[dask]].")
@click.option("--ipp", "ipp", is_flag=False, flag_value="default", metavar="[PROFILE|CONNECTION_FILE]",
              help="Run the tasks on the engines of a running ipyparallel cluster: its profile, or its "
                   "ipcontroller-client.json [default profile]. Needs taskflow[ipp].")
@click.option("--executor", "executor_name", metavar="NAME",
              help="What runs the tasks this worker claims: local (here, the default), ipp (as --ipp), or "
                   "another executor registered in taskflow.executors.EXECUTORS.")
@click.option("--executor-option", "executor_options", multiple=True, metavar="KEY=VALUE",
              help="An option of the --executor (ipp: cluster=PROFILE|CONNECTION_FILE). Repeatable.")
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
@click.option("--progress-fd", type=int, hidden=True)
@click.option("--wake-fd", type=int, hidden=True)
@click.option("--rank", hidden=True)
@click.option("--share", hidden=True)
@_handle_errors
def execute(taskfile: str, args: tuple, store: str | None, jobs: int, targets: tuple, keep_going: bool,
            retry_failed: bool, max_attempts: int | None, lease: float, batch_time: float, wait: float | None,
            max_tasks: int | None, max_time: float | None, fsync: bool, verify: bool, cpus: int | None, mem: str | None,
            gpus: int | None, dask_address: str | None, ipp: str | None, executor_name: str | None,
            executor_options: tuple[str, ...], quiet: bool, verbose: bool, debug: bool, progress_fd: int | None,
            wake_fd: int | None, rank: str | None, share: str | None) -> None:
    """Run the taskfile's tasks until all are finished.

    Start as many workers as you like, on this machine (--jobs) or on cluster
    nodes sharing the store: they claim tasks in the store, each claim with a lease.
    Arguments after FILE (put them after `--`) are the taskfile's sys.argv[1:].
    `taskflow stop FILE` (a file named STOP in a folder store) makes every worker take no new task.

    \b
    Example:
      taskflow execute taskfile.py --jobs 4 -- --input data.csv
    """
    from ..execute import run_pool
    from ..execute import execute as run_execute
    from ..stores.lease import check_lease
    from ..progress import LogReporter, PipeReporter, TerminalReporter
    from ..worker import Options, Reporter

    _configure_logging(verbose, quiet and not verbose)
    from_env = click.get_current_context().get_parameter_source("lease") is click.core.ParameterSource.ENVIRONMENT
    lease = check_lease(lease, "TASKFLOW_LEASE" if from_env else "--lease")
    s = _open_store(taskfile, store, fsync)
    if max_attempts is None:
        from ..config import configured_max_attempts
        max_attempts = configured_max_attempts(taskfile) or 3
    from ..capacity import capacity
    given = capacity(cpus, mem, gpus)
    log.debug("this worker may run: %s", given.describe())
    if gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(given.gpus)  # what its tasks may use
    reporter: Reporter
    if progress_fd is not None:
        reporter = PipeReporter(progress_fd)
    elif quiet:
        reporter = Reporter()
    elif sys.stderr.isatty():
        reporter = TerminalReporter()
    else:
        reporter = LogReporter()

    if ipp is not None and dask_address is not None:
        raise click.UsageError("--dask and --ipp each run the tasks on a cluster of their own: give one of them")
    if dask_address is not None and (executor_name or executor_options):
        raise click.UsageError("--dask runs the tasks on Dask's workers: give --dask or --executor, not both")
    if dask_address is not None:
        from ..dask.run import check_options, execute_on_dask
        check_options(jobs=jobs, wait=wait, max_tasks=max_tasks, max_time=max_time, cpus=cpus, mem=mem, gpus=gpus)
        from ..signals import Terminated
        options = Options(keep_going=keep_going, retry_failed=retry_failed, targets=targets, lease=lease,
                          verify=verify)
        try:
            summary = execute_on_dask(taskfile, s, dask_address, args, options, reporter)
        except Terminated:  # while the cluster started or stopped; in a pass it is the summary's outcome
            sys.exit(ExitCode.REMAINING)
        _exit_for(summary, progress_fd)

    executor = _executor(executor_name, executor_options, ipp, jobs, taskfile, s, lease, args, fsync, max_attempts)

    def work(rank: str | None, share: str | None, reporter: Reporter, progress_fd: int | None,
             wake_fd: int | None) -> NoReturn:
        """Be a worker: rank "I/N" (--rank) or as the batch array says; share: the machine share's folder;
        progress_fd, wake_fd: the pipes of a --jobs pool."""
        worker_rank, worker_size = _array_rank() if not rank else (int(x) for x in rank.split("/"))
        options = Options(keep_going=keep_going, retry_failed=retry_failed, targets=targets, lease=lease,
                          wait=wait, max_tasks=max_tasks, max_time=max_time, rank=worker_rank, size=worker_size,
                          verify=verify, max_attempts=max_attempts, capacity=given, share=share,
                          batch_time=batch_time, time_left=_walltime_left(), wake_fd=wake_fd, **executor)
        _exit_for(run_execute(taskfile, s, args, options, reporter, check_lease=progress_fd is None), progress_fd)

    if jobs == 1:
        work(rank, share, reporter, progress_fd, wake_fd)

    from ..execute import warn_if_lease_short
    warn_if_lease_short(s, lease)  # here, once, rather than in every worker
    os.environ.update(s.worker_environment())  # what the url leaves out (a password): inherited
    from ..worker import share as machine_share
    # The machine the workers share: what declared resources of their tasks may add up to.
    folder = machine_share.new_folder()
    try:
        machine_share.create(folder, given.cpus, given.memory, given.gpus)

        def forked(rank: int, pipe: int, wake: int | None) -> NoReturn:
            # A worker forked from this process has the command line parsed and checked, and the
            # store opened: it starts as the rest of a spawned worker's start would go on.
            _configure_logging(verbose, not verbose)
            handling_errors(lambda: work(f"{rank}/{jobs}", folder, PipeReporter(pipe), pipe, wake), debug, pipe)
            raise AssertionError("a worker returned")  # work() exits

        code = run_pool(jobs, _spawned_worker_args(
            taskfile, s, lease, batch_time, targets, args, folder, keep_going=keep_going, retry_failed=retry_failed,
            fsync=fsync, verify=verify, verbose=verbose, debug=debug, wait=wait, max_tasks=max_tasks,
            max_time=max_time, cpus=cpus, mem=mem, max_attempts=max_attempts), reporter, child_main=forked)
    finally:
        machine_share.remove(folder)
    from . import base
    base.ends_without_teardown = True
    sys.exit(code)


def _spawned_worker_args(taskfile: str, s: Store, lease: float, batch_time: float, targets: tuple, args: tuple,
                         share: str, **options: Any) -> list[str]:
    """The arguments after `taskflow execute` of a worker of --jobs started as a new process (where
    the platform cannot fork): the pool's own options, for one worker each."""
    # Long names only: click matches a short one (-q) as a long one first, and that failed match
    # imports difflib to suggest names (3 ms of every worker's start).
    child = [taskfile, "--store", s.url, "--lease", str(lease), "--batch-time", str(batch_time), "--quiet"]
    for t in targets:
        child += ["--target", t]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            child.append(flag)
        elif value is not None and value is not False:
            child += [flag, str(value)]
    child += ["--share", share]
    if args:
        child += ["--", *args]
    return child


def _executor(name: str | None, options: tuple[str, ...], ipp: str | None, jobs: int, taskfile: str, store: Store,
              lease: float, args: tuple, fsync: bool, max_attempts: int) -> dict:
    """The worker's `Options.executor` and `executor_args`, from --executor, --executor-option and --ipp
    (which is `--executor ipp --executor-option cluster=...`); {} for the local executor."""
    from ..executors import DEFAULT, Setup, executor_class

    if ipp is not None and name not in (None, "ipp"):
        raise click.UsageError(f"--ipp runs the tasks on ipyparallel engines: give --ipp or --executor {name}")
    if ipp is not None:
        name = "ipp"
    given: dict[str, str] = {}
    for pair in options:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.UsageError(f"--executor-option {pair!r}: give KEY=VALUE")
        given[key.strip()] = value
    if ipp is not None and ipp != "default":
        given.setdefault("cluster", ipp)
    name = name or DEFAULT
    if name == DEFAULT and not given:
        return {}
    if jobs > 1:
        flag = "--ipp" if ipp is not None else f"--executor {name}"
        raise click.UsageError(f"--jobs starts workers with the local executor: give --jobs or {flag}, not both")
    found = executor_class(name)
    return {"executor": name, "executor_args": found.arguments(Setup(taskfile, store, lease, tuple(args), fsync,
                                                                     max_attempts), given)}


def _exit_for(summary: RunSummary, progress_fd: int | None) -> NoReturn:
    """Exit as `execute` does after a run that ended with `summary`."""
    from ..execute import blocked_message
    from ..worker import Outcome

    if summary.outcome is Outcome.FINISHED:
        sys.exit(ExitCode.OK)
    if summary.outcome is Outcome.FAILED or summary.failed:  # a failure outranks work left over
        if summary.failed == 0 and summary.blockers:
            # This worker ran none of them: say which failures block it, and how to go on.
            message = blocked_message(summary)
            if progress_fd is not None:
                from ..progress import send_error
                send_error(progress_fd, message)  # the pool prints it once for all its workers
            else:
                log.error(message)
        sys.exit(ExitCode.FAILED)
    sys.exit(ExitCode.REMAINING)


def _walltime_left() -> float | None:
    """Seconds until the scheduler ends this worker's job: as its job script says, else as the
    scheduler does; None outside a job, or where neither tells."""
    from ..schedulers.environment import detect, time_left

    told = os.environ.get("TASKFLOW_WALLTIME_LEFT")
    if told:
        try:
            return float(told)
        except ValueError:
            log.warning("TASKFLOW_WALLTIME_LEFT=%s is not a number of seconds: ignored", told)
    return time_left(detect())


def _array_rank() -> tuple[int | None, int | None]:
    """This worker's place in its batch array, to spread the workers' starting points."""
    from ..schedulers.environment import detect

    job = detect()
    rank, size = job.array_rank, job.array_size
    return (rank, size) if rank is not None else (None, None)


@main.command(epilog="Exit codes: 0 on exit, 2 the taskfile cannot be loaded.")
@_common
@_handle_errors
def shell(taskfile: str, args: tuple, store: str | None, verbose: bool, debug: bool) -> None:
    """An interactive Python session with the taskfile loaded, plus value, show and invalidate.

    IPython when installed and in a terminal, the standard console otherwise.

    \b
    Example:
      taskflow shell taskfile.py
      echo 'print(value(result))' | taskflow shell taskfile.py
    """
    from ..shell import run

    _configure_logging(verbose, False)
    run(taskfile, _open_store(taskfile, store), args)
    sys.exit(ExitCode.OK)


@main.command(epilog="Exit codes: 0 done, 2 usage error, 4 the store cannot be written.")
@_common
@click.option("--undo", is_flag=True, help="Withdraw the request: workers take new tasks again.")
@_handle_errors
def stop(taskfile: str, args: tuple, store: str | None, undo: bool, verbose: bool, debug: bool) -> None:
    """Ask every worker on FILE's store to take no new task (STOP), or with --undo withdraw that.

    Running tasks finish and are saved; workers then exit 3. Works on every
    kind of store, so nobody has to create or delete a STOP file by hand.

    \b
    Example:
      taskflow stop taskfile.py
      taskflow stop taskfile.py --undo
    """
    _configure_logging(verbose, False)
    s = _open_store(taskfile, store)
    s.request_stop(on=not undo)
    if undo:
        click.echo(f"STOP withdrawn from {s}: workers take new tasks again")
    else:
        click.echo(f"STOP requested in {s}: workers take no new task (`taskflow stop {taskfile} --undo` "
                   "withdraws it)")
