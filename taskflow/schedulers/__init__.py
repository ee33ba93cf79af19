"""Batch schedulers: writing a worker job script for one, and submitting it as an array job.

Each scheduler is a `Scheduler` (base.py) in its own module (sge.py, slurm.py,
pbs.py, condor.py), listed in `SCHEDULERS` below; environment.py reads what each tells the
jobs it runs. Job scripts come from the templates in
`templates/`, the same ones behind the hand-usable scripts in the
repository's `scripts/` folder: rendering a template with `ScriptSpec()`
gives exactly that script, and `taskflow submit` renders it with its options.
"""
from __future__ import annotations

import logging
import shutil
from collections.abc import Callable

from ..errors import SchedulerError, UsageError
from ..units import parse_memory
from .base import (DEFAULT_LOG_DIR, DEFAULT_NAME, DEFAULT_PYTHON, Scheduler, ScriptSpec, fill, format_walltime,
                   job_number, plain_path, safe_job_name, template_text)
from .condor import Condor
from .pbs import PBS
from .sge import SGE
from .slurm import Slurm

__all__ = ["DEFAULT_LOG_DIR", "DEFAULT_NAME", "DEFAULT_PYTHON", "SCHEDULERS", "Scheduler", "ScriptSpec", "choose",
           "detect", "fill", "format_walltime", "get", "job_number", "parse_memory", "plain_path", "safe_job_name",
           "template_text"]

log = logging.getLogger(__name__)

# The registry: a new scheduler is one module with its Scheduler subclass, and one line here.
SCHEDULERS: dict[str, Scheduler] = {s.name: s for s in (
    Condor(),
    PBS(),
    SGE(),
    Slurm(),
)}


def get(name: str) -> Scheduler:
    try:
        return SCHEDULERS[name]
    except KeyError:
        raise UsageError(f"--scheduler {name!r}: unknown; choose one of "
                         + ", ".join(["auto", *SCHEDULERS])) from None


def detect(which: Callable[[str], str | None] = shutil.which) -> Scheduler:
    """The one scheduler whose commands are on PATH; SchedulerError for none or several."""
    found = [s for s in SCHEDULERS.values() if s.available(which)]
    if len(found) == 1:
        log.debug("found %s on PATH", found[0].title)
        return found[0]
    if not found:
        commands = sorted({s.submit_command for s in SCHEDULERS.values()})
        raise SchedulerError("no batch scheduler found: none of " + ", ".join(commands) + " is on PATH")
    raise SchedulerError("found several batch schedulers (" + ", ".join(s.name for s in found)
                         + "): choose one with --scheduler or TASKFLOW_SCHEDULER")


def choose(name: str | None, which: Callable[[str], str | None] = shutil.which) -> Scheduler:
    """The scheduler called `name`, or the detected one for None/"auto"."""
    if not name or name == "auto":
        return detect(which)
    return get(name)
