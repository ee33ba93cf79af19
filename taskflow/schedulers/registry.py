"""The registry of schedulers: each `Scheduler` by name, and choosing one by name or by what is on PATH.

A new scheduler is one module with its Scheduler subclass, and one line in `SCHEDULERS`.
"""
from __future__ import annotations

import logging
import shutil
from collections.abc import Callable

from ..errors import SchedulerError, UsageError
from .base import Scheduler
from .condor import Condor
from .pbs import PBS
from .sge import SGE
from .slurm import Slurm

log = logging.getLogger(__name__)

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
