"""What every batch scheduler shares: the job script's spec and templates, the `Scheduler` base
class, and the conversions of walltime, memory, paths and job names its options need.

Templates hold `{{name}}` placeholders. A line holding nothing but a
placeholder is a block: replaced by the value's lines, dropped when the
value is empty.
"""
from __future__ import annotations

import abc
import math
import os
import re
import shlex
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import SchedulerError, UsageError

DEFAULT_NAME = "taskflow"
DEFAULT_PYTHON = "python3"
DEFAULT_LOG_DIR = "."

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_BLOCK = re.compile(r"^\{\{(\w+)\}\}$")
# Characters that survive a #$/#SBATCH/#PBS directive and a double-quoted shell word untouched.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_./+@:,=~-]+")


@dataclass(frozen=True)
class ScriptSpec:
    """What differs between one job script and another; the defaults give the scripts/ files."""

    name: str = DEFAULT_NAME
    python: str = DEFAULT_PYTHON
    log_dir: str = DEFAULT_LOG_DIR
    arguments: Sequence[str] = ()     # default arguments of the worker: taskfile, --store STORE
    walltime: float | None = None     # seconds
    memory: int | None = None         # megabytes, for the whole worker
    queue: str | None = None
    cpus: int | None = None           # a directive only above 1, every scheduler's default
    gpus: int | None = None           # a directive only above 0


def template_text(filename: str) -> str:
    from importlib import resources  # here: every command imports the registry, few render a script
    package = __name__.rpartition(".")[0]  # taskflow.schedulers, which holds templates/
    return resources.files(package).joinpath("templates").joinpath(filename).read_text(encoding="utf-8")


def fill(text: str, values: dict[str, str]) -> str:
    """Replace the placeholders of a template; a missing value is a bug, so it raises KeyError."""
    out: list[str] = []
    for line in text.splitlines():
        block = _BLOCK.match(line)
        if block:
            value = values[block.group(1)]
            if value:
                out.extend(value.splitlines())
            continue
        out.append(_PLACEHOLDER.sub(lambda m: values[m.group(1)], line))
    return "\n".join(out) + "\n"


def format_walltime(seconds: float) -> str:
    """HH:MM:SS, which every scheduler here reads (hours may exceed 24)."""
    total = int(math.ceil(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h:02d}:{m:02d}:{s:02d}"


def plain_path(path: str, what: str) -> str:
    """`path` if a job script directive can carry it as is; else a UsageError naming it."""
    if not _PLAIN_PATH.fullmatch(path):
        raise UsageError(f"{what} {path!r} has characters (spaces, quotes, $, %, ...) that job script "
                         "directives cannot carry; use a plain path (--store DIR)")
    return path


def safe_job_name(text: str, limit: int = 64) -> str:
    """A job name every scheduler accepts: starts with a letter, letters, digits, _ . - only."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", text)
    if not name[:1].isalpha():
        name = "tf" + ("-" if name else "") + name
    return name[:limit]


class Scheduler(abc.ABC):
    """One batch scheduler: its job script and how to submit that as an array job."""

    name: str = ""                 # as in --scheduler, and the prefix of stores.identity.worker_id()
    title: str = ""                # for messages
    template: str = ""             # file in templates/
    script: str = ""               # the rendered template with default ScriptSpec, in the repository
    submit_command: str = ""       # qsub, sbatch
    detect_commands: tuple[str, ...] = ()  # all on PATH: this scheduler is installed
    name_limit: int = 64
    # resource_lines: each directive with {} for its value; memory in whole gigabytes, else megabytes
    walltime_directive: str = ""   # {} is HH:MM:SS
    memory_directive: str = ""
    memory_units: tuple[str, str] = ("G", "M")
    queue_directive: str = ""
    cpus_directive: str = ""
    gpus_directive: str = ""
    memory_per_cpu: bool = False   # the memory directive counts per cpu (SGE's h_vmem per slot)
    # submit_args and parse_reply: options before the array's, and the job id in the reply
    submit_flags: tuple[str, ...] = ()
    reply_pattern: str = ""        # a whole line of the reply; its group 1 is the job id
    reply_from_end: bool = False   # look from the reply's last line up
    # --via drmaa: the script's directives, which DRMAA does not read, become its native specification
    directive_prefix: str = ""     # "#$", "#SBATCH", "#PBS"
    drmaa_libraries: tuple[str, ...] = ()  # where its libdrmaa usually is, when DRMAA_LIBRARY_PATH is unset
    # How an array task ended, for the failure record of a task whose workers kept dying (accounting.py):
    # commands ({job} and {task} filled in) asked in turn until one tells, each with the function of
    # answers.py that reads its answer into (state, details). Empty: it cannot be asked.
    accounting_commands: tuple[tuple[tuple[str, ...], Callable[[str], tuple[str, str] | None]], ...] = ()
    accounting_lags: bool = False  # its accounting knows a task only a moment after it ended: ask again
    # submit --dask: the dask-jobqueue cluster class (None: --dask does not run on it), the directives of
    # dask-jobqueue's job script to leave out (taskflow's own resource_lines ask for those, once) and
    # those to add to taskflow's
    dask_cluster: str | None = None
    dask_skip: tuple[str, ...] = ()
    dask_directives: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"<scheduler {self.name}>"

    @property
    def suffix(self) -> str:
        return os.path.splitext(self.template)[1]

    # -- finding it -------------------------------------------------------

    def available(self, which: Callable[[str], str | None] = shutil.which) -> bool:
        return all(which(c) for c in self.detect_commands)

    def require(self, which: Callable[[str], str | None] = shutil.which) -> str:
        """Full path of the submit command; SchedulerError when it is not on PATH."""
        path = which(self.submit_command)
        if not path:
            raise SchedulerError(f"{self.submit_command} not found on PATH: is {self.title} installed on this "
                                 "host (or its module loaded)?", self.name)
        return path

    # -- the job script ------------------------------------------------------

    def resource_lines(self, spec: ScriptSpec) -> list[str]:
        """Directives for walltime, cpus, memory, GPUs and queue; empty when none is set."""
        lines = []
        if spec.walltime is not None:
            lines.append(self.walltime_directive.format(format_walltime(spec.walltime)))
        cpus = spec.cpus if spec.cpus is not None and spec.cpus > 1 else None
        if cpus is not None:
            lines.append(self.cpus_directive.format(cpus))
        if spec.memory is not None:
            memory = spec.memory
            if self.memory_per_cpu and cpus:
                memory = -(-memory // cpus)  # rounded up: the worker gets at least what it asked for
            gigabytes, megabytes = self.memory_units
            size = f"{memory // 1024}{gigabytes}" if memory % 1024 == 0 else f"{memory}{megabytes}"
            lines.append(self.memory_directive.format(size))
        if spec.gpus:
            lines.append(self.gpus_directive.format(spec.gpus))
        if spec.queue:
            lines.append(self.queue_directive.format(spec.queue))
        return lines

    def example_lines(self) -> list[str]:
        """Commented directives shown when no resource is set."""
        example = ScriptSpec(walltime=4 * 3600, memory=8 * 1024, queue="QUEUE")
        return ["# Walltime, memory and queue per worker, for example (delete one '#' to use):"] + [
            "#" + line for line in self.resource_lines(example)]

    def render(self, spec: ScriptSpec | None = None) -> str:
        spec = spec or ScriptSpec()
        resource = self.resource_lines(spec) or self.example_lines()
        walltime = ""
        if spec.walltime is not None:
            walltime = ("# The walltime taskflow submit asked for, in case the scheduler cannot be asked:\n"
                        f"walltime=${{walltime:-{format_walltime(spec.walltime)}}}")
        arguments = ""
        if spec.arguments:
            arguments = ("# The taskfile and store taskflow submit wrote this script for:\n"
                         f"[ $# -gt 0 ] || set -- {shlex.join(spec.arguments)}")
        values = {"name": safe_job_name(spec.name, self.name_limit), "log_dir": spec.log_dir,
                  "resources": "\n".join(resource), "walltime": walltime, "arguments": arguments,
                  "python": shlex.quote(spec.python), "scheduler": self.title}
        values["worker"] = fill(template_text("worker.sh"), values)
        return fill(template_text(self.template), values)

    # -- submitting ------------------------------------------------------------

    def submit_files(self, spec: ScriptSpec, script_path: str, workers: int) -> dict[str, str]:
        """Files to write beside the job script before submitting it, path to text (HTCondor's submit
        description); none for a scheduler whose script carries its own directives."""
        return {}

    def directives(self, script: str) -> list[str]:
        """The options of the script's directive lines (`#$ -l h_rt=1:00:00` gives `-l`, `h_rt=1:00:00`),
        for a submission that does not read them (DRMAA's native specification)."""
        args: list[str] = []
        for line in script.splitlines()[1:]:
            if not line.startswith("#"):
                break  # directives come before the first command
            if line.startswith(self.directive_prefix + " "):
                args += shlex.split(line[len(self.directive_prefix):], posix=True)
        return args

    @abc.abstractmethod
    def array_args(self, workers: int) -> list[str]:
        """The submit command's options that make an array of `workers` tasks."""

    def submit_args(self, script: str, workers: int, extra: Sequence[str] = ()) -> list[str]:
        """The command that submits `script` as an array of `workers` tasks (without the program path)."""
        return [*self.submit_flags, *self.array_args(workers), *extra, script]

    def parse_reply(self, stdout: str) -> str:
        """The job id in the submit command's reply; SchedulerError when there is none."""
        lines = stdout.splitlines()
        for line in reversed(lines) if self.reply_from_end else lines:
            m = re.fullmatch(self.reply_pattern, line)
            if m:
                return m.group(1)
        raise self.unreadable(stdout)

    def unreadable(self, stdout: str) -> SchedulerError:
        shown = stdout.strip()[:300] or "(nothing)"
        return SchedulerError(f"cannot find a job id in the reply of {self.submit_command}: {shown!r}; "
                              f"a job may have been submitted anyway: check the {self.title} queue", self.name)


def job_number(job_id: str) -> str:
    """The number a job id starts with: `123` of `123`, `123.1-20:1`, `123[].server`, `123;cluster`."""
    m = re.match(r"\d+", job_id.strip())
    return m.group(0) if m else job_id.strip()
