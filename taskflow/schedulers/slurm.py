"""Slurm: `sbatch --array=1-N`, `#SBATCH` directives."""
from __future__ import annotations

import re
from collections.abc import Sequence

from .base import Scheduler


class Slurm(Scheduler):
    name = "slurm"
    title = "Slurm"
    template = "slurm.sbatch"
    script = "scripts/slurm/taskflow_array.sbatch"
    submit_command = "sbatch"
    detect_commands = ("sbatch",)

    walltime_directive = "#SBATCH --time={}"
    memory_directive = "#SBATCH --mem={}"
    queue_directive = "#SBATCH --partition={}"

    def array_args(self, workers: int) -> list[str]:
        return [f"--array=1-{workers}"]

    def submit_args(self, script: str, workers: int, extra: Sequence[str] = ()) -> list[str]:
        return ["--parsable", *self.array_args(workers), *extra, script]

    def parse_reply(self, stdout: str) -> str:
        # --parsable: "123" or "123;cluster"; site wrappers may print notes before it.
        for line in reversed(stdout.splitlines()):
            m = re.fullmatch(r"\s*(\d+)(;\S+)?\s*", line)
            if m:
                return m.group(1)
        raise self.unreadable(stdout)
