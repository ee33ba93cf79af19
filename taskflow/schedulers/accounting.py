"""What a scheduler says of how one array task ended: why the worker running it died.

Asked only when a task is marked failed because its workers kept dying, for
the workers whose claims named their array task (`slurm:<job>.<task>`,
`sge:<job>.<task>`). Slurm: `sacct` (State OUT_OF_MEMORY, TIMEOUT,
CANCELLED..., exit code, MaxRSS), or where accounting is off, `scontrol show
job`, which knows jobs that ended within MinJobAge. SGE: `qacct` (exit_status,
failed, maxvmem). Every question has a timeout and any failure answers None:
the failure record then says only what taskflow saw.

Which commands to ask, and the function of answers.py that reads each one's
answer, is each scheduler's own knowledge, in its module
(`Scheduler.accounting_commands`, `accounting_lags`), found through the
registry.
"""
from __future__ import annotations

import logging
import shutil
import subprocess
import time

from .base import Scheduler
from .registry import SCHEDULERS

log = logging.getLogger(__name__)

_TIMEOUT = 10.0
# States that say the job has not ended yet: asked again a few times, the job may be ending right now.
_NOT_OVER = {"RUNNING", "COMPLETING", "PENDING", "CONFIGURING", "SUSPENDED", "REQUEUED", "RESIZING"}
# What each job state says of why a worker died, for people.
_MEANING = {"OUT_OF_MEMORY": "killed for using more memory than it asked for",
            "TIMEOUT": "killed at its walltime",
            "NODE_FAIL": "its node failed",
            "CANCELLED": "cancelled",
            "PREEMPTED": "preempted",
            "FAILED": "ended with an error",
            "KILLED": "killed by a signal: its memory or h_rt limit, qdel, or a crash"}


def _run(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=_TIMEOUT)
    except (OSError, subprocess.SubprocessError) as e:
        log.debug("%s: %s", argv[0], e)
        return None
    if done.returncode != 0:
        log.debug("%s: exit %d: %s", " ".join(argv), done.returncode, done.stderr.strip())
        return None
    return done.stdout


def ask(scheduler: Scheduler, job: str, task: str) -> tuple[str, str] | None:
    """(state, details) of array task `task` of `job` from the scheduler's `accounting_commands`, asked
    in turn until one answers something its parser reads; None when none does."""
    for command, read in scheduler.accounting_commands:
        out = _run([word.format(job=job, task=task) for word in command])
        got = read(out) if out else None
        if got is not None:
            return got
    return None


def why_it_ended(scheduler: str, job: str, task: str, tries: int = 5, pause: float = 1.0) -> str | None:
    """How the scheduler says array task `task` of `job` ended, in words ("slurm job 12_3:
    OUT_OF_MEMORY (killed for using more memory than it asked for), exit code 0:125"); None when it
    cannot tell. A job still ending is asked again `tries` times."""
    asked = SCHEDULERS.get(scheduler)
    if asked is None or not asked.accounting_commands:
        return None
    for attempt in range(tries):
        got = ask(asked, job, task)
        if got is None:
            # qacct knows a task only once it ended, and sacct may lag a moment behind.
            if attempt + 1 < tries and asked.accounting_lags:
                time.sleep(pause)
                continue
            return None
        state, details = got
        if state not in _NOT_OVER or attempt + 1 == tries:
            meaning = _MEANING.get(state)
            return f"{scheduler} job {job}.{task}: {state}" + (f" ({meaning})" if meaning else "") + f", {details}"
        time.sleep(pause)
    return None
