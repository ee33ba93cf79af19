"""What the schedulers' accounting answers about one array task, read into (state, details).

One function per command a scheduler module names in `accounting_commands`:
`sacct`, `scontrol show job` (Slurm), `qacct` (SGE). accounting.py asks them.
"""
from __future__ import annotations

import re


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
