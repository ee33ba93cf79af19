"""jug.hooks.exit_checks: limits on how much one worker does, as taskflow's worker options.

`exit_after_n_tasks(n)` is `--max-tasks n`, `exit_after_time(...)` is
`--max-time`, and `exit_if_file_exists(path)` makes `path` act like the
store's STOP file. The stricter of the command line's limit and the
taskfile's applies. As with those options, the worker takes no new task once
a limit is reached and exits 3 (work left over), where jug exits 0.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from ... import task as core
from ...errors import JugFeatureError

__all__ = ["exit_after_n_tasks", "exit_after_time", "exit_if_file_exists", "exit_env_vars"]


def _limit(key: str, amount: float) -> None:
    limits = core.active().limits
    limits[key] = min(limits.get(key, amount), amount)


def exit_after_n_tasks(n: int) -> None:
    """Take no new task after running `n` (taskflow's `--max-tasks`)."""
    _limit("max_tasks", int(n))


def exit_after_time(hours: float = 0, minutes: float = 0, seconds: float = 0) -> None:
    """Take no new task after this long (taskflow's `--max-time`)."""
    _limit("max_time", hours * 3600 + minutes * 60 + seconds)


def exit_if_file_exists(fname: str) -> None:
    """Take no new task once `fname` exists (as the store's STOP file)."""
    limits = core.active().limits
    path = os.path.abspath(fname)
    if path not in limits.setdefault("stop_files", []):
        limits["stop_files"].append(path)


def exit_env_vars(environ: Mapping[str, str] | None = None) -> None:
    """Limits from JUG_MAX_TASKS, JUG_MAX_HOURS, JUG_MAX_MINUTES, JUG_MAX_SECONDS, JUG_EXIT_IF_FILE_EXISTS."""
    env = os.environ if environ is None else environ
    if "JUG_MAX_TASKS" in env:
        exit_after_n_tasks(int(env["JUG_MAX_TASKS"]))
    parts = {unit: int(env.get(f"JUG_MAX_{unit.upper()}", 0)) for unit in ("hours", "minutes", "seconds")}
    if any(parts.values()):
        exit_after_time(**parts)
    if "JUG_EXIT_IF_FILE_EXISTS" in env:
        exit_if_file_exists(env["JUG_EXIT_IF_FILE_EXISTS"])


def exit_when_true(f: Callable, function_takes_Task: bool = False) -> Any:  # noqa: N803 - jug's name
    raise JugFeatureError("jug.hooks.exit_checks.exit_when_true",
                          "use --max-tasks, --max-time or a STOP file in the store")
