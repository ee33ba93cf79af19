"""A task whose workers keep dying while running it: the failure recorded in its place.

The store counts the attempts whose worker died (see stores.claims.Claims):
the worker that takes over the claim of the last one allowed by
`--max-attempts` runs the task no more and records this failure instead,
naming each dead worker and, where the scheduler can tell, why it ended
(schedulers/accounting.py). The store's count is then forgotten, so that
`--retry-failed` and `invalidate` start counting again.
"""
from __future__ import annotations

import os
import time

from ..stores.identity import HOST
from ..task import Task

# The failure record's `type`: no exception was raised, a worker was lost.
TYPE = "WorkerDied"


def message(deaths: int) -> str:
    times = "once" if deaths == 1 else f"{deaths} times"
    return f"its worker died {times} while running it: check memory and walltime"


def scheduler_says(owner: dict) -> str | None:
    """Why the scheduler says the array task of the dead claim's owner ended, if it can tell."""
    from ..schedulers.accounting import why_it_ended
    from ..schedulers.environment import parse_worker

    parsed = parse_worker(str(owner.get("worker") or ""))
    return why_it_ended(*parsed) if parsed else None


def failure_record(task: Task, deaths: list[dict], count: int, worker: str) -> dict:
    """The failure record of `task`, from the store's records of its dead attempts and their
    `count` when the last was counted (a record may be being written, or forgiven since)."""
    attempts = []
    for death in deaths:
        owner = death.get("owner") or {}
        attempt = {"worker": owner.get("worker"), "host": owner.get("host"), "pid": owner.get("pid"),
                   "started": owner.get("started"), "judged": death.get("reason"), "time": death.get("time")}
        said = scheduler_says(owner)
        if said:
            attempt["scheduler"] = said
        attempts.append(attempt)
    count = max(count, len(deaths))
    text = message(count)
    told = [str(a["scheduler"]) for a in attempts if a.get("scheduler")]
    if told:
        text += "; " + "; ".join(told)
    lines = [f"attempt {i}: worker {a['worker'] or '?'} on {a['host'] or '?'} (pid {a['pid'] or '?'}): "
             f"{a.get('scheduler') or a['judged'] or 'gone'}" for i, a in enumerate(attempts, 1)]
    return {"name": task.name, "hash": task.hash, "type": TYPE, "message": text,
            "traceback": "\n".join(lines) + "\n", "host": HOST, "pid": os.getpid(), "worker": worker,
            "started": None, "time": time.time(), "attempts": count, "died": attempts}
