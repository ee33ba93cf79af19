"""`execute --dask ADDRESS`: the taskfile's tasks as Dask futures, through every barrier."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..stores.base import Store
from ..worker import Options, Reporter, RunSummary

if TYPE_CHECKING:
    from ..jobs import JobRecord
    from ..submit import SubmitOptions


def check_options(**given: Any) -> None:
    """UsageError for an `execute` option that means nothing with --dask (given: not None/1/False)."""
    meaning = {"jobs": "the Dask cluster's workers run the tasks", "wait": "the run waits for every task",
               "max_tasks": "every task is submitted at once", "max_time": "every task is submitted at once",
               "cpus": "each Dask worker is one process", "mem": "each Dask worker is one process",
               "gpus": "each Dask worker is one process"}
    for name, value in given.items():
        if value is not None and value is not False and not (name == "jobs" and value == 1):
            option = "--" + name.replace("_", "-")
            raise UsageError(f"{option} cannot be combined with --dask: {meaning.get(name, 'not supported')}")


def execute_on_dask(taskfile: str, store: Store, address: str, argv: Sequence[str] = (),
                    options: Options | None = None, reporter: Reporter | None = None,
                    client: Any = None) -> RunSummary:
    """Run `taskfile` on the Dask cluster `address` names (see clusters.parse), or on `client`.

    Exit codes and outcomes are those of `execute.execute`; the claims are
    taken on the Dask workers, which load the taskfile themselves (once per
    process and pass).
    """
    from ..execute import execute
    from .clusters import connect, parse
    from . import require
    from .runner import DaskRunner

    options = options or Options()
    with contextlib.ExitStack() as stack:
        if client is None:
            parse(address)  # a bad address fails before the store is touched, and so does a missing extra
            require()

            def open_client() -> Any:
                return stack.enter_context(connect(address, store.worker_environment()))
        else:
            def open_client() -> Any:
                return client
        runner = DaskRunner(open_client, store, taskfile, tuple(argv), options, reporter)
        stack.callback(runner.close)
        return execute(taskfile, store, argv, options, reporter, runner=runner)


def submit_on_dask(taskfile: str, store: Store, submit: SubmitOptions, argv: Sequence[str] = (),
                   options: Options | None = None, reporter: Reporter | None = None, log_dir: str | None = None,
                   on_submitted: Callable[[JobRecord], None] | None = None) -> RunSummary:
    """`submit --dask`: start `submit.workers` Dask workers as batch jobs of `submit.scheduler`, run
    `taskfile` on them here, release the jobs (also on Ctrl-C and SIGTERM)."""
    from ..schedulers import choose
    from .jobqueue import batch_cluster

    scheduler = choose(submit.scheduler)
    with batch_cluster(scheduler, submit, store, taskfile, log_dir, on_submitted) as client:
        return execute_on_dask(taskfile, store, "", argv, options, reporter, client=client)
