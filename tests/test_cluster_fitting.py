"""Workers of a real Slurm and SGE take only tasks that fit what the scheduler gave them and the
time their job has left. Skipped, like tests/test_cluster_integration.py, where the scheduler is
missing (a failure with TASKFLOW_REQUIRE_SCHEDULERS=1)."""
from __future__ import annotations

import json
import os
import re
import shlex
import sys
import time
from pathlib import Path

import pytest

from conftest import write_taskfile
from taskflow.stores.folder import FolderStore as Store
from test_cluster_integration import ROOT, sge, sh, slurm, taskflow, wait_gone  # noqa: F401 (fixtures)

pytestmark = pytest.mark.scheduler

HUGE_TASKFILE = """
import time
from taskflow import TaskGenerator

@TaskGenerator(resources={"mem": "64G"})
def huge(i):
    return i

@TaskGenerator
def slow(i):
    time.sleep(4)
    return i

huges = [huge(i) for i in range(2)]
s = slow(0)
"""


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TASKFLOW_")}


def submit_by_hand(scheduler, tmp_path: Path, memory: str, command: str) -> str:
    if scheduler.name == "slurm":
        proc = sh("sbatch", "--parsable", f"--mem={memory}", "--time=5", "-o", "worker.log", "--wrap", command,
                  cwd=tmp_path, env=environment())
    else:
        (tmp_path / "worker.sh").write_text(f"#!/bin/bash\n{command}\n")
        proc = sh("qsub", "-terse", "-cwd", "-V", "-j", "y", "-o", "worker.log", "-l", f"h_vmem={memory}",
                  "-S", "/bin/bash", "worker.sh", cwd=tmp_path, env=environment())
    job = re.match(r"\d+", proc.stdout.strip())
    assert proc.returncode == 0 and job, proc.stderr + proc.stdout
    return job.group(0)


def more_memory_than_any_worker(scheduler, tmp_path: Path) -> None:
    """A task needing 64G stays ready while a worker given 1G runs the rest, and status says why."""
    tf = write_taskfile(tmp_path, HUGE_TASKFILE)
    Store(str(tmp_path / "taskfile.taskflow")).ensure()
    job = submit_by_hand(scheduler, tmp_path, "1G", f"exec {shlex.quote(sys.executable)} -m taskflow execute "
                                                    "taskfile.py")
    end = time.monotonic() + 90
    shown = ""
    while "workers: 1 running" not in shown:
        assert time.monotonic() < end, f"the worker never showed up in status: {shown}"
        time.sleep(0.3)
        shown = taskflow("status", tf).stdout
    assert "mem=1G" in shown and "2 ready, need mem=64G: no running worker has it" in shown, shown
    wait_gone(scheduler, job)
    log = (tmp_path / "worker.log").read_text()
    assert "2 ready task(s) need more than this worker has" in log and "needs mem=64G" in log, log
    after = json.loads(taskflow("status", tf, "--json").stdout)
    assert after["total"]["ready"] == 2 and after["total"]["finished"] == 1, after


def test_slurm_a_task_needing_more_memory_than_any_worker_stays_ready(slurm, tmp_path):
    more_memory_than_any_worker(slurm, tmp_path)


def test_sge_a_task_needing_more_memory_than_any_worker_stays_ready(sge, tmp_path):
    more_memory_than_any_worker(sge, tmp_path)


WALLTIME_TASKFILE = """
from taskflow import TaskGenerator

@TaskGenerator(resources={"time": "1h"})
def long(i):
    return i

@TaskGenerator
def quick(i):
    return i

longs = [long(i) for i in range(2)]
quicks = [quick(i) for i in range(5)]
"""


SCRIPTS = {"slurm": "scripts/slurm/taskflow_array.sbatch", "sge": "scripts/sge/taskflow_array.sge"}


def walltime_picking(scheduler, tmp_path: Path) -> None:
    """The job script tells the worker the time its job has left: tasks declared longer are left."""
    tf = write_taskfile(tmp_path, WALLTIME_TASKFILE)
    Store(str(tmp_path / "taskfile.taskflow")).ensure()
    script = ROOT / SCRIPTS[scheduler.name]
    if scheduler.name == "slurm":
        proc = sh("sbatch", "--parsable", "--array=1-1", "--time=3", "-o", "worker.log", str(script), "taskfile.py",
                  cwd=tmp_path, env=environment())
    else:
        proc = sh("qsub", "-terse", "-t", "1-1", "-l", "h_rt=180", "-o", "worker.log", str(script), "taskfile.py",
                  cwd=tmp_path, env=environment())
    job = re.match(r"\d+", proc.stdout.strip())
    assert proc.returncode == 0 and job, proc.stderr + proc.stdout
    wait_gone(scheduler, job.group(0))
    log = (tmp_path / "worker.log").read_text()
    assert "2 ready task(s) need more time than this worker has left" in log, log
    assert "expected 1h00m (declared time)" in log, log
    status = json.loads(taskflow("status", tf, "--json").stdout)
    assert status["tasks"]["taskfile.quick"]["finished"] == 5 and status["tasks"]["taskfile.long"]["ready"] == 2
    report = json.loads(taskflow("report", tf, "--json").stdout)
    assert report["walltime_skips"] == 2


def test_slurm_walltime_picking(slurm, tmp_path):
    walltime_picking(slurm, tmp_path)


def test_sge_walltime_picking(sge, tmp_path):
    walltime_picking(sge, tmp_path)
