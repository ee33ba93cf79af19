"""Loading a taskfile: run it as a module and collect the tasks it declares.

The module is named after the file's stem, so `countwords` in `taskfile.py`
makes tasks named `taskfile.countwords`, and results holding the taskfile's
own classes unpickle once the taskfile is loaded again. A `barrier()` whose
tasks above are not all finished, or a `bvalue(x)` whose x or a dependency of
x is not, stops the load there: the caller sees the tasks above it,
`Loaded.complete` is false and `Loaded.barrier_needs` says what the barrier
waits for.
"""
from __future__ import annotations

import gc
import logging
import os
import sys
import traceback
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import TaskfileError, TaskflowError
from .jugalias import jug_alias
from .stores import open_store
from .stores.base import Store
from .task import Declarations, Task, activate, active, closure, tasks_in

log = logging.getLogger(__name__)

# True in a `taskflow` command (not in taskflow.init from a notebook): jug's is_jug_running().
by_command = False


class BarrierReached(BaseException):
    """Stops a taskfile at a barrier whose tasks are not all finished.

    A BaseException so that a taskfile's own `except Exception` cannot swallow it.
    """

    def __init__(self, line: int | None, needs: list[Task] | None = None):
        super().__init__(line)
        self.line = line
        self.needs = needs


@dataclass
class Loaded:
    path: str
    module: types.ModuleType
    tasks: list[Task]
    store: Store
    complete: bool  # False when loading stopped at a barrier
    barrier_line: int | None = None  # where it stopped
    # What that barrier waits for: None for a barrier(), which waits for every task above
    # it; for a bvalue(x), x's tasks and their dependencies (dependencies first).
    barrier_needs: list[Task] | None = None
    barriers_passed: int = 0  # barriers the load went through before stopping
    limits: dict | None = None  # worker limits the taskfile asked for (jug's exit hooks)

    @property
    def barrier_at(self) -> str:
        return f"{self.path}:{self.barrier_line}" if self.barrier_line else self.path

    def waited_for(self) -> list[Task]:
        """The tasks the barrier that stopped loading waits for, in declaration order (none if complete)."""
        if self.complete:
            return []
        if self.barrier_needs is None:
            return self.tasks
        position = {t.hash: i for i, t in enumerate(self.tasks)}
        # Tasks declared by an earlier load (a module the taskfile imports) come first.
        return sorted(self.barrier_needs, key=lambda t: position.get(t.hash, -1))

    def barrier_open(self) -> bool:
        """Whether every task the barrier waits for is finished now (it opens on the next load)."""
        if self.complete:
            return True
        return not _unfinished(self.store, [t.hash for t in self.waited_for()], set())


def default_store_path(taskfile: str) -> str:
    path = os.path.abspath(taskfile)
    stem = os.path.splitext(os.path.basename(path))[0]
    return os.path.join(os.path.dirname(path), stem + ".taskflow")


def store_path(taskfile: str, store: str | None = None) -> str:
    """--store wins, then TASKFLOW_STORE, then `url` of `[tool.taskflow.store]` in the pyproject.toml
    beside the taskfile, then `<stem>.taskflow` beside the taskfile."""
    if store or os.environ.get("TASKFLOW_STORE"):
        return store or os.environ["TASKFLOW_STORE"]
    from .config import configured_store

    return configured_store(taskfile) or default_store_path(taskfile)


def _line_in(path: str, tb: types.TracebackType | None) -> int | None:
    line = None
    for frame, lineno in traceback.walk_tb(tb):
        if frame.f_code.co_filename == path:
            line = lineno
    return line


# Allocations between two collections of the youngest generation while a taskfile loads
# (Python's default is 700): each collection scans only objects made since the last.
_LOAD_GC_THRESHOLD = 1_000_000


def load(taskfile: str, store: Store, argv: Sequence[str] = (), finished: Iterable[str] = ()) -> Loaded:
    """Run the taskfile and return what it declared. Never runs a task.

    Refuses a store of another format (StoreError) before anything is declared.
    `finished`: hashes of results the caller confirmed are in place, which
    barriers then take as finished whatever a (possibly stale) listing says.
    """
    store.check_format()
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
    vars(module).update(__builtins__=__builtins__, __taskflow_taskfile__=True)
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
    complete, barrier_line, needs = True, None, None
    # Declaring a million tasks makes millions of objects that all live on: the cyclic
    # collector would scan them again and again (half the time of loading such a file).
    # Collect less often while loading, as often as before afterwards.
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], _LOAD_GC_THRESHOLD), *thresholds[1:])
    try:
        with jug_alias():  # a jugfile's `import jug` means taskflow.jug while it loads
            exec(code, module.__dict__)
    except BarrierReached as e:
        complete, barrier_line, needs = False, e.line, e.needs
    except SystemExit as e:
        raise TaskfileError(f"the taskfile called sys.exit({e.code!r}) while loading", path) from None
    except TaskflowError as e:
        raise TaskfileError(str(e), path, _line_in(path, e.__traceback__)) from e
    except Exception as e:
        raise TaskfileError(f"{type(e).__name__}: {e}", path, _line_in(path, e.__traceback__)) from e
    finally:
        gc.set_threshold(*thresholds)
        activate(previous)
        sys.argv = saved_argv
    return Loaded(path, module, list(declarations.tasks.values()), store, complete, barrier_line, needs,
                  declarations.barriers_passed, declarations.limits)


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
    if declarations.store is None:
        return  # not loaded by taskflow (a plain `python taskfile.py`): nothing to wait for
    if _unfinished(declarations.store, list(declarations.tasks), declarations.known_finished):
        raise BarrierReached(_caller_line())
    declarations.barriers_passed += 1


def _unfinished(store: Store, hashes: list[str], known_finished: set[str]) -> bool:
    """Whether any of `hashes` has no result; adds what it finds finished to `known_finished`."""
    pending = [h for h in hashes if h not in known_finished]
    if len(pending) > 64:
        finished = store.finished_hashes()
    else:
        finished = {h for h in pending if store.has_result(h)}
    known_finished |= finished
    return any(h not in finished for h in pending)


def _caller_line() -> int | None:
    """The taskfile line that called barrier() (or bvalue())."""
    frame: types.FrameType | None = sys._getframe(1)
    here = sys._getframe(1).f_code.co_filename
    while frame is not None and frame.f_code.co_filename == here:
        frame = frame.f_back
    return frame.f_lineno if frame is not None else None


def bvalue(x: Any) -> Any:
    """The value of x, once x's tasks and everything they depend on are finished.

    A barrier for x only: unlike `barrier()`, it does not wait for other tasks
    above it, so one that failed does not keep what is below from being declared.
    """
    from .results import value

    declarations = active()
    if declarations.store is not None:
        needs = closure(tasks_in(x).values())
        if _unfinished(declarations.store, [t.hash for t in needs], declarations.known_finished):
            raise BarrierReached(_caller_line(), needs)
        declarations.barriers_passed += 1
    return value(x)


def init(taskfile: str, store: str | None = None, argv: Sequence[str] = (), trust: bool = False,
         key_file: str | None = None) -> types.ModuleType:
    """Load a taskfile and its store for use in a notebook or script; runs no task.

    Returns the taskfile as a module: `ns = taskflow.init("taskfile.py")`,
    then `taskflow.value(ns.results)`. With `trust`, pickled results are loaded
    even where others than you (and the store's group) could have written them
    (SECURITY.md); so they are with TASKFLOW_TRUST=1. With `key_file` (else TASKFLOW_KEY_FILE, else
    `key_file` of the taskfile's [tool.taskflow.store]), results must be signed with its key (README,
    "Signed results").
    """
    opened = open_store(store_path(taskfile, store))
    opened.trusted = opened.trusted or trust
    if key_file is not None:
        from .signing import read_key

        opened.use_key(read_key(key_file))
    loaded = load(taskfile, opened, argv)
    if not loaded.complete:
        log.warning("stopped at the barrier at %s, which waits for unfinished tasks; "
                    "names below it are not defined yet", loaded.barrier_at)
    # So that value() on plain containers of tasks declared here finds the store.
    activate(Declarations(loaded.store))
    return loaded.module
