"""`jug` as a name for `taskflow.jug`, only while taskflow loads a taskfile or runs a jug task.

Jugfiles say `from jug import TaskGenerator`. While `jug_alias()` is active,
`jug` and `jug.<sub>` import as `taskflow.jug` and `taskflow.jug.<sub>`,
whether or not jug itself is installed, and a real jug imported earlier is
put aside. Afterwards every `jug` entry this alias added to `sys.modules` is
removed and what was there before is put back, so the rest of the process
(a notebook that also imports the real jug, say) never sees the alias.

Modules keep their own names: a class of `taskflow.jug.io` pickles as
`taskflow.jug.io.NoLoad`, which any process can unpickle, alias or not. Jug's
own pickles name `jug.*`; they are read (by `import-jug`, or by a task) with
the alias active.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

from .errors import JugImportError

# jug's submodules that have a counterpart here; any other `jug.X` is refused by name.
COVERED = {"task", "mapreduce", "compound", "utils", "io", "hooks", "hooks.exit_checks", "barrier", "hash", "jug"}

UNCOVERED = {
    "backends": "taskflow keeps results in its own store folder: pass --store DIR (or TASKFLOW_STORE)",
    "subcommands": "run the taskflow command instead (`taskflow execute`, `status`, `invalidate`, ...)",
    "tests": "jug's test suite is part of jug, not of its API",
    "options": "pass taskflow's command-line options (`taskflow execute --help`); set_jugdir is `jug.set_jugdir`",
    "hooks.register": "use --max-tasks, --max-time or a STOP file in the store instead of hooks",
    "hooks.execution": "`taskflow report` shows each task's running time",
    "internal": "run `taskflow execute --debug` to see tracebacks",
    "unsafe": "use taskflow.jug.barrier / bvalue",
    "skills": "read docs/jug.md",
}

_lock = threading.RLock()
_depth = 0
_saved: dict = {}
_added: list[str] = []


def _is_jug(name: str) -> bool:
    return name == "jug" or name.startswith("jug.")


class _Loader:  # duck-typed, as the import system allows: importlib.abc costs every start 0.3 ms
    """Loads `jug` as taskflow.jug, and registers its covered submodules under `jug.` too.

    Registering them all at once matters: a submodule loaded through the import
    system would be set as an attribute of its parent, and `jug.barrier` the
    module would then hide `jug.barrier` the function.
    """

    def create_module(self, spec):
        return importlib.import_module("taskflow.jug")

    def exec_module(self, module) -> None:
        # The import system stamped the alias's spec on the real package: give it back its own.
        module.__spec__ = _own_spec
        _added.append("jug")
        for sub in sorted(COVERED):
            real = sys.modules.get(f"taskflow.jug.{sub}")
            if real is not None and f"jug.{sub}" not in sys.modules:
                sys.modules[f"jug.{sub}"] = real
                _added.append(f"jug.{sub}")


class _Finder:
    def find_spec(self, fullname, path=None, target=None):
        if not _is_jug(fullname):
            return None
        if fullname == "jug":
            global _own_spec
            if _own_spec is None:
                _own_spec = importlib.import_module("taskflow.jug").__spec__
            return importlib.machinery.ModuleSpec("jug", cast("importlib.abc.Loader", _Loader()))
        # Covered submodules are in sys.modules already (see _Loader): this one is not covered.
        sub = fullname[len("jug."):]
        hint = UNCOVERED.get(sub) or UNCOVERED.get(sub.split(".")[0])
        raise JugImportError(f"module {fullname}", hint or "docs/jug.md lists what is covered")


_own_spec: importlib.machinery.ModuleSpec | None = None
_finder = _Finder()


@contextmanager
def jug_alias() -> Iterator[None]:
    """Let `import jug...` mean `taskflow.jug...` inside this block (re-entrant)."""
    global _depth
    with _lock:
        if _depth == 0:
            if "jug" in sys.modules:  # a real jug was imported: put it aside
                for name in [n for n in sys.modules if _is_jug(n)]:
                    _saved[name] = sys.modules.pop(name)
            sys.meta_path.insert(0, _finder)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                try:
                    sys.meta_path.remove(_finder)
                except ValueError:
                    pass
                for name in _added:
                    sys.modules.pop(name, None)
                _added.clear()
                sys.modules.update(_saved)
                _saved.clear()


def active() -> bool:
    """True inside `jug_alias()` (a taskfile loading, or a jug task running)."""
    return _depth > 0
