"""What a scheduler says of how one array task ended: why the worker running it died.

Asked only when a task is marked failed because its workers kept dying, for
the workers whose claims named their array task (`slurm:<job>.<task>`,
`sge:<job>.<task>`). Slurm: `sacct` (State OUT_OF_MEMORY, TIMEOUT,
CANCELLED..., exit code, MaxRSS), or where accounting is off, `scontrol show
job`, which knows jobs that ended within MinJobAge. SGE: `qacct` (exit_status,
failed, maxvmem). Every question has a timeout and any failure answers None:
the failure record then says only what taskflow saw.

Which commands to ask is each scheduler's own knowledge, in its module
(`Scheduler.accounting_commands`, `accounting_lags`), found through the
registry; what their answers say is read here, one parser per command.
"""
from __future__ import annotations

import logging
import re
import shutil
import subprocess
import time
from collections.abc import Callable

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


def slurm_sacct(out: str) -> tuple[str, str] | None:
    """(state, details) from `sacct -n -P -o JobID,State,ExitCode,MaxRSS` lines of one job and its
    steps: the state of the step that says most (OUT_OF_MEMORY and TIMEOUT first)."""
    rows = [line.split("|") for line in out.splitlines() if line.count("|") >= 3]
    if not rows:
        return None
    states = [r[1].split()[0] if r[1] else "" for r in rows]
    order = ["OUT_OF_MEMORY", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "CANCELLED", "FAILED"]
    state = next((s for s in order if s in states), states[0])
    row = rows[states.index(state)]
    rss = max((r[3] for r in rows if r[3]), key=_size, default="")
    return state, f"exit code {row[2]}" + (f", MaxRSS {rss}" if rss else "")


def slurm_scontrol(out: str) -> tuple[str, str] | None:
    """(state, details) from `scontrol show job -o` of one job."""
    fields = dict(re.findall(r"(\w+)=(\S*)", out))
    state = fields.get("JobState")
    if not state:
        return None
    details = f"exit code {fields.get('ExitCode', '?')}"
    if fields.get("Reason") and fields["Reason"] != "None":
        details += f", reason {fields['Reason']}"
    return state, details


def sge_qacct(out: str) -> tuple[str, str] | None:
    """(state, details) from `qacct -j <job> -t <task>`: the last record of the task."""
    fields: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.strip().partition(" ")
        if key.startswith("==="):
            fields = {}
        elif key:
            fields[key] = value.strip()
    status = fields.get("exit_status")
    if status is None:
        return None
    code = int(status.split()[0]) if status.split() and status.split()[0].isdigit() else -1
    state = "KILLED" if code in (137, 9) else ("FAILED" if code else "EXITED")
    details = f"exit_status {status}"
    if fields.get("failed", "0").split()[0] != "0":
        details += f", failed {fields['failed']}"
    if fields.get("maxvmem"):
        details += f", maxvmem {fields['maxvmem']}"
    return state, details


def _size(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)([KMGTP]?)", text.strip())
    if not m:
        return 0.0
    return float(m.group(1)) * 1024 ** " KMGTP".index(m.group(2) or " ")


def ask(scheduler: Scheduler, job: str, task: str) -> tuple[str, str] | None:
    """(state, details) of array task `task` of `job` from the scheduler's `accounting_commands`, asked
    in turn until one answers something its parser reads; None when none does."""
    for command, parser in scheduler.accounting_commands:
        read: Callable[[str], tuple[str, str] | None] | None = globals().get(parser)
        if not callable(read):  # a slip in a scheduler module: its failure records say only what taskflow saw
            log.warning("%s: accounting_commands names %r, which is no parser in %s", scheduler.name, parser,
                        __name__)
            continue
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
