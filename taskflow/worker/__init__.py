"""A worker: claims ready tasks, has its executor run them, saves their results, repeats.

The parts, each extending the one before: checks.py, graph.py, refresh.py,
handoff.py, attempt.py, loop.py (`Worker`). What runs a task is an executor
(taskflow.executors).
"""
from __future__ import annotations

from ..signals import Terminated
from .loop import Worker
from .options import Options, Outcome, RunSummary
from .reporter import NamedTask, Reporter

__all__ = ["NamedTask", "Options", "Outcome", "Reporter", "RunSummary", "Terminated", "Worker"]
