"""report and show: figures match the metadata; a failed task shows its traceback."""
from __future__ import annotations

import json
import re

import pytest

from conftest import run_cli, write_taskfile

TIMED = """
import time
import numpy as np
from taskflow import TaskGenerator

@TaskGenerator
def nap(x):
    time.sleep(0.3)
    return x

@TaskGenerator
def hog(n_bytes):
    block = np.ones(n_bytes // 8)
    return float(block.sum())

@TaskGenerator
def quick(x):
    return x

naps = [nap(i) for i in range(2)]
big = hog(200 * 2**20)
small = [quick(i) for i in range(3)]
"""


def test_report_figures_match_the_metadata(tmp_path):
    tf = write_taskfile(tmp_path, TIMED)
    run_cli("execute", tf, check=0)
    data = json.loads(run_cli("report", tf, "--json", check=0).stdout)
    naps = data["tasks"]["taskfile.nap"]
    assert naps["finished"] == 2
    assert naps["mean_seconds"] == pytest.approx(0.3, abs=0.15)
    assert naps["max_seconds"] >= 0.3 and naps["total_seconds"] >= 0.6
    assert len(naps["hosts"]) == 1 and list(naps["hosts"].values()) == [2]
    assert data["tasks"]["taskfile.hog"]["max_rss_bytes"] > 200 * 2**20
    assert data["tasks"]["taskfile.quick"]["max_rss_bytes"] < 200 * 2**20
    slowest = [m["name"] for m in data["slowest"]]
    assert slowest.count("taskfile.nap") == 2 and slowest[-1] == "taskfile.quick"
    assert [m["duration"] for m in data["slowest"]] == sorted((m["duration"] for m in data["slowest"]), reverse=True)
    text = run_cli("report", tf, "--slowest", "2", check=0).stdout
    assert "taskfile.nap" in text and "Slowest tasks:" in text and "MiB" in text


FAILING = """
from taskflow import TaskGenerator

@TaskGenerator
def parse(text):
    return int(text)

@TaskGenerator
def double(x):
    return 2 * x

good = [parse(t) for t in ("1", "2")]
bad = parse("not a number")
d = double(bad)
"""


def test_show_a_failed_task_includes_its_traceback(tmp_path):
    tf = write_taskfile(tmp_path, FAILING)
    run_cli("execute", tf, "--keep-going", check=1)
    out = run_cli("show", tf, "parse[2]", check=0).stdout
    assert "task       taskfile.parse" in out and "argument 1 'not a number'" in out
    assert "state      failed" in out
    assert "ValueError: invalid literal for int()" in out and "Traceback (most recent call last)" in out
    assert "used by    1 task(s): taskfile.double" in out

    every = run_cli("show", tf, "parse", check=0).stdout
    assert every.count("task       taskfile.parse") == 3
    finished = run_cli("show", tf, "parse[0]", check=0).stdout
    assert "state      finished" in finished and "duration" in finished and "result     " in finished
    # Durations and sizes as `report` prints them, every value in the same column.
    assert re.search(r"^duration   \d+\.\d{3}s$", finished, re.M), finished
    assert re.search(r"^peak mem   \d+ MiB$", finished, re.M), finished
    assert all(line[10] == " " and line[11] != " " for line in finished.splitlines()
               if not line.startswith(" ")), finished
    waiting = run_cli("show", tf, "double", check=0).stdout
    assert "state      waiting" in waiting and "depends on" in waiting

    from taskflow.taskfile import load
    from taskflow.stores.folder import FolderStore as Store
    tasks = load(str(tf), Store(str(tmp_path / "taskfile.taskflow"))).tasks
    prefix = tasks[0].hash[:8]
    assert f"hash       {tasks[0].hash}" in run_cli("show", tf, prefix, check=0).stdout
    assert "no task" in run_cli("show", tf, "nosuch", check=2).stderr
    assert "there are 3" in run_cli("show", tf, "parse[7]", check=2).stderr
