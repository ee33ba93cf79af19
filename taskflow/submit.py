"""`taskflow submit`: write the job scripts for a taskfile and submit them as array jobs, one per
resource class.

The unfinished tasks (ready and waiting; not failed ones) are grouped into classes of equal
resources (taskflow.resources: a task's own, its taskfile's defaults, [tool.taskflow.resources],
then --cpus/--mem/--time here). Each class gets one array job with its directives, its workers
started as `execute --cpus/--mem/--gpus` of the class. With one class `-n` is the array size;
with several, `-n` workers are shared out in proportion to each class's work (declared time
times tasks when every class declares a time, else its tasks), each class at least one and at
most one per task.

Settings come from, the first that has one winning: the command line, the
environment (TASKFLOW_SCHEDULER, TASKFLOW_WORKERS, TASKFLOW_TIME, TASKFLOW_MEM,
TASKFLOW_CPUS, TASKFLOW_QUEUE, TASKFLOW_JOB_NAME, TASKFLOW_SUBMIT_ARGS), then
`[tool.taskflow.submit]` in a pyproject.toml beside the taskfile (keys
scheduler, workers, time, mem, cpus, queue, name, args). Extra scheduler arguments
add up instead, in that order reversed, so that on the qsub/sbatch command
line the later, more specific ones override the earlier.

Nothing is recorded until the scheduler accepted the job: a rejected or
unreadable submission removes its script and leaves the store as it was.
"""
from __future__ import annotations

import logging
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import jobs
from .config import read_section
from .errors import SchedulerError, UsageError
from .resources import NONE, Resources
from .stores.lease import check_lease
from .schedulers import Scheduler, ScriptSpec, choose, job_number, parse_memory, plain_path
from .stores.base import Store
from .units import parse_duration

log = logging.getLogger(__name__)

ENV = {"scheduler": "TASKFLOW_SCHEDULER", "workers": "TASKFLOW_WORKERS", "time": "TASKFLOW_TIME",
       "mem": "TASKFLOW_MEM", "cpus": "TASKFLOW_CPUS", "queue": "TASKFLOW_QUEUE", "name": "TASKFLOW_JOB_NAME",
       "args": "TASKFLOW_SUBMIT_ARGS"}
SUBMIT_TIMEOUT = 120.0


@dataclass
class SubmitOptions:
    workers: int
    scheduler: str = "auto"
    walltime: float | None = None   # seconds
    memory: int | None = None       # megabytes
    cpus: int | None = None
    queue: str | None = None
    name: str | None = None
    extra: tuple[str, ...] = ()     # scheduler arguments
    via: str = "command"            # how to submit: the scheduler's command (qsub, sbatch), or "drmaa"
    sources: dict[str, str] = field(default_factory=dict)  # setting -> where it came from


def _args_list(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return shlex.split(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise UsageError(f"{where}: args must be a string or a list of strings")


def resolve_options(taskfile: str, *, workers: int | None = None, scheduler: str | None = None,
                    time: str | None = None, mem: str | None = None, queue: str | None = None,
                    cpus: int | None = None,
                    name: str | None = None, extra: Sequence[str] = (),
                    environ: Mapping[str, str] | None = None) -> SubmitOptions:
    """Combine command-line values (None: not given) with the environment and pyproject.toml."""
    environ = os.environ if environ is None else environ
    section, pyproject = read_section(taskfile, "submit")
    where_py = f"{pyproject} [tool.taskflow.submit]"
    unknown = set(section) - set(ENV)
    if unknown:
        raise UsageError(f"{where_py}: unknown setting(s) {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(ENV)}")
    given = {"workers": workers, "scheduler": scheduler, "time": time, "mem": mem, "cpus": cpus, "queue": queue,
             "name": name}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, cli_value in given.items():
        if cli_value is not None:
            values[key], sources[key] = cli_value, "command line"
        elif environ.get(ENV[key]):
            values[key], sources[key] = environ[ENV[key]], ENV[key]
        elif key in section:
            values[key], sources[key] = section[key], where_py

    extra_all = _args_list(section.get("args", []), where_py)
    if environ.get(ENV["args"]):
        extra_all += shlex.split(environ[ENV["args"]])
    extra_all += list(extra)

    def where(key: str) -> str:
        """The option, variable or file setting a bad value came from, for the error message."""
        if sources[key] == "command line":
            return "-n" if key == "workers" else f"--{key}"
        if sources[key] == where_py:
            return f"{where_py} {key}"
        return sources[key]

    if environ.get("TASKFLOW_LEASE"):  # the workers' lease, passed on in their environment
        check_lease(parse_duration(environ["TASKFLOW_LEASE"], "TASKFLOW_LEASE"), "TASKFLOW_LEASE")
    if "workers" not in values:
        raise UsageError("give the number of workers with -n N (or TASKFLOW_WORKERS, or workers in "
                         "[tool.taskflow.submit] of pyproject.toml)")
    try:
        n = int(values["workers"])
    except (TypeError, ValueError):
        raise UsageError(f"{where('workers')}: {values['workers']!r} is not a number of workers") from None
    if n < 1:
        raise UsageError(f"{where('workers')}: {n} workers; give at least 1")
    options = SubmitOptions(workers=n, extra=tuple(extra_all), sources=sources)
    if "scheduler" in values:
        options.scheduler = str(values["scheduler"])
    if "time" in values:
        options.walltime = parse_duration(values["time"], where("time"))
        if options.walltime <= 0:
            raise UsageError(f"{where('time')}: the walltime must be more than 0")
    if "mem" in values:
        options.memory = parse_memory(values["mem"], where("mem"))
    if "cpus" in values:
        try:
            options.cpus = int(values["cpus"])
        except (TypeError, ValueError):
            raise UsageError(f"{where('cpus')}: {values['cpus']!r} is not a number of cpus") from None
        if options.cpus < 1:
            raise UsageError(f"{where('cpus')}: {options.cpus} cpus; give at least 1")
    if values.get("queue"):
        options.queue = str(values["queue"])
    if values.get("name"):
        options.name = str(values["name"])
    log.debug("submit settings: %s", ", ".join(f"{k}={values[k]!r} ({sources[k]})" for k in values))
    return options


@dataclass
class Prepared:
    """A submission ready to go: the script, where it goes, and the command that submits it."""

    scheduler: Scheduler
    options: SubmitOptions
    taskfile: str
    store: Store
    script_text: str
    script_path: str
    command: list[str]
    resources: Resources = NONE   # of the class this array serves
    workers: int = 0              # its array size
    tasks: int = 0                # unfinished tasks of its class when it was prepared
    log_dir: str = ""             # where its array tasks write their logs
    files: dict[str, str] = field(default_factory=dict)  # written beside the script (HTCondor's description)

    def shell_command(self) -> str:
        return shlex.join(self.command)


def prepare(taskfile: str, store: Store, options: SubmitOptions, python: str = sys.executable,
            which: Callable[[str], str | None] | None = None, taskfile_args: Sequence[str] = (),
            resources: Resources | None = None, workers: int | None = None, tasks: int = 0,
            log_dir: str | None = None) -> Prepared:
    """Render the job script and the submit command; touches nothing on disk.

    `taskfile_args` reach the taskfile of every worker as sys.argv[1:]. Without `resources`, one
    array of `options.workers` with the command line's --time/--mem/--cpus; with them, an array of
    `workers` for that class, whose workers are told the class (`execute --cpus ... --mem ...`).
    The workers' logs go to `log_dir`, by default `logs/` in the store's jobs folder.
    """
    if resources is None:
        resources = Resources(cpus=options.cpus, memory=options.memory, time=options.walltime)
        class_args: list[str] = []
    else:
        class_args = resources.worker_args()
    workers = options.workers if workers is None else workers
    scheduler = choose(options.scheduler, which or shutil.which)
    taskfile = os.path.abspath(taskfile)
    if not os.path.isfile(taskfile):
        raise UsageError(f"{taskfile}: no such taskfile")
    logs = os.path.abspath(log_dir) if log_dir else jobs.logs_dir(store)
    log_dir = plain_path(logs, "--log-dir" if log_dir else "the store's log folder")
    stem = os.path.splitext(os.path.basename(taskfile))[0]
    spec = ScriptSpec(name=options.name or f"taskflow-{stem}", python=python, log_dir=log_dir,
                      arguments=(taskfile, "--store", store.url, *class_args,
                                 *(("--", *taskfile_args) if taskfile_args else ())),
                      walltime=resources.time, memory=resources.memory, cpus=resources.cpus,
                      gpus=resources.gpus, queue=options.queue)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    script_path = os.path.join(store.jobs_folder(),
                               f"{scheduler.name}-{stamp}-{uuid.uuid4().hex[:6]}{scheduler.suffix}")
    text = scheduler.render(spec)
    if options.via == "drmaa":
        from .schedulers.drmaasubmit import describe
        command = describe(scheduler, script_path, text, workers, options.extra)
    else:
        command = [scheduler.submit_command, *scheduler.submit_args(script_path, workers, options.extra)]
    return Prepared(scheduler, options, taskfile, store, text, script_path, command, resources, workers, tasks,
                    logs, scheduler.submit_files(spec, script_path, workers))


@dataclass
class ResourceClass:
    """Unfinished tasks that need the same resources, and the workers they get."""

    resources: Resources
    tasks: int = 0
    seconds: float | None = 0.0   # declared time times tasks; None when the class declares no time
    workers: int = 0


def resource_classes(taskfile: str, store: Store, options: SubmitOptions,
                     taskfile_args: Sequence[str] = ()) -> list[ResourceClass]:
    """The unfinished tasks of `taskfile` grouped by resources, in declaration order, with
    `options.workers` shared out among them. One class of the defaults when none is unfinished
    (every task declared so far finished, tasks below a closed barrier not declared yet)."""
    from .resources import effective, project_defaults
    from .taskfile import load

    defaults = project_defaults(taskfile).over(
        Resources(cpus=options.cpus, memory=options.memory, time=options.walltime))
    loaded = load(taskfile, store, taskfile_args)
    done = store.finished_hashes() | store.failed_hashes()
    classes: dict[tuple, ResourceClass] = {}
    for task in loaded.tasks:
        if task.hash in done:
            continue
        needs = effective(task, defaults)
        c = classes.setdefault(needs.key(), ResourceClass(needs))
        c.tasks += 1
        c.seconds = None if needs.time is None or c.seconds is None else c.seconds + needs.time
    found = list(classes.values()) or [ResourceClass(defaults)]
    share_workers(found, options.workers)
    return found


def share_workers(classes: Sequence[ResourceClass], total: int) -> None:
    """Set each class's `workers`: all `total` for one class; else in proportion to its work,
    each at least one and at most one per task, handed out one at a time to the class with the
    most work per worker (the D'Hondt rule), so no rounding favours a class."""
    if len(classes) == 1:
        classes[0].workers = total
        return
    timed = all(c.seconds is not None for c in classes)
    work = [float(c.seconds) if timed and c.seconds is not None else float(c.tasks) for c in classes]
    for c in classes:
        c.workers = 1
    left = total - len(classes)
    if left < 0:
        log.warning("-n %d is fewer than the %d resource classes: submitting one worker for each", total,
                    len(classes))
    while left > 0:
        open_ = [i for i, c in enumerate(classes) if c.workers < max(c.tasks, 1)]
        if not open_:
            break
        i = max(open_, key=lambda i: work[i] / classes[i].workers)
        classes[i].workers += 1
        left -= 1


def prepare_classes(taskfile: str, store: Store, options: SubmitOptions, python: str = sys.executable,
                    which: Callable[[str], str | None] | None = None,
                    taskfile_args: Sequence[str] = (), log_dir: str | None = None) -> list[Prepared]:
    """One prepared array job per resource class of the unfinished tasks (see resource_classes)."""
    classes = resource_classes(taskfile, store, options, taskfile_args)
    return [prepare(taskfile, store, options, python, which, taskfile_args, resources=c.resources,
                    workers=c.workers, tasks=c.tasks, log_dir=log_dir) for c in classes]


def submit(prepared: Prepared, which: Callable[[str], str | None] | None = None) -> jobs.JobRecord:
    """Write the script, submit it, record the job in the store; returns the record."""
    scheduler = prepared.scheduler
    drmaa = prepared.options.via == "drmaa"
    program = "" if drmaa else scheduler.require(which or shutil.which)
    jobs.prepare_folders(prepared.store)
    if prepared.log_dir:
        try:
            os.makedirs(prepared.log_dir, exist_ok=True)
        except OSError as e:
            raise UsageError(f"--log-dir {prepared.log_dir}: cannot create it: {e.strerror}") from None
    path = prepared.script_path
    modes = prepared.store.modes
    # Readable (and the script runnable) by whom the store's files are: its owner, or its group too.
    for name, text, mode in [(path, prepared.script_text, modes.file | (modes.file & 0o444) >> 2),
                             *((other, text, modes.file) for other, text in prepared.files.items())]:
        with open(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode), "w",
                  encoding="utf-8") as f:
            os.fchmod(f.fileno(), mode)
            f.write(text)
    try:
        # Every scheduler's job script hands the submitting environment to the job: what the
        # store's url leaves out (a password) reaches the workers that way, never in the script.
        if drmaa:
            from .schedulers.drmaasubmit import submit as drmaa_submit
            ids = drmaa_submit(scheduler, path, prepared.script_text, prepared.workers or prepared.options.workers,
                               prepared.options.extra, {**os.environ, **prepared.store.worker_environment()})
            job_id = job_number(ids[0])  # as qsub -terse and sbatch --parsable give it
        else:
            job_id = _run(scheduler, [program, *prepared.command[1:]], prepared.store.worker_environment())
    except BaseException:
        for written in (path, *prepared.files):
            _unlink(written)
        raise
    record = jobs.JobRecord(scheduler=scheduler.name, job_id=job_id, number=job_number(job_id),
                            workers=prepared.workers or prepared.options.workers,
                            resources=prepared.resources.as_dict(), taskfile=prepared.taskfile,
                            store=prepared.store.url, script=path,
                            log_dir=prepared.log_dir or jobs.logs_dir(prepared.store),
                            command=prepared.command, cwd=os.getcwd(), host=socket.gethostname())
    try:
        jobs.save(prepared.store, record)
    except Exception as e:  # the job runs regardless: say which one it is
        raise SchedulerError(f"{scheduler.title} accepted job {job_id}, but it could not be recorded: {e}",
                             scheduler.name) from None
    log.info("submitted %s: %d workers; logs in %s", record.describe(), record.workers, record.log_dir)
    return record


def _run(scheduler: Scheduler, command: list[str], environ: Mapping[str, str] | None = None) -> str:
    name = scheduler.submit_command
    log.debug("running %s", shlex.join(command))
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=SUBMIT_TIMEOUT,
                              stdin=subprocess.DEVNULL, env={**os.environ, **environ} if environ else None)
    except FileNotFoundError:
        raise SchedulerError(f"{command[0]}: not found; is {scheduler.title} installed here?", scheduler.name) from None
    except OSError as e:
        raise SchedulerError(f"cannot run {command[0]}: {e.strerror}", scheduler.name) from None
    except subprocess.TimeoutExpired:
        raise SchedulerError(f"{name} gave no answer within {SUBMIT_TIMEOUT:.0f}s; a job may have been "
                             f"submitted anyway: check the {scheduler.title} queue", scheduler.name) from None
    if proc.returncode != 0:
        said = (proc.stderr.strip() or proc.stdout.strip() or "(no message)").replace("\n", " | ")
        raise SchedulerError(f"{name} rejected the job (exit {proc.returncode}): {said}", scheduler.name)
    return scheduler.parse_reply(proc.stdout)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
