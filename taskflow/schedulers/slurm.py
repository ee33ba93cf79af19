"""Slurm: `sbatch --array=1-N`, `#SBATCH` directives."""
from __future__ import annotations


from . import answers
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
    cpus_directive = "#SBATCH --cpus-per-task={}"
    gpus_directive = "#SBATCH --gres=gpu:{}"
    submit_flags = ("--parsable",)
    # --parsable: "123" or "123;cluster"; site wrappers may print notes before it.
    reply_pattern = r"\s*(\d+)(;\S+)?\s*"
    reply_from_end = True
    directive_prefix = "#SBATCH"
    drmaa_libraries = ("/usr/lib/x86_64-linux-gnu/libslurm-drmaa.so.1", "/usr/local/lib/libdrmaa.so")  # slurm-drmaa
    # sacct, or where accounting is off, scontrol, which knows jobs that ended within MinJobAge.
    accounting_commands = (
        (("sacct", "-n", "-P", "-j", "{job}_{task}", "-o", "JobID,State,ExitCode,MaxRSS"), answers.slurm_sacct),
        (("scontrol", "show", "job", "-o", "{job}_{task}"), answers.slurm_scontrol),
    )
    dask_cluster = "SLURMCluster"
    dask_skip = ("--mem", "#SBATCH -t ", "--cpus-per-task", "#SBATCH -p ")

    def array_args(self, workers: int) -> list[str]:
        return [f"--array=1-{workers}"]
