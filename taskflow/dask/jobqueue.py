"""`submit --dask -n N`: N Dask workers as batch jobs (dask-jobqueue), the graph run on them here.

The jobs ask for what `taskflow submit` would ask for (the same directives,
from the scheduler's `resource_lines`: walltime, memory, cpus, queue, and the
extra scheduler arguments), start in this directory with this Python, and
write their logs to the store's job log folder. Each is recorded like a
submitted array job (`jobs.JobRecord`, one worker each), and the Dask workers
claim tasks as `<scheduler>:<job>.0` (engine.engine_worker_id), so
`taskflow status` counts them as active workers. The jobs are released when
the run ends, on Ctrl-C and on SIGTERM.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from .. import jobs
from ..errors import SchedulerError, UsageError
from ..schedulers import SCHEDULERS, Scheduler, ScriptSpec, format_walltime, job_number, safe_job_name
from ..signals import Terminated
from ..stores.base import Store
from ..submit import SubmitOptions
from . import require
from .clusters import SCHEDULER_CONFIG

log = logging.getLogger(__name__)

STARTED_TIMEOUT = 120.0  # seconds for the scheduler to accept every job


def cluster_options(scheduler: Scheduler, options: SubmitOptions, log_dir: str, name: str,
                    python: str = sys.executable, cwd: str | None = None) -> dict[str, Any]:
    """The keyword arguments of the dask-jobqueue cluster class for `scheduler` (its `dask_cluster`)."""
    if not scheduler.dask_cluster:
        runs_on = sorted(s.name for s in SCHEDULERS.values() if s.dask_cluster)
        raise UsageError(f"--dask runs on {', '.join(runs_on)}, not {scheduler.name}")
    spec = ScriptSpec(walltime=options.walltime, memory=options.memory, queue=options.queue, cpus=options.cpus)
    # taskflow's own directives, without the prefix: dask-jobqueue writes that. Its own directives for what
    # these ask for are left out (`dask_skip`), so that each is asked for once, as `taskflow submit` asks for
    # it (its default walltime of 30 minutes too).
    prefix = scheduler.directive_prefix + " "
    directives = [line[len(prefix):] for line in scheduler.resource_lines(spec)]
    directives += scheduler.dask_directives
    if options.extra:
        directives.append(shlex.join(options.extra))
    cpus = options.cpus or 1
    worker_args: list[str] = []
    if options.memory is None:
        worker_args += ["--memory-limit", "0"]  # nothing asked for: Dask must not restart workers by its guess
    return {
        # One single-threaded Dask worker per cpu: tasks are Python, and hold the GIL.
        "cores": cpus, "processes": cpus,
        "memory": f"{options.memory}MiB" if options.memory else "1GiB",
        "walltime": format_walltime(options.walltime) if options.walltime else None,
        "job_name": safe_job_name(name, scheduler.name_limit), "log_directory": log_dir, "python": python,
        "job_extra_directives": directives, "job_directives_skip": list(scheduler.dask_skip),
        "job_script_prologue": [f"cd {shlex.quote(cwd or os.getcwd())}"],
        "worker_extra_args": worker_args,
        # No dashboard; the scheduler's own HTTP routes on a free port of this host only, never 8787 (taken
        # by any other Dask scheduler on this host).
        "scheduler_options": {"dashboard": False, "dashboard_address": "127.0.0.1:0"}, "silence_logs": logging.ERROR,
    }


@contextlib.contextmanager
def batch_cluster(scheduler: Scheduler, options: SubmitOptions, store: Store, taskfile: str,
                  log_dir: str | None = None,
                  on_submitted: Callable[[jobs.JobRecord], None] | None = None) -> Iterator[Any]:
    """A Dask client whose workers are `options.workers` batch jobs, released when the block ends.

    `on_submitted` gets the record of each job once the scheduler accepted it.

    SIGTERM raises Terminated for the length of the block, so that the jobs are
    released then too (Ctrl-C raises KeyboardInterrupt anyway).
    """
    require("submit --dask", jobqueue=True)
    interrupt = signal.getsignal(signal.SIGINT)
    import dask_jobqueue
    # Importing dask-jobqueue makes Ctrl-C exit with 0 (its runner module's handler): Ctrl-C must
    # stay a KeyboardInterrupt, which releases the jobs and exits 130.
    signal.signal(signal.SIGINT, interrupt)
    import dask
    from distributed import Client

    scheduler.require()
    jobs.prepare_folders(store)
    logs = os.path.abspath(log_dir) if log_dir else jobs.logs_dir(store)
    os.makedirs(logs, exist_ok=True)
    os.environ.update(store.worker_environment())
    stem = os.path.splitext(os.path.basename(taskfile))[0]
    kwargs = cluster_options(scheduler, options, logs, options.name or f"taskflow-{stem}")
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        cls = getattr(dask_jobqueue, str(scheduler.dask_cluster))  # cluster_options refused one without
        try:
            with dask.config.set(SCHEDULER_CONFIG):
                cluster = cls(**kwargs)
        except (ValueError, TypeError) as e:
            raise UsageError(f"submit --dask: {e}") from None
        with cluster, Client(cluster) as client:
            script = _save_script(store, scheduler, cluster.job_script())
            cluster.scale(jobs=options.workers)
            for record in _record(store, scheduler, cluster, options, taskfile, script, logs):
                if on_submitted is not None:
                    on_submitted(record)
            yield client
            log.info("releasing the %d Dask worker job(s)", len(cluster.workers))
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


def _save_script(store: Store, scheduler: Scheduler, text: str) -> str:
    path = os.path.join(store.jobs_folder(), f"{scheduler.name}-dask-{time.strftime('%Y%m%dT%H%M%S')}"
                                             f"-{os.getpid()}{scheduler.suffix}")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def _record(store: Store, scheduler: Scheduler, cluster: Any, options: SubmitOptions, taskfile: str,
            script: str, logs: str) -> list[jobs.JobRecord]:
    """Wait until the scheduler accepted every job, then record each (one worker each)."""
    end = time.monotonic() + STARTED_TIMEOUT
    while True:
        submitted = [job for job in cluster.workers.values() if getattr(job, "job_id", None)]
        if len(submitted) >= options.workers:
            break
        if time.monotonic() > end:
            raise SchedulerError(f"{scheduler.submit_command} accepted {len(submitted)} of {options.workers} "
                                 f"Dask worker jobs within {STARTED_TIMEOUT:.0f}s", scheduler.name)
        time.sleep(0.1)
    resources = {k: v for k, v in (("cpus", options.cpus), ("mem", options.memory), ("time", options.walltime))
                 if v is not None}
    records = []
    for job in submitted:
        record = jobs.JobRecord(scheduler=scheduler.name, job_id=str(job.job_id), number=job_number(str(job.job_id)),
                                workers=1, resources=resources, taskfile=os.path.abspath(taskfile),
                                store=store.url, script=script, log_dir=logs,
                                command=[scheduler.submit_command, script], cwd=os.getcwd(),
                                host=socket.gethostname())
        jobs.save(store, record)
        log.info("submitted %s: a Dask worker; logs in %s", record.describe(), logs)
        records.append(record)
    return records
