"""`report --suggest` on a run of tasks with known runtimes and known memory."""
from __future__ import annotations

import json

import pytest

from conftest import run_cli, write_taskfile
from taskflow import jobs
from taskflow.stores.folder import FolderStore as Store
from taskflow.suggest import percentile, suggested_memory, suggested_time

TASKFILE = """
import time
from taskflow import TaskGenerator

@TaskGenerator
def sleepy(seconds):
    time.sleep(seconds)
    return seconds

@TaskGenerator
def hungry(megabytes):
    block = b"\\x01" * (megabytes * 2**20)  # written, so resident
    return len(block)

naps = [sleepy(s) for s in (0.1, 0.2, 0.3, 0.4, 1.5)]
meals = [hungry(mb) for mb in (20, 200)]
"""


def test_percentiles_and_margins():
    assert percentile([5, 1, 4, 2, 3], 50) == 3 and percentile([5, 1, 4, 2, 3], 90) == 5
    assert percentile([7], 90) == 7
    assert suggested_time(1.5) == 60 and suggested_time(100) == 180   # +50 %, whole minutes, >= 1 min
    assert suggested_memory(200 * 2**20) == 256                          # +25 %, steps of 64M


@pytest.fixture
def run(tmp_path):
    path = write_taskfile(tmp_path, TASKFILE)
    # A worker of array task 1 of Slurm job 77 as the environment tells it, and the record of that job.
    env = {"SLURM_JOB_ID": "78", "SLURM_ARRAY_JOB_ID": "77", "SLURM_ARRAY_TASK_ID": "1"}
    run_cli("execute", path, "-q", env=env, check=0)
    store = Store(str(tmp_path / "taskfile.taskflow"))
    jobs.prepare_folders(store)
    jobs.save(store, jobs.JobRecord(scheduler="slurm", job_id="77", number="77", workers=1, taskfile=str(path),
                                    store=store.path, script="x", log_dir="x", command=[],
                                    resources={"mem": "4G", "time": "1h"}))
    return path


def test_suggest_sizes_requests_from_what_tasks_used(run):
    data = json.loads(run_cli("report", run, "--suggest", "--json", check=0).stdout)
    naps, meals = data["tasks"]["taskfile.sleepy"], data["tasks"]["taskfile.hungry"]
    assert naps["finished"] == 5
    assert 0.3 <= naps["seconds"]["p50"] < 1.5 and 1.5 <= naps["seconds"]["max"] < 10
    assert naps["seconds"]["p90"] == naps["seconds"]["max"]  # nearest rank of 5: the largest
    assert naps["resources"]["time"] == "1m00s"
    peak = meals["rss_bytes"]["max"]
    assert 200 * 2**20 <= peak < 600 * 2**20  # the 200M block, plus the interpreter
    assert meals["rss_bytes"]["p50"] < peak
    assert meals["resources"]["mem"] in (f"{m}M" for m in range(256, 1024, 64))
    assert data["submit"][:2] == ["--time", "1m00s"] and data["submit"][2] == "--mem"
    [job] = data["jobs"]
    assert job["job"] == "slurm job 77" and job["tasks"] == 7 and job["requested"] == {"mem": "4G", "time": "1h00m"}
    assert job["peak_rss_bytes"] == peak
    assert 2.5 <= job["longest_busy_seconds"] < 60  # the naps one after another


def test_suggest_table_says_its_margin(run):
    out = run_cli("report", run, "--suggest", check=0).stdout
    assert "margin: +50% on the longest runtime (at least 1m00s, whole minutes), +25% on the highest peak memory" in out
    assert "taskflow submit FILE --time 1m00s --mem " in out
    assert "slurm job 77: 7 task(s); time 1h00m asked" in out and "memory 4G asked, peak " in out
    line = next(row for row in out.splitlines() if row.startswith("taskfile.sleepy"))
    assert line.endswith('resources={"mem": "64M", "time": "1m00s"}'), line


def test_suggest_with_nothing_finished(tmp_path):
    path = write_taskfile(tmp_path, TASKFILE)
    assert run_cli("report", path, "--suggest", check=0).stdout.strip() == "no finished task to size requests from"
