"""`taskflow shell`: the taskfile's namespace in an interactive console."""
from __future__ import annotations

import code
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .invalidate import invalidate as invalidate_tasks
from .report import describe, find
from .results import value
from .stores.base import Store
from .task import Task
from .taskfile import load


def namespace(taskfile: str, store: Store, argv: Sequence[str] = ()) -> dict[str, Any]:
    """The taskfile's globals plus `value`, `show` and `invalidate` bound to its store."""
    loaded = load(taskfile, store, argv)
    tasks = loaded.tasks

    def _targets(target: Any) -> list[Task]:
        if isinstance(target, Task):
            return [target]
        if isinstance(target, (list, tuple)):
            return [t for item in target for t in _targets(item)]
        return find(tasks, str(target))

    def show(target: Any) -> None:
        """Print everything known about tasks: a Task, a name or pattern, NAME[i] or a hash prefix."""
        for t in _targets(target):
            print(describe(t, tasks, store))
            print()

    def invalidate(target: Any) -> None:
        """Remove the results of these tasks and of everything downstream of them."""
        done = invalidate_tasks(store, tasks, _targets(target))
        for name, n in done.results.items():
            print(f"removed {n} {name} result(s)")
        for t in done.skipped_live:
            print(f"skipped {t.name} {t.hash[:12]}: a worker is running it")

    ns: dict[str, Any] = dict(vars(loaded.module))
    ns.update(value=value, show=show, invalidate=invalidate, tasks=tasks, store=store)
    return ns


BANNER = ("taskflow shell for {path}: {n} tasks. value(x) loads results, show(t) describes a task, "
          "invalidate(t) removes results; `tasks` lists every task.")


def run(taskfile: str, store: Store, argv: Sequence[str] = ()) -> None:
    ns = namespace(taskfile, store, argv)
    banner = BANNER.format(path=taskfile, n=len(ns["tasks"]))
    start_ipython: Callable[..., Any] | None
    try:
        from IPython import start_ipython
    except ImportError:
        start_ipython = None
    if start_ipython is not None and sys.stdin.isatty():
        print(banner)
        start_ipython(argv=["--no-banner"], user_ns=ns)
    else:
        # Also what runs when commands are piped in, which IPython handles poorly.
        code.interact(banner=banner, local=ns, exitmsg="")
