"""Sun/Son of/Univa Grid Engine (SGE): `qsub -t 1-N`, `#$` directives."""
from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Sequence

from .base import Scheduler


class SGE(Scheduler):
    name = "sge"
    title = "SGE"
    template = "sge.sge"
    script = "scripts/sge/taskflow_array.sge"
    submit_command = "qsub"
    detect_commands = ("qsub", "qconf")

    def available(self, which: Callable[[str], str | None] = shutil.which) -> bool:
        # PBS has a qsub too; qconf, or an SGE_ROOT, is what only Grid Engine has.
        return bool(which("qsub")) and (bool(which("qconf")) or bool(os.environ.get("SGE_ROOT")))

    walltime_directive = "#$ -l h_rt={}"
    # h_vmem is the limit most sites enforce; it counts per slot, and a worker uses one.
    memory_directive = "#$ -l h_vmem={}"
    queue_directive = "#$ -q {}"

    def array_args(self, workers: int) -> list[str]:
        return ["-t", f"1-{workers}"]

    def submit_args(self, script: str, workers: int, extra: Sequence[str] = ()) -> list[str]:
        return ["-terse", *self.array_args(workers), *extra, script]

    def parse_reply(self, stdout: str) -> str:
        # -terse: "123.1-20:1" for an array, "123" for a single job
        for line in stdout.splitlines():
            m = re.fullmatch(r"\s*(\d+)(\.\d+-\d+:\d+)?\s*", line)
            if m:
                return m.group(1)
        raise self.unreadable(stdout)
