"""`submit --dask`: Dask workers as jobs of the real Slurm and SGE (dask-jobqueue), the graph run on
them from the submitting process, the jobs released at the end, on SIGTERM and on Ctrl-C.

These skip like the other scheduler tests when no scheduler answers (TASKFLOW_REQUIRE_SCHEDULERS=1
fails them instead), and like the other Dask tests without Dask (TASKFLOW_REQUIRE_DASK=1).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import write_taskfile
from dask_cluster import require_dask
from test_cluster_integration import sge, slurm, taskflow, wait_gone  # noqa: F401 - fixtures
from taskflow.stores.folder import FolderStore

pytestmark = pytest.mark.scheduler

TASKFILE = """
import os
import sys
import time

from taskflow import Task

LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "log")
TASKS, PAUSE = int(sys.argv[1]), float(sys.argv[2])


def work(i, pause):
    time.sleep(pause)
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{i}\\n".encode())
    finally:
        os.close(fd)
    return i


results = [Task(work, i, PAUSE) for i in range(TASKS)]
"""


def submit(tf: Path, scheduler: str, tasks: int, pause: float) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKFLOW_")}
    return subprocess.Popen([sys.executable, "-m", "taskflow", "submit", str(tf), "--dask", "-n", "2", "--scheduler",
                             scheduler, "--time", "10m", "--mem", "1G", "--arg", str(tasks), "--arg", str(pause)],
                            cwd=tf.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_active(tf: Path, run: subprocess.Popen, tasks: int, pause: float, timeout: float = 120) -> str:
    """`taskflow status` once it counts a Dask worker job as an active worker."""
    end = time.monotonic() + timeout
    while True:
        assert run.poll() is None, run.communicate()
        status = taskflow("status", tf, "--", str(tasks), str(pause), check=None).stdout
        if re.search(r"job \d+: 1 of 1 workers active", status):
            return status
        assert time.monotonic() < end, status
        time.sleep(0.2)


def run_on_dask_workers(scheduler, tmp_path: Path) -> None:
    require_dask()
    tf = write_taskfile(tmp_path, TASKFILE)
    run = submit(tf, scheduler.name, 16, 0.4)
    wait_active(tf, run, 16, 0.4)
    out, err = run.communicate(timeout=180)
    assert run.returncode == 0, err
    jobs = out.split()
    assert len(jobs) == 2 and all(j.isdigit() for j in jobs), out
    done = Counter((tmp_path / "log").read_text().split())
    assert sorted(map(int, done)) == list(range(16)) and set(done.values()) == {1}, done
    store = FolderStore(str(tmp_path / "taskfile.taskflow"))
    workers = {store.result_meta(h)["worker"] for h in store.finished_hashes()}
    assert workers <= {f"{scheduler.name}:{j}.0" for j in jobs} and workers, workers
    for job in jobs:
        wait_gone(scheduler, job, timeout=60)  # released at the end
    assert sorted(p.name for p in (tmp_path / "taskfile.taskflow" / "jobs").glob("*.json")) == sorted(
        f"{scheduler.name}-{j}.json" for j in jobs)


def interrupt_on_dask_workers(scheduler, tmp_path: Path, signum: int, code: int) -> None:
    require_dask()
    tf = write_taskfile(tmp_path, TASKFILE)
    run = submit(tf, scheduler.name, 40, 1.0)
    wait_active(tf, run, 40, 1.0)
    run.send_signal(signum)
    out, err = run.communicate(timeout=120)
    assert run.returncode == code, err
    for job in out.split():
        wait_gone(scheduler, job, timeout=60)  # released on the signal


def test_slurm_submit_dask(slurm, tmp_path):  # noqa: F811 - the fixture
    run_on_dask_workers(slurm, tmp_path)


def test_sge_submit_dask(sge, tmp_path):  # noqa: F811
    run_on_dask_workers(sge, tmp_path)


def test_slurm_submit_dask_releases_its_jobs_on_sigterm(slurm, tmp_path):  # noqa: F811
    interrupt_on_dask_workers(slurm, tmp_path, signal.SIGTERM, 3)


def test_sge_submit_dask_releases_its_jobs_on_ctrl_c(sge, tmp_path):  # noqa: F811
    interrupt_on_dask_workers(sge, tmp_path, signal.SIGINT, 130)
