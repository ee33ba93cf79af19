"""Sun/Son of/Univa Grid Engine (SGE): `qsub -t 1-N`, `#$` directives."""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable

from . import answers
from .base import Scheduler


class SGE(Scheduler):
    name = "sge"
    title = "SGE"
    template = "sge.sge"
    script = "scripts/sge/taskflow_array.sge"
    submit_command = "qsub"
    detect_commands = ("qsub", "qconf")
    walltime_directive = "#$ -l h_rt={}"
    # h_vmem is the limit most sites enforce; it counts per slot, so a worker's memory is divided by its slots.
    memory_directive = "#$ -l h_vmem={}"
    queue_directive = "#$ -q {}"
    # Several slots on one host need a parallel environment; sites name theirs, smp is the usual one.
    cpus_directive = "#$ -pe smp {}"
    memory_per_cpu = True
    gpus_directive = "#$ -l gpu={}"
    submit_flags = ("-terse",)
    reply_pattern = r"\s*(\d+)(\.\d+-\d+:\d+)?\s*"  # -terse: "123.1-20:1" for an array, "123" for a single job
    directive_prefix = "#$"
    # Debian's gridengine-drmaa1.0; a Grid Engine installed from its tarball keeps it under SGE_ROOT.
    drmaa_libraries = ("/usr/lib/gridengine-drmaa/lib/libdrmaa.so.1.0", "$SGE_ROOT/lib/lx-amd64/libdrmaa.so",
                       "$SGE_ROOT/lib/lx-amd64/libdrmaa.so.1.0")
    accounting_commands = ((("qacct", "-j", "{job}", "-t", "{task}"), answers.sge_qacct),)
    accounting_lags = True  # qacct knows a task only once it ended
    dask_cluster = "SGECluster"
    dask_skip = ("h_rt=", "#$ -q ")
    dask_directives = ("-V",)  # the submitting environment (a store's password, the virtualenv), as submit does

    def available(self, which: Callable[[str], str | None] = shutil.which) -> bool:
        # PBS has a qsub too; qconf, or an SGE_ROOT, is what only Grid Engine has.
        return bool(which("qsub")) and (bool(which("qconf")) or bool(os.environ.get("SGE_ROOT")))

    def array_args(self, workers: int) -> list[str]:
        return ["-t", f"1-{workers}"]
