"""Loading a taskfile: run it as a module and collect the tasks it declares.

The module is named after the file's stem, so `countwords` in `taskfile.py`
makes tasks named `taskfile.countwords`, and results holding the taskfile's
own classes unpickle once the taskfile is loaded again. A `barrier()` whose
tasks above are not all finished stops the load there: the caller sees the
tasks above it and `Loaded.complete` is false.
"""
from __future__ import annotations

import logging
import os
import sys
import traceback
import types
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from .errors import TaskfileError, TaskflowError
from .store import Store
from .task import Declarations, Task, activate, active

log = logging.getLogger(__name__)


class BarrierReached(BaseException):
    """Stops a taskfile at a barrier whose tasks are not all finished.

    A BaseException so that a taskfile's own `except Exception` cannot swallow it.
    """

    def __init__(self, line: int | None):
        super().__init__(line)
        self.line = line


@dataclass
class Loaded:
    path: str
    module: types.ModuleType
    tasks: list[Task]
    store: Store
    complete: bool  # False when loading stopped at a barrier
    barrier_line: int | None = None  # where it stopped

    @property
    def barrier_at(self) -> str:
        return f"{self.path}:{self.barrier_line}" if self.barrier_line else self.path


def default_store_path(taskfile: str) -> str:
    path = os.path.abspath(taskfile)
    stem = os.path.splitext(os.path.basename(path))[0]
    return os.path.join(os.path.dirname(path), stem + ".taskflow")


def store_path(taskfile: str, store: str | None = None) -> str:
    """--store wins, then TASKFLOW_STORE, then `<stem>.taskflow` beside the taskfile."""
    return store or os.environ.get("TASKFLOW_STORE") or default_store_path(taskfile)


def _line_in(path: str, tb: types.TracebackType | None) -> int | None:
    line = None
    for frame, lineno in traceback.walk_tb(tb):
        if frame.f_code.co_filename == path:
            line = lineno
    return line


def load(taskfile: str, store: Store, argv: Sequence[str] = (), finished: Iterable[str] = ()) -> Loaded:
    """Run the taskfile and return what it declared. Never runs a task.

    `finished`: hashes of results the caller confirmed are in place, which
    barriers then take as finished whatever a (possibly stale) listing says.
    """
    path = os.path.abspath(taskfile)
    if not os.path.isfile(path):
        raise TaskfileError("no such taskfile" if not os.path.exists(path) else "not a file", path)
    try:
        with open(path, "rb") as f:
            source = f.read()
        code = compile(source, path, "exec")
    except SyntaxError as e:
        raise TaskfileError(f"syntax error: {e.msg}", path, e.lineno) from None
    except (OSError, ValueError) as e:
        raise TaskfileError(f"cannot read: {e}", path) from None

    stem = os.path.splitext(os.path.basename(path))[0]
    _refuse_shadowing(stem, path)
    module = types.ModuleType(stem)
    module.__file__ = path
    module.__builtins__ = __builtins__
    module.__taskflow_taskfile__ = True
    sys.modules[stem] = module
    # Kept after loading: tasks may import modules beside the taskfile while they
    # run, and results may hold their classes.
    folder = os.path.dirname(path)
    if folder not in sys.path:
        sys.path.insert(0, folder)

    if store is not None and store.taskfile is None:
        store.taskfile = taskfile
    declarations = Declarations(store)
    declarations.known_finished.update(finished)
    previous = activate(declarations)
    saved_argv = sys.argv
    sys.argv = [path, *argv]
    complete, barrier_line = True, None
    try:
        exec(code, module.__dict__)
    except BarrierReached as e:
        complete, barrier_line = False, e.line
    except SystemExit as e:
        raise TaskfileError(f"the taskfile called sys.exit({e.code!r}) while loading", path) from None
    except TaskflowError as e:
        raise TaskfileError(str(e), path, _line_in(path, e.__traceback__)) from e
    except Exception as e:
        raise TaskfileError(f"{type(e).__name__}: {e}", path, _line_in(path, e.__traceback__)) from e
    finally:
        activate(previous)
        sys.argv = saved_argv
    return Loaded(path, module, list(declarations.tasks.values()), store, complete, barrier_line)


def _refuse_shadowing(stem: str, path: str) -> None:
    """The taskfile becomes module `stem`: refuse to replace another module of that name.

    Replacing, say, `html` or `pickle` would break whatever imports it later,
    taskflow included. A module loaded from this very file, or an earlier load
    of a taskfile, may be replaced.
    """
    existing = sys.modules.get(stem)
    if existing is None or getattr(existing, "__taskflow_taskfile__", False):
        return
    other = getattr(existing, "__file__", None)
    if other is not None and os.path.abspath(other) == path:
        return
    raise TaskfileError(f"the taskfile would be module {stem!r}, which is already the module "
                        f"{getattr(existing, '__file__', None) or stem}: rename the taskfile", path)


def barrier() -> None:
    """Load nothing below this line until every task declared above is finished."""
    declarations = active()
    store = declarations.store
    if store is None:
        return  # not loaded by taskflow (a plain `python taskfile.py`): nothing to wait for
    pending = [h for h in declarations.tasks if h not in declarations.known_finished]
    if len(pending) > 64:
        finished = store.finished_hashes()
    else:
        finished = {h for h in pending if store.has_result(h)}
    declarations.known_finished |= finished
    if any(h not in finished for h in pending):
        raise BarrierReached(_caller_line())


def _caller_line() -> int | None:
    """The taskfile line that called barrier() (or bvalue())."""
    frame = sys._getframe(1)
    here = frame.f_code.co_filename
    while frame is not None and frame.f_code.co_filename == here:
        frame = frame.f_back
    return frame.f_lineno if frame is not None else None


def bvalue(x: Any) -> Any:
    """`barrier()` then `value(x)`: the value of x once everything above is finished."""
    from .results import value

    barrier()
    return value(x)


def init(taskfile: str, store: str | None = None, argv: Sequence[str] = (), fsync: bool = False) -> types.ModuleType:
    """Load a taskfile and its store for use in a notebook or script; runs no task.

    Returns the taskfile as a module: `ns = taskflow.init("taskfile.py")`,
    then `taskflow.value(ns.results)`.
    """
    loaded = load(taskfile, Store(store_path(taskfile, store), fsync=fsync), argv)
    if not loaded.complete:
        log.warning("%s: stopped at a barrier whose tasks are not all finished; "
                    "names below it are not defined yet", loaded.path)
    # So that value() on plain containers of tasks declared here finds the store.
    activate(Declarations(loaded.store))
    return loaded.module
