"""`taskflow web` launching workers on a real Slurm and SGE from the page, to the end of the graph.

Like tests/test_cluster_integration.py, these skip without a working scheduler, saying why, and
TASKFLOW_REQUIRE_SCHEDULERS=1 (as in CI) fails them instead. Jobs must see this process's files,
which live in pytest's tmp_path under /tmp, where single-node test clusters run their jobs.
"""
from __future__ import annotations

import json

import pytest

from conftest import run_cli, write_taskfile
from test_cluster_integration import sge, slurm, wait_gone  # noqa: F401  (fixtures)
from web_helpers import counts, eventually

pytestmark = pytest.mark.scheduler

TASKS = 20


def launch_from_the_page(scheduler, tmp_path, page, servers) -> None:
    tf = write_taskfile(tmp_path, f"""
        import time
        from taskflow import Task

        def work(i):
            time.sleep(0.1)
            return i

        xs = [Task(work, i) for i in range({TASKS})]
    """, "tf.py")
    server = servers(tf)
    page.goto(server.url + "#actions")
    page.select_option("#sub-scheduler", scheduler.name)
    page.fill("#sub-workers", "2")
    page.fill("#sub-time", "10m")
    page.click("#sub-preview")
    page.wait_for_selector("#sub-preview-box:not([hidden])")
    assert page.locator("#sub-submit-command").inner_text().startswith({"slurm": "sbatch", "sge": "qsub"}[scheduler.name])
    page.click("#sub-submit")
    result = page.locator("#sub-result")
    eventually(lambda: "submitted" in result.inner_text() or "rror" in result.inner_text(), what="an answer")
    assert "submitted" in result.inner_text(), result.inner_text()
    job = result.inner_text().split()[1]
    assert job.isdigit()
    page.click('a[data-view="overview"]')
    eventually(lambda: counts(page, "Total")["finished"] == TASKS, timeout=180, what="all finished on the page")
    wait_gone(scheduler, job)
    run_cli("check", tf, check=0)
    [record] = [json.loads(p.read_text()) for p in (tmp_path / "tf.taskflow" / "jobs").glob("*.json")]
    assert record["job_id"] == job and record["workers"] == 2
    eventually(lambda: f"{scheduler.name} job {job}: 0 of 2 workers active" in page.locator("#jobs").inner_text(),
               what="the job on the overview")


def test_slurm_launch_from_the_page(slurm, tmp_path, page, servers):
    launch_from_the_page(slurm, tmp_path, page, servers)


def test_sge_launch_from_the_page(sge, tmp_path, page, servers):
    launch_from_the_page(sge, tmp_path, page, servers)
