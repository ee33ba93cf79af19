"""A failed task's traceback as its failure record keeps it: the task's own frames.

A task runs below a few of taskflow's frames (`run_task`, `Task.run`, the
worker's loop in some executors); those say nothing about why the task
failed, name taskflow's install paths and change from one release to the
next, so they are left out. Only the frames above the task's first call are
dropped: where the task calls back into taskflow (`value()`, a store), those
frames are the task's story and stay. An exception raised with no frame of
the task at all (a result that cannot be pickled, raised while taskflow
encodes it) keeps its exception line alone. Chained exceptions (`raise ...
from`, or raised while handling another) keep their tracebacks as Python
prints them: they start inside the task.
"""
from __future__ import annotations

import os
import traceback
from types import TracebackType

# Every module of the package lives under this folder; a frame whose code comes from there is taskflow's.
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def is_taskflow_frame(tb: TracebackType) -> bool:
    return os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(_PACKAGE)


def task_frames(tb: TracebackType | None) -> TracebackType | None:
    """`tb` from the first frame that is not taskflow's: the task's call and everything below it."""
    while tb is not None and is_taskflow_frame(tb):
        tb = tb.tb_next
    return tb


def task_traceback(e: BaseException) -> str:
    """The text of `e` with its traceback, as Python prints it, less taskflow's frames above the task."""
    return "".join(traceback.format_exception(type(e), e, task_frames(e.__traceback__)))
