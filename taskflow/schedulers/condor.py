"""HTCondor: a submit description with `queue N` beside the worker script, and `condor_submit -terse`.

HTCondor has no job arrays and no script directives: a cluster of N jobs
comes from `queue N` in a submit description, whose executable is the job
script. So `taskflow submit` writes two files into the store's jobs folder:
the worker script (the template condor.sh, the same worker as every
scheduler's) and the description `<script>.sub` (condor.sub) with the
resources (request_cpus, request_memory, request_gpus, and the walltime as
allowed_execute_duration, HTCondor's own limit, which puts a job that runs
longer on hold). The worker learns its cluster and process from the job ad
HTCondor writes for it (schedulers/environment.py, `condor`).

Written from the HTCondor manual (condor_submit(1), "Services for Running
Jobs"); no HTCondor pool runs where taskflow is tested, so only the files and
the command line are checked, against a fake condor_submit.
"""
from __future__ import annotations

from collections.abc import Sequence

from ..errors import UsageError
from .base import Scheduler, ScriptSpec, fill, safe_job_name, template_text

DESCRIPTION_TEMPLATE = "condor.sub"
# The hand-usable description in the repository: its executable, arguments and size come from
# condor_submit's command line (`taskfile=... workers=...`), with these defaults.
HAND_EXECUTABLE = "scripts/condor/taskflow_array.sh"
HAND_ARGUMENTS = "arguments = $(taskfile)"
HAND_WORKERS = "$(workers:1)"


class Condor(Scheduler):
    name = "condor"
    title = "HTCondor"
    template = "condor.sh"
    script = "scripts/condor/taskflow_array.sh"
    description = "scripts/condor/taskflow_array.sub"
    submit_command = "condor_submit"
    detect_commands = ("condor_submit", "condor_q")
    walltime_directive = "allowed_execute_duration = {}"  # seconds
    memory_directive = "request_memory = {}"  # megabytes
    cpus_directive = "request_cpus = {}"
    gpus_directive = "request_gpus = {}"
    submit_flags = ("-terse",)
    # -terse: "123.0 - 123.19", the first and last job of the cluster.
    reply_pattern = r"\s*(\d+)\.\d+\s*-\s*\d+\.\d+\s*"
    reply_from_end = True

    def resource_lines(self, spec: ScriptSpec) -> list[str]:
        """The description's requests (a queue has no counterpart: submit_files refuses one)."""
        lines = []
        if spec.walltime is not None:
            seconds = int(-(-spec.walltime // 1))
            lines.append(self.walltime_directive.format(seconds))
        if spec.cpus is not None and spec.cpus > 1:
            lines.append(self.cpus_directive.format(spec.cpus))
        if spec.memory is not None:
            lines.append(self.memory_directive.format(spec.memory))
        if spec.gpus:
            lines.append(self.gpus_directive.format(spec.gpus))
        return lines

    def example_lines(self) -> list[str]:
        example = ScriptSpec(walltime=4 * 3600, memory=8 * 1024, cpus=4)
        return ["# Walltime (seconds), cpus and memory (megabytes) per worker, for example (delete one '#' to use):"
                ] + ["#" + line for line in self.resource_lines(example)]

    def render_description(self, spec: ScriptSpec, executable: str | None = None, workers: int | None = None) -> str:
        """The submit description of `workers` jobs running `executable`; without them, the hand-usable one."""
        hand = executable is None
        values = {"executable": executable or HAND_EXECUTABLE,
                  "arguments": HAND_ARGUMENTS if hand and not spec.arguments else "",
                  "name": safe_job_name(spec.name, self.name_limit), "log_dir": spec.log_dir,
                  "resources": "\n".join(self.resource_lines(spec) or self.example_lines()),
                  "workers": HAND_WORKERS if workers is None else str(workers)}
        return fill(template_text(DESCRIPTION_TEMPLATE), values)

    def submit_files(self, spec: ScriptSpec, script_path: str, workers: int) -> dict[str, str]:
        if spec.queue:
            raise UsageError(f"--queue {spec.queue}: HTCondor has no queues; pass what your pool matches on "
                             "after `--`, e.g. -- -append 'requirements = ...' or -append '+AccountingGroup = ...'")
        return {description_path(script_path): self.render_description(spec, script_path, workers)}

    def array_args(self, workers: int) -> list[str]:
        return []  # `queue N` in the description

    def submit_args(self, script: str, workers: int, extra: Sequence[str] = ()) -> list[str]:
        return [*self.submit_flags, *extra, description_path(script)]


def description_path(script_path: str) -> str:
    return script_path.rsplit(".", 1)[0] + ".sub" if script_path.endswith(".sh") else script_path + ".sub"
