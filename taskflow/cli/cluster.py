"""The cluster commands `taskflow submit` and `taskflow wait`, registered on the `taskflow` group.

Same conventions as the other commands: data on stdout (the job id; the script and
command of a dry run), progress and messages on stderr, errors mapped to exit
codes only here.
"""
from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, NoReturn

import click

from ..errors import ExitCode, UsageError
from .base import (_common, _configure_logging, _diagnostic_options, _duration, _handle_errors, _open_store,
                   _store_option, main)

SUBMIT_EPILOG = """\b
Settings not on the command line come from TASKFLOW_SCHEDULER,
TASKFLOW_WORKERS, TASKFLOW_TIME, TASKFLOW_MEM, TASKFLOW_CPUS,
TASKFLOW_QUEUE, TASKFLOW_JOB_NAME, TASKFLOW_SUBMIT_ARGS, then from
[tool.taskflow.submit] (scheduler, workers, time, mem, cpus, queue, name,
args) in a pyproject.toml beside the taskfile.

\b
Exit codes:
  0    submitted (or shown, with --dry-run)
  2    usage error, the taskfile cannot be loaded, a bad resources= value,
       no scheduler found, or the scheduler rejected a job or answered
       something unreadable (that job is not recorded; the job ids of
       classes submitted before it are printed); with --dask also a
       missing taskflow[dask] extra
  4    the store could not be written
With --dask, the exit codes of `taskflow execute`: 0 every task finished,
1 a task failed, 3 tasks remain (STOP, SIGTERM), 130 Ctrl-C."""

if TYPE_CHECKING:
    from ..stores.base import Store
    from ..submit import SubmitOptions
    from ..wait import Progress

WAIT_EPILOG = """\b
Exit codes:
  0    every task finished
  1    a task failed and nothing else can run
  2    usage error, or the taskfile cannot be loaded
  3    the timeout passed with tasks left
  130  interrupted with Ctrl-C"""


class _SchedulerChoice(click.Choice):
    """`auto` or a name of the scheduler registry, read when asked: every command line builds
    `submit`'s options, and importing every scheduler module is for the commands that use one."""

    def __init__(self) -> None:
        super().__init__((), case_sensitive=True)

    @property
    def choices(self) -> tuple[str, ...]:
        from ..schedulers import SCHEDULERS
        return ("auto", *sorted(SCHEDULERS))

    @choices.setter
    def choices(self, value: object) -> None:
        pass  # click.Choice.__init__ sets it: the registry decides


@main.command(epilog=SUBMIT_EPILOG)
@click.argument("taskfile", metavar="FILE")
@click.argument("scheduler_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- SCHEDULER ARGS]...")
@click.option("-n", "--workers", type=click.IntRange(min=1), help="Array tasks, each running one worker.")
@click.option("--scheduler", type=_SchedulerChoice(),
              help="Batch scheduler [default: auto, the one whose commands are on PATH].")
@click.option("--time", "walltime", metavar="DURATION",
              help="Walltime per worker, e.g. 4h or 1:30:00; the worker stops taking tasks shortly before.")
@click.option("--mem", metavar="SIZE", help="Memory per worker, e.g. 8G.")
@click.option("--cpus", type=click.IntRange(min=1), help="Cpus per worker.")
@click.option("--queue", metavar="QUEUE", help="Queue (SGE, PBS) or partition (Slurm).")
@click.option("--name", metavar="NAME", help="Job name [default: taskflow-<taskfile stem>].")
@click.option("--via", type=click.Choice(["command", "drmaa"]), default="command", show_default=True,
              help="Submit with the scheduler's command (qsub, sbatch), or through its DRMAA library "
                   "(needs taskflow[drmaa] and the site's libdrmaa; DRMAA_LIBRARY_PATH).")
@click.option("--dry-run", is_flag=True, help="Print the job script and the submit command; submit nothing.")
@click.option("--dask", "dask", is_flag=True,
              help="Start the -n workers as Dask workers (one batch job each, through dask-jobqueue), run the "
                   "graph on them from here, and release the jobs at the end or on Ctrl-C/SIGTERM; exits as "
                   "`taskflow execute` does [needs taskflow[dask]].")
@click.option("--arg", "taskfile_args", multiple=True, metavar="ARG",
              help="An argument for the taskfile (its sys.argv[1:]), as after `--` in execute. Repeatable.")
@click.option("--log-dir", metavar="DIR",
              help="Folder for the workers' logs, on a filesystem the nodes can write [default: logs/ in the "
                   "store's jobs folder: jobs/ in a folder store, <taskfile stem>.taskflow-jobs/ beside the "
                   "taskfile for a Redis store].")
@_store_option
@_diagnostic_options
@_handle_errors
def submit(taskfile: str, scheduler_args: tuple, workers: int | None, scheduler: str | None,
           walltime: str | None, mem: str | None, cpus: int | None, queue: str | None, name: str | None, dry_run: bool,
           dask: bool, taskfile_args: tuple, log_dir: str | None, via: str, store: str | None, verbose: bool,
           debug: bool) -> None:
    """Submit workers for FILE as array jobs (SGE, Slurm, PBS or HTCondor), one per resource class.

    Groups the unfinished tasks by their resources= (cpus, mem, gpus, time;
    --time/--mem/--cpus for those that declare none) and writes one job
    script per class into the store's jobs folder (jobs/ in a folder store,
    <stem>.taskflow-jobs/ beside FILE for a Redis store; the one in the
    repository's scripts/ folder, filled in for FILE and the class),
    submits each with qsub or sbatch, prints the job ids, one a line, and
    records the jobs in the store, so that `taskflow status` can tell how
    many of their workers are busy. With one class -n is the array size;
    with several, -n workers are shared out in proportion to each class's
    work. Arguments after `--` go to qsub/sbatch as they are.

    \b
    Example:
      taskflow submit taskfile.py -n 20 --time 4h --mem 8G -- --account=proj42
      taskflow submit taskfile.py -n 20 --arg --delay --arg 0.1
      taskflow wait taskfile.py
    """
    from ..submit import prepare_classes, resolve_options
    from ..submit import submit as run_submit

    _configure_logging(verbose, False)
    s = _open_store(taskfile, store)
    options = resolve_options(taskfile, workers=workers, scheduler=scheduler, time=walltime, mem=mem,
                              cpus=cpus, queue=queue, name=name, extra=scheduler_args)
    options.via = via
    if dask:
        _submit_dask(taskfile, s, options, taskfile_args, log_dir, dry_run)
    classes = prepare_classes(taskfile, s, options, taskfile_args=taskfile_args, log_dir=log_dir)
    for prepared in classes:
        about = (f"{prepared.workers} worker(s) for {prepared.tasks} unfinished task(s) with "
                 f"{prepared.resources.describe()}")
        if dry_run:
            if len(classes) > 1:
                click.echo(f"# taskflow submit --dry-run: resource class {about}")
            click.echo(prepared.script_text, nl=False)
            for other, text in prepared.files.items():
                click.echo(f"# taskflow submit --dry-run: would write the script above to {prepared.script_path}, and "
                           f"this to {other}:")
                click.echo(text, nl=False)
            click.echo(f"# taskflow submit --dry-run: would write the script above to {prepared.script_path} and run:")
            click.echo(prepared.shell_command())
            continue
        record = run_submit(prepared)
        click.echo(record.job_id)
        if len(classes) > 1:
            click.echo(f"taskflow: {record.describe()}: {about}", err=True)
    if not dry_run:
        click.echo(f"taskflow: follow it with `taskflow status {taskfile}` or `taskflow wait {taskfile}`", err=True)


def _submit_dask(taskfile: str, store: Store, options: SubmitOptions, taskfile_args: tuple, log_dir: str | None,
                 dry_run: bool) -> NoReturn:
    """`submit --dask`: the Dask workers' jobs, the run on them, their exit code."""
    import os

    from ..dask.run import submit_on_dask
    from ..progress import LogReporter, TerminalReporter
    from ..signals import Terminated
    from ..stores.lease import DEFAULT_LEASE, check_lease
    from ..units import parse_duration
    from ..worker import Options
    from .running import _exit_for

    if dry_run:
        raise UsageError("--dry-run cannot be combined with --dask: the Dask workers' job script is written "
                         "by dask-jobqueue when they start (it is kept in the store's jobs folder)")
    lease = DEFAULT_LEASE
    if os.environ.get("TASKFLOW_LEASE"):
        lease = check_lease(parse_duration(os.environ["TASKFLOW_LEASE"], "TASKFLOW_LEASE"), "TASKFLOW_LEASE")
    reporter = TerminalReporter() if sys.stderr.isatty() else LogReporter()
    try:
        summary = submit_on_dask(taskfile, store, options, taskfile_args, Options(lease=lease), reporter, log_dir,
                                 on_submitted=lambda record: click.echo(record.job_id))
    except Terminated:
        click.echo("taskflow: terminated; the Dask worker jobs are released", err=True)
        sys.exit(ExitCode.REMAINING)
    _exit_for(summary, None)


class _ProgressPrinter:
    """A progress line on stderr: redrawn in place on a terminal, else printed when it changes."""

    REPEAT = 60.0  # seconds between unchanged lines in a log file, to show it is still alive

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = ""
        self.printed_at = 0.0
        self.drawn = False

    def __call__(self, progress: Progress) -> None:
        line = progress.line()
        if self.tty:
            click.echo("\r\033[K" + line, nl=False, err=True)
            self.drawn = True
            return
        gist = line.rsplit("; waited", 1)[0]
        now = time.monotonic()
        if gist != self.last or now - self.printed_at >= self.REPEAT:
            click.echo("taskflow: " + line, err=True)
            self.last, self.printed_at = gist, now

    def end(self) -> None:
        if self.drawn:
            click.echo("", err=True)


@main.command(epilog=WAIT_EPILOG)
@_common
@click.option("--timeout", metavar="DURATION", callback=_duration("--timeout"),
              help="Give up (exit 3) after this long, e.g. 2h [default: wait forever].")
@click.option("--interval", metavar="DURATION", callback=_duration("--interval"), default="5", show_default=True,
              help="Look at the store this often.")
@click.option("-q", "--quiet", is_flag=True, help="No progress line.")
@_handle_errors
def wait(taskfile: str, args: tuple, store: str | None, timeout: float | None, interval: float,
         quiet: bool, verbose: bool, debug: bool) -> None:
    """Wait until every task of FILE is finished (exit 0), a failure blocks
    the rest (exit 1), or --timeout passes (exit 3).

    Prints a progress line on stderr while it waits. Arguments after FILE
    (put them after `--`) are the taskfile's sys.argv[1:], as for execute.

    \b
    Example:
      taskflow submit taskfile.py -n 20 && taskflow wait taskfile.py --timeout 12h
    """
    from ..wait import WaitOutcome
    from ..wait import wait as run_wait

    _configure_logging(verbose, quiet and not verbose)
    if interval <= 0:
        raise click.BadParameter("must be more than 0", param_hint="--interval")
    s = _open_store(taskfile, store)
    printer = None if quiet else _ProgressPrinter()
    try:
        result = run_wait(taskfile, s, args, timeout=timeout, interval=interval, on_progress=printer)
    finally:
        if printer is not None:
            printer.end()
    t = result.report.total
    total = sum(t.values())
    if result.outcome is WaitOutcome.FINISHED:
        if not quiet:
            click.echo(f"taskflow: all {total} tasks finished", err=True)
        sys.exit(ExitCode.OK)
    if result.outcome is WaitOutcome.FAILED:
        blocked = total - t["finished"] - t["failed"]
        click.echo(f"taskflow: {t['failed']} task(s) failed" + (f" and {blocked} cannot run" if blocked else "")
                   + f"; see `taskflow status {taskfile} --failed`", err=True)
        sys.exit(ExitCode.FAILED)
    if not quiet:
        click.echo(f"taskflow: timed out with {total - t['finished']} of {total} tasks not finished", err=True)
    sys.exit(ExitCode.REMAINING)
