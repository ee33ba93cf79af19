"""The `taskflow` command: a thin layer over the library, and the only place
that maps errors to exit codes and configures logging.

The group and what every command shares are in base.py; each group of
commands is one module registering on it (running, inspecting, maintaining,
cluster, jug, web), imported when one of its commands is run: a new command
goes in one of them, or in a new module importing from .base, and is named
in base.COMMAND_MODULES.

Exit codes (taskflow.errors.ExitCode):
  0    every task finished (check: all finished)
  1    a task failed (check: not all finished)
  2    usage error, or a taskfile that cannot be loaded
  3    tasks remain that this worker could not run (limits, STOP, --wait, SIGTERM)
  4    the store could not be written or read (full disk, quota, permissions, read-only)
  130  interrupted with Ctrl-C
"""
from __future__ import annotations

from .base import (EXIT_CODES_HELP, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_REMAINING, EXIT_STORE, EXIT_USAGE,
                   TARGET_HELP, ExitCode, _common, _configure_logging, _duration, _handle_errors, _open_store,
                   _store_option, log, main, run)
from .running import _array_rank

# What commands built outside this package import from taskflow.cli.
__all__ = ["EXIT_CODES_HELP", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_REMAINING", "EXIT_STORE",
           "EXIT_USAGE", "TARGET_HELP", "ExitCode", "_array_rank", "_common", "_configure_logging", "_duration",
           "_handle_errors", "_open_store", "_store_option", "log", "main", "run"]
