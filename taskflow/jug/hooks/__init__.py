"""jug.hooks: only the exit checks are covered (see taskflow.jug.hooks.exit_checks)."""
from __future__ import annotations

from typing import Any

from ...errors import JugFeatureError
from . import exit_checks
from .exit_checks import exit_after_n_tasks, exit_after_time, exit_env_vars, exit_if_file_exists

__all__ = ["exit_checks", "exit_after_n_tasks", "exit_after_time", "exit_if_file_exists", "exit_env_vars"]


def __getattr__(name: str) -> Any:
    if name in ("jug_hook", "register_hook", "register_hook_once", "reset_all_hooks"):
        raise JugFeatureError(f"jug.hooks.{name}", "taskflow runs no hooks; for limits use --max-tasks, "
                              "--max-time or a STOP file; `taskflow report` shows each task's time")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
