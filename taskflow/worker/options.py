"""What a worker is asked to do, and what it reports back."""
from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..capacity import Capacity
from ..executors import DEFAULT as DEFAULT_EXECUTOR
from ..resources import NONE, Resources
from ..stores.lease import DEFAULT_LEASE


class Outcome(enum.Enum):
    FINISHED = "finished"      # every task finished
    FAILED = "failed"          # some task failed; nothing else could run (or not --keep-going)
    REMAINING = "remaining"    # stopped early (limits, STOP, --wait) with work left
    TERMINATED = "terminated"  # SIGTERM: claims released, work left


@dataclass
class Options:
    keep_going: bool = False
    retry_failed: bool = False
    targets: Sequence[str] = ()
    lease: float = DEFAULT_LEASE
    wait: float | None = None        # seconds to wait for others before giving up; None: forever
    max_tasks: int | None = None
    max_time: float | None = None    # seconds after start: take no new task after this
    rank: int | None = None          # this worker's place among `size`, to spread start points
    size: int | None = None
    verify: bool = False             # check every finished result first (this worker's share of them)
    stop_files: tuple = ()           # more files that, like STOP, make the worker take no new task
    executor: str = DEFAULT_EXECUTOR  # what runs the claimed tasks: a name in taskflow.executors.EXECUTORS
    executor_args: dict = field(default_factory=dict)  # keyword arguments of that executor (--ipp's cluster)
    max_attempts: int = 3            # a task whose worker died this many times is failed, not run again
    capacity: Capacity | None = None  # what this worker may run (taskflow.capacity); None: anything
    share: str | None = None          # folder of the machine share of `--jobs` siblings (worker/share.py)
    time_left: float | None = None    # seconds until the scheduler ends this worker, from its start
    resource_defaults: Resources = NONE  # [tool.taskflow.resources] of the taskfile's project
    # Claim short tasks in batches that take about this long (worker/batching.py); 0: one claim each.
    batch_time: float = 1.0
    wake_fd: int | None = None        # a --jobs pool's pipe that cuts an idle pause short (worker/wakeup.py)


@dataclass
class RunSummary:
    outcome: Outcome
    ran: int = 0
    failed: int = 0
    total: int = 0
    failed_hashes: set = field(default_factory=set)
    # Set when the run stops on failures: the failed tasks that keep it from finishing
    # (name, hash), and how many unfinished tasks wait on them.
    blockers: list = field(default_factory=list)
    blocked: int = 0
    already_finished: bool = False   # every task was finished before this worker looked
