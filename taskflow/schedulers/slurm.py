"""Slurm: `sbatch --array=1-N`, `#SBATCH` directives."""
from __future__ import annotations

import re
from collections.abc import Sequence

from .base import Scheduler, ScriptSpec, format_walltime


class Slurm(Scheduler):
    name = "slurm"
    title = "Slurm"
    template = "slurm.sbatch"
    script = "scripts/slurm/taskflow_array.sbatch"
    submit_command = "sbatch"
    detect_commands = ("sbatch",)

    def resource_lines(self, spec: ScriptSpec) -> list[str]:
        lines = []
        if spec.walltime is not None:
            lines.append(f"#SBATCH --time={format_walltime(spec.walltime)}")
        if spec.memory is not None:
            size = f"{spec.memory // 1024}G" if spec.memory % 1024 == 0 else f"{spec.memory}M"
            lines.append(f"#SBATCH --mem={size}")
        if spec.queue:
            lines.append(f"#SBATCH --partition={spec.queue}")
        return lines

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
