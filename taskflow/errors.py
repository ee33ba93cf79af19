"""The one error hierarchy of taskflow.

Every error a user can cause is a `TaskflowError` whose message is a single
line naming the file, task or argument at fault. Each class says which exit
code it ends a command with (`exit_code`); only the CLI turns errors into exit
codes (see `taskflow.cli`), and it asks this attribute.

Errors cross process boundaries (`execute --jobs` workers, engines running
tasks elsewhere), so every one of them pickles with its message and attributes.
"""
from __future__ import annotations

import enum
from typing import Any


class ExitCode(enum.IntEnum):
    """The exit codes of every `taskflow` command (README: Exit codes)."""

    OK = 0  # every task finished; the command did what it was asked
    FAILED = 1  # a task failed, or a check found something wrong
    USAGE = 2  # a usage error, or a taskfile that cannot be loaded
    REMAINING = 3  # tasks remain that this worker could not run (limits, STOP, --wait, SIGTERM)
    STORE = 4  # the store could not be written or read
    INTERRUPTED = 130  # Ctrl-C


def _restore(cls: type[BaseException], args: tuple, state: dict[str, Any]) -> BaseException:
    # Without calling __init__: its parameters differ from the one message in `args`.
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class TaskflowError(Exception):
    """Root of every error taskflow raises on purpose."""

    exit_code: ExitCode = ExitCode.USAGE

    def __reduce__(self) -> tuple:
        # The default would call cls(*self.args), which fails for classes whose __init__
        # takes other parameters than the message it builds.
        return _restore, (type(self), self.args, dict(self.__dict__))


class UsageError(TaskflowError):
    """A command-line option or API argument is invalid."""


class ExtraMissingError(UsageError):
    """An option needs an optional extra of taskflow that is not installed (`pip install 'taskflow[X]'`)."""

    def __init__(self, message: str, extra: str | None = None):
        self.extra = extra
        super().__init__(message)


class NoTaskMatchesError(UsageError):
    """A task-selection pattern (see taskflow.selection) matches no task."""

    def __init__(self, message: str, pattern: str | None = None):
        self.pattern = pattern
        super().__init__(message)


class TaskfileError(TaskflowError):
    """The taskfile cannot be loaded: missing, syntax error, or it raised."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)


class TaskDeclarationError(TaskflowError):
    """A task was declared with something taskflow cannot name or hash."""

    def __init__(self, message: str, task: str | None = None, argument: str | None = None):
        self.task = task
        self.argument = argument
        super().__init__(message)


class UnhashableArgumentError(TaskDeclarationError):
    """An argument of a task has a type taskflow cannot hash stably."""


class StoreError(TaskflowError):
    """The store folder is unusable (not a taskflow store, wrong format, unwritable)."""

    def __init__(self, message: str, path: str | None = None):
        self.path = path
        super().__init__(message)


class StoreAccessError(StoreError):
    """The store could not be written or read (full disk, quota, permissions, I/O error)."""

    exit_code = ExitCode.STORE


class UntrustedResultError(StoreAccessError):
    """A pickled result not loaded, since others than this user (and the store's group) can write it
    or a folder above it, and unpickling runs code (see stores/folder/trust.py). `path` is what
    they can write; `why` says who."""

    def __init__(self, path: str, why: str):
        self.why = why
        super().__init__(f"{path}: {why}; refusing to unpickle what others could have written "
                         "(--trust-store or TASKFLOW_TRUST=1 loads it anyway)", path=path)


class StoreServerError(StoreAccessError):
    """The server holding a store (Redis) cannot be reached, refuses the login or the database, is out
    of memory, or went away mid-run. `path` names the server, never its password."""


class ResultMissingError(TaskflowError):
    """A result was asked for but the task has not finished."""

    def __init__(self, task: str, task_hash: str):
        self.task = task
        self.task_hash = task_hash
        super().__init__(f"task {task} ({task_hash[:12]}) has no result yet: run `taskflow execute` first")


class CorruptResultError(TaskflowError):
    """A stored result failed its integrity check (truncated or altered)."""

    def __init__(self, path: str, reason: str, advice: str | None = None):
        self.path = path
        self.reason = reason
        self.advice = advice
        super().__init__(f"corrupt result {path}: {reason}" + (f"; {advice}" if advice else ""))


class UnsignedResultError(CorruptResultError):
    """A result not signed with the store's key (see signing.py): written without it, changed since,
    signed with another key, or another task's. Counted as damage: execute moves it aside and
    computes it again, and nothing of it is unpickled."""

    def __init__(self, path: str, reason: str, advice: str | None = None):
        self.path = path
        self.reason = reason
        self.advice = advice or ("a store signed with another key you hold is re-signed by "
                                 "`taskflow store sign --old-key-file`")
        TaskflowError.__init__(self, f"unsigned result {path}: {reason}; {self.advice}")


class KeyFileError(UsageError):
    """The signing key's file is missing, unreadable, too short, or readable by others than its owner."""

    def __init__(self, message: str, path: str | None = None):
        self.path = path
        super().__init__(message)


class TaskFailedError(TaskflowError):
    """A result was asked for but the task failed; its failure record says why."""

    def __init__(self, task: str, task_hash: str, message: str):
        self.task = task
        self.task_hash = task_hash
        super().__init__(f"task {task} ({task_hash[:12]}) failed: {message}")


class SchedulerError(TaskflowError):
    """A batch scheduler is missing, rejected a job or answered something unreadable."""

    def __init__(self, message: str, scheduler: str | None = None):
        self.scheduler = scheduler
        super().__init__(message)


class EngineError(TaskflowError):
    """A cluster of engines (ipyparallel) cannot be reached or used, or its optional package is missing."""

    def __init__(self, message: str, engine: str | None = None):
        self.engine = engine
        super().__init__(message)


class JugFeatureError(TaskflowError):
    """A taskfile uses a part of jug that taskflow's compatibility package does not cover."""

    def __init__(self, feature: str, instead: str):
        self.feature = feature
        self.instead = instead
        super().__init__(f"{feature} is not covered by taskflow's jug compatibility: {instead}")


class JugImportError(JugFeatureError, ImportError):
    """`import jug.X` for a jug submodule that has no counterpart in taskflow.jug."""

    def __init__(self, feature: str, instead: str):
        JugFeatureError.__init__(self, feature, instead)
        self.name = feature

    def __reduce__(self) -> tuple:
        # ImportError keeps `name` outside __dict__: build it again from what it was made of.
        return type(self), (self.feature, self.instead)
