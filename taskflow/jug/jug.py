"""jug.init, set_jugdir and is_jug_running, on taskflow's store and loader."""
from __future__ import annotations

import logging
import os
from typing import Any

from .. import task as core
from .. import taskfile as loader
from ..errors import JugFeatureError
from ..stores import open_store
from ..stores.base import Store

__all__ = ["init", "set_jugdir", "is_jug_running", "store_for"]

log = logging.getLogger(__name__)


def store_for(jugdir: str | None, jugfile: str) -> str:
    """The taskflow store a jug `jugdir` stands for.

    None: the jugfile's own store (`<stem>.taskflow` beside it, or
    TASKFLOW_STORE). A path ending in `.jugdata`: the `.taskflow` folder
    beside it, where `taskflow import-jug` puts that jugdata's results when
    the jugfile sits beside it as jug's default wants. Any other path is the
    taskflow store itself.
    """
    if jugdir is None:
        return loader.store_path(jugfile)
    jugdir = os.fspath(jugdir).rstrip("/")
    if jugdir.endswith(".jugdata"):
        return jugdir[:-len(".jugdata")] + ".taskflow"
    return jugdir


def init(jugfile: str | None = None, jugdir: str | None = None, on_error: str = "exit",
         store: Any = None) -> tuple[Store, dict]:
    """Load a jugfile and its results for a notebook or script; runs no task. Returns (store, namespace).

    As `jug.init`: the namespace is the jugfile's globals (`space["results"]`),
    and loading stops at a barrier whose tasks above are not finished. A
    jugfile that cannot be loaded raises TaskfileError, whatever `on_error`.
    """
    jugfile = jugfile or "jugfile.py"
    if store is not None and not isinstance(store, Store):
        raise JugFeatureError("jug.init(store=<a jug backend>)", "pass jugdir=, a taskflow store folder")
    chosen = store or open_store(store_for(jugdir, jugfile))
    loaded = loader.load(jugfile, chosen)
    if not loaded.complete:
        log.warning("%s: stopped at a barrier whose tasks are not all finished; names below it are not "
                    "defined yet", loaded.barrier_at)
    core.activate(core.Declarations(loaded.store))  # so value() of tasks declared here finds the store
    return loaded.store, loaded.module.__dict__


def set_jugdir(jugdir: str | None) -> Store:
    """Read results from this store from now on (see `store_for`); returns it.

    Inside a taskfile that a taskflow command loads, the command's --store
    decides: set_jugdir may name that same store and no other.
    """
    declarations = core.active()
    if loader.by_command and declarations.store is not None:
        wanted = os.path.abspath(store_for(jugdir, declarations.store.url))
        if wanted != os.path.abspath(declarations.store.url) and jugdir is not None:
            raise JugFeatureError(f"set_jugdir({jugdir!r}) in a taskfile",
                                  f"the store is {declarations.store}; choose it with --store or TASKFLOW_STORE")
        return declarations.store
    store = open_store(store_for(jugdir, "jugfile.py"))
    declarations.store = store
    return store


def is_jug_running() -> bool:
    """True while a taskflow command loads the taskfile or runs its tasks (as `jug` would be)."""
    return loader.by_command


def __getattr__(name: str) -> Any:
    if name in ("main", "main_execute", "execution_loop"):
        raise JugFeatureError(f"jug.jug.{name}", "run the taskflow command (`taskflow execute FILE`)")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
