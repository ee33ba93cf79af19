"""PBS Pro / OpenPBS (`qsub -J 1-N`) and Torque (`qsub -t 1-N`), `#PBS` directives.

Both call their command qsub and neither passes arguments to a job script, so
the taskfile goes into the script itself (taskflow submit) or into
TASKFLOW_TASKFILE (`qsub -v`). Which array option to use is asked of
`qsub --version`: PBS Pro answers "pbs_version = ...", Torque "Version: ...".
"""
from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable

from ..errors import UsageError
from .base import Scheduler

log = logging.getLogger(__name__)


def _qsub_version(qsub: str) -> str:
    import subprocess  # here: the registry is imported by every command, this runs only to tell PBS flavours
    try:
        proc = subprocess.run([qsub, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        log.debug("%s --version: %s", qsub, e)
        return ""
    return proc.stdout + proc.stderr


class PBS(Scheduler):
    name = "pbs"
    title = "PBS"
    template = "pbs.pbs"
    script = "scripts/pbs/taskflow_array.pbs"
    submit_command = "qsub"
    detect_commands = ("qsub", "pbsnodes")
    name_limit = 15  # Torque's limit; PBS Pro allows more
    walltime_directive = "#PBS -l walltime={}"
    memory_directive = "#PBS -l mem={}"
    memory_units = ("gb", "mb")
    queue_directive = "#PBS -q {}"
    cpus_directive = "#PBS -l ncpus={}"
    gpus_directive = "#PBS -l ngpus={}"
    directive_prefix = "#PBS"
    drmaa_libraries = ("/usr/local/lib/libdrmaa.so",)  # pbs-drmaa's default prefix
    reply_pattern = r"\s*(\d+(\[\])?(\.[\w.-]+)?)\s*"  # "123[].server" for an array, "123.server" for a single job
    dask_cluster = "PBSCluster"
    dask_skip = ("walltime=", "#PBS -q ", "#PBS -l select", "#PBS -l nodes")
    dask_directives = ("-V",)  # the submitting environment (a store's password, the virtualenv), as submit does

    def is_torque(self, which: Callable[[str], str | None] = shutil.which) -> bool:
        """True for Torque, False for PBS Pro/OpenPBS (also when there is no qsub to ask)."""
        qsub = which("qsub")
        answer = _qsub_version(qsub) if qsub else ""
        torque = "pbs_version" not in answer and bool(re.search(r"version", answer, re.I))
        log.debug("qsub --version says %r: %s", answer.strip(), "Torque" if torque else "PBS Pro")
        return torque

    def array_args(self, workers: int) -> list[str]:
        if self.is_torque():
            return ["-t", f"1-{workers}"]
        if workers < 2:
            raise UsageError("-n 1: PBS Pro job arrays need at least 2 array tasks; use -n 2 or more")
        return ["-J", f"1-{workers}"]
