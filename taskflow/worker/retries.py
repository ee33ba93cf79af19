"""`retries=` in the worker: a task that raised an exception it may be retried on runs again at once,
in the claim it holds, and the attempts before are recorded with its result or its failure."""
from __future__ import annotations

import logging
import time

from ..executors import Done

log = logging.getLogger(__name__)


def again(done: Done, tries: dict[str, list[dict]]) -> bool:
    """Whether the task that failed in `done` runs again; if so its failure is noted in `tries`
    (task hash -> earlier failed attempts), which the caller keeps until the task is through."""
    retry, failure = done.task.retry, done.failure
    if retry is None or failure is None:
        return False
    earlier = tries.get(done.task.hash, [])
    if not retry.wants(failure.exception, len(earlier)):
        return False
    e = failure.exception
    earlier.append({"type": type(e).__name__, "message": str(e) or type(e).__name__,
                    "started": done.started, "seconds": round(done.seconds, 6), "time": time.time()})
    tries[done.task.hash] = earlier
    log.warning("%s (%s) raised %s: %s; running it again (retry %d of %d)", done.task.name,
                done.task.hash[:12], type(e).__name__, earlier[-1]["message"], len(earlier), retry.times)
    return True


def recorded(earlier: list[dict] | None) -> dict:
    """What a result's metadata or a failure record says of the attempts before the last: nothing
    for a task that needed one."""
    if not earlier:
        return {}
    return {"attempts": len(earlier) + 1, "earlier": earlier}
