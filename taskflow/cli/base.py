"""What every `taskflow` command shares: the click group, the common options,
logging, and the one place that maps errors to exit codes (each error's
`exit_code`, see taskflow.errors).
"""
from __future__ import annotations

import atexit
import functools
import importlib
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from .._version import __version__
from ..errors import ExitCode, StoreAccessError, TaskflowError
from ..stores.base import Store

# Short names of the exit codes, for command modules that import them from taskflow.cli.
EXIT_OK, EXIT_FAILED, EXIT_USAGE = ExitCode.OK, ExitCode.FAILED, ExitCode.USAGE
EXIT_REMAINING, EXIT_STORE, EXIT_INTERRUPTED = ExitCode.REMAINING, ExitCode.STORE, ExitCode.INTERRUPTED

EXIT_CODES_HELP = """\b
Exit codes:
  0    every task finished
  1    a task failed
  2    usage error, or the taskfile cannot be loaded (with --dask:
       taskflow[dask] not installed, or no Dask scheduler answers)
  3    tasks remain that this worker could not run
       (--max-tasks, --max-time, --wait, a STOP file, SIGTERM, or
       only tasks left that do not fit it or its time left)
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
        return handling_errors(lambda: f(*args, **kwargs), kwargs.get("debug", False), kwargs.get("progress_fd"))
    return wrapper


def handling_errors(call: Callable[[], Any], debug: bool, progress_fd: int | None = None) -> Any:
    """`call()`, with library errors turned into one line on stderr (for a worker of --jobs, a
    message on its progress pipe: `progress_fd`) and their exit code; tracebacks only with `debug`."""
    debug = debug or os.environ.get("TASKFLOW_DEBUG") == "1"
    try:
        try:
            return call()
        except OSError as e:
            # A command writing into a store it cannot write (read-only, permissions, full).
            from ..stores.base import UNWRITABLE
            if debug or e.errno not in UNWRITABLE:
                raise
            raise StoreAccessError(f"cannot write {e.filename or 'in the store'}: {e.strerror}",
                                   path=e.filename) from e
    except TaskflowError as e:
        if debug:
            raise
        if progress_fd is not None:
            # A worker of --jobs: the pool prints each distinct error once, not once per worker.
            from ..progress import send_error
            send_error(progress_fd, str(e))
        else:
            click.echo(f"taskflow: error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("taskflow: interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)


def _store_option(f: Callable) -> Callable:
    return click.option("--store", "store", metavar="DIR|URL", envvar="TASKFLOW_STORE",
                        help="Store: a folder, or redis://HOST:PORT/DB [default: <taskfile stem>.taskflow "
                             "beside the taskfile; env TASKFLOW_STORE].")(f)


def _common(f: Callable) -> Callable:
    f = click.argument("args", nargs=-1, type=click.UNPROCESSED)(f)
    f = click.argument("taskfile", metavar="FILE")(f)
    f = _store_option(f)
    f = _sharing_options(f)
    return _diagnostic_options(f)


def _set_environment(name: str) -> Callable:
    # Through the environment, so that every process this one starts (--jobs workers, array jobs,
    # workers the web page launches) opens the store the same way.
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value:
            os.environ[name] = "1" if value is True else value
    return callback


def _set_path_environment(name: str) -> Callable:
    # As a full path: the processes it reaches may start in other folders.
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value:
            os.environ[name] = os.path.abspath(os.path.expanduser(value))
    return callback


def _sharing_options(f: Callable) -> Callable:
    """--group, --trust-store and --key-file (SECURITY.md), which every command with a store takes."""
    f = click.option("--key-file", metavar="PATH", expose_value=False,
                     callback=_set_path_environment("TASKFLOW_KEY_FILE"),
                     help="Sign every result and failure record with the key in PATH, a file only you can read, "
                          "and refuse those it did not sign [env TASKFLOW_KEY_FILE; [tool.taskflow.store] "
                          "key_file].")(f)
    f = click.option("--trust-store", is_flag=True, expose_value=False, callback=_set_environment("TASKFLOW_TRUST"),
                     help="Load pickled results even where others than you (and the store's group) could have "
                          "written them [env TASKFLOW_TRUST=1].")(f)
    f = click.option("--group", metavar="NAME", expose_value=False, callback=_set_environment("TASKFLOW_GROUP"),
                     help="Make a new store a group store of NAME: its members may write in it, others may not "
                          "[env TASKFLOW_GROUP; [tool.taskflow.store] group].")(f)
    return f


def _diagnostic_options(f: Callable) -> Callable:
    """--debug and -v, which every command takes."""
    f = click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")(f)
    f = click.option("-v", "--verbose", is_flag=True, help="Log more detail to stderr.")(f)
    return f


def _open_store(taskfile: str, store: str | None, fsync: bool = False) -> Store:
    from ..stores import open_store
    from ..taskfile import store_path

    s = open_store(store_path(taskfile, store), fsync=fsync)
    s.taskfile = taskfile  # for messages, and where a store keeps its local folders (jobs_folder)
    s.check_format()
    return s


# The module of this package that registers each command on `main`. Only the module of the command
# being run is imported, so a worker on every node of an array job reads none of the others.
COMMAND_MODULES = {
    "execute": "running", "shell": "running", "stop": "running",
    "status": "inspecting", "check": "inspecting", "report": "inspecting", "show": "inspecting",
    "graph": "inspecting",
    "pack": "maintaining", "store": "maintaining", "cleanup": "maintaining", "invalidate": "maintaining",
    "doctor": "maintaining",
    "submit": "cluster", "wait": "cluster",
    "web": "web",
    "import-jug": "jug",
}


class CommandGroup(click.Group):
    """The `taskflow` group, importing a command's module when the command is asked for."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            importlib.import_module(f"{__package__}.{COMMAND_MODULES[cmd_name]}")
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        for module in sorted(set(COMMAND_MODULES.values())):
            importlib.import_module(f"{__package__}.{module}")
        return super().list_commands(ctx)


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="taskflow")
def main() -> None:
    """Run task graphs on one machine or many batch-cluster nodes, coordinated
    through a shared folder (the store).

    \b
    Example:
      taskflow execute taskfile.py --jobs 4
      taskflow status taskfile.py
    """
    from .. import taskfile
    taskfile.by_command = True


# Set by a command whose process ran no user code and keeps nothing that only the interpreter's
# teardown would finish: the --jobs pool, which loads no taskfile. Its teardown (freeing every module,
# a last full collection) takes 10-15 ms after its last worker is gone, on every run of --jobs.
ends_without_teardown = False


def run() -> None:
    """The `taskflow` command: the console script and `python -m taskflow`."""
    try:
        main(prog_name="taskflow")
    except SystemExit as e:
        if ends_without_teardown and isinstance(e.code, (int, type(None))):
            _end_now(e.code or 0)
        raise


def _end_now(code: int) -> None:
    """Exit as the interpreter would, exit handlers (logging's flush among them) and all, but
    without freeing what the process holds; returns only where that cannot be done the same."""
    run_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_handlers is None:  # not CPython's atexit
        return
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:  # the ordinary exit waits for them
        return
    run_handlers()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe: the ordinary exit reports it as it always does
        return
    os._exit(code)


def _duration(option: str) -> Callable:
    def convert(ctx, param, text):
        from ..units import parse_duration

        if text is None:
            return None
        try:
            return parse_duration(text, option)
        except TaskflowError:
            # click names the option itself.
            raise click.BadParameter(f"cannot read {text!r} as a duration (examples: 90, 45m, 3h30m, 1d)") from None
    return convert
