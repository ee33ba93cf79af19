"""`--scheduler condor`: HTCondor's submit description (golden files), the worker script as HTCondor
runs it (a job ad, no real HTCondor), `taskflow submit` against a fake condor_submit on PATH, and
the job environment HTCondor gives.

No HTCondor pool runs where these tests run (there is no Debian package to start one), so nothing
here submits a real job: the files and the command line are checked against HTCondor's manual.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from conftest import write_taskfile
from taskflow.errors import UsageError
from taskflow.schedulers import SCHEDULERS, ScriptSpec
from taskflow.schedulers.environment import condor, detect, parse_worker
from test_scheduler_scripts import CASES, GOLDEN, ROOT, UPDATE, fake  # noqa: F401
from test_submit import TASKFILE, Cluster, records, store_of

CONDOR = SCHEDULERS["condor"]
SCRIPT = "/shared/project/analysis.taskflow/jobs/condor-20260101T000000-abcdef.sh"


def _no_queue(spec: ScriptSpec) -> ScriptSpec:
    return dataclasses.replace(spec, queue=None)


@pytest.mark.parametrize("case", sorted(CASES))
def test_submit_description_matches_golden_file(case):
    spec = _no_queue(CASES[case])
    text = CONDOR.render_description(spec, SCRIPT, 20) if case != "default" else CONDOR.render_description(spec)
    path = GOLDEN / "condor" / f"{case}.sub"
    if UPDATE:
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with TASKFLOW_UPDATE_GOLDEN=1 to write it"
    assert text == path.read_text(), f"{path} differs (TASKFLOW_UPDATE_GOLDEN=1 rewrites it after a wanted change)"


def test_scripts_folder_has_the_hand_usable_description():
    assert (ROOT / CONDOR.description).read_text() == CONDOR.render_description(ScriptSpec()), (
        "run python3 scripts/update_job_scripts.py")


def test_requests_of_a_resource_class():
    assert CONDOR.resource_lines(CASES["class_big"]) == [
        "allowed_execute_duration = 7200", "request_cpus = 4", "request_memory = 16384", "request_gpus = 1"]
    text = CONDOR.render_description(CASES["class_small"], SCRIPT, 3)
    lines = text.splitlines()
    assert "allowed_execute_duration = 600" in lines and "request_memory = 2048" in lines
    assert f"executable = {SCRIPT}" in lines and lines[-1] == "queue 3"
    assert not any(line.startswith("arguments") for line in lines)  # in the script itself
    assert "getenv = True" in lines and "should_transfer_files = NO" in lines


def test_a_queue_is_refused_in_one_line():
    with pytest.raises(UsageError) as e:
        CONDOR.submit_files(CASES["submit_all"], SCRIPT, 2)
    assert "HTCondor has no queues" in str(e.value) and "\n" not in str(e.value)


JOB_AD = """MyType = "Job"
ClusterId = 123
ProcId = 4
RequestCpus = 2
RequestMemory = 4096
AllowedExecuteDuration = 5400
JobCurrentStartDate = 1767225600
TotalSubmitProcs = 8
Iwd = "/shared/project"
"""


def test_the_script_reads_its_cluster_process_and_walltime_from_the_job_ad(fake):  # noqa: F811
    ad = fake.folder / ".job.ad"
    ad.write_text(JOB_AD)
    proc, argv = fake.run("condor", {"_CONDOR_JOB_AD": str(ad), "BATCH_SYSTEM": "HTCondor"}, "taskfile.py")
    assert proc.returncode == 0, proc.stderr
    assert argv == ["-m", "taskflow", "execute", "--max-time", "4860", "taskfile.py"]
    log = (fake.folder / "work" / "taskflow-123.4.log").read_text()
    assert "HTCondor job 123 task 4 on " in log and "walltime 5400, --max-time 4860s" in log


def test_the_submitted_script_falls_back_to_its_own_walltime_and_arguments(fake):  # noqa: F811
    spec = ScriptSpec(arguments=("/data/tf.py", "--store", "/data/tf.taskflow"), walltime=3600)
    ad = fake.folder / ".job.ad"
    ad.write_text("ClusterId = 9\nProcId = 0\n")
    proc, argv = fake.run("condor", {"_CONDOR_JOB_AD": str(ad)}, spec=spec)
    assert proc.returncode == 0, proc.stderr
    assert argv == ["-m", "taskflow", "execute", "--max-time", "3240", "/data/tf.py", "--store", "/data/tf.taskflow"]


def test_the_job_environment_of_an_htcondor_job(tmp_path):
    ad = tmp_path / ".job.ad"
    ad.write_text(JOB_AD)
    machine = tmp_path / ".machine.ad"
    machine.write_text('Cpus = 3\nMemory = 6000\nName = "slot1_2@node7"\n')
    environ = {"BATCH_SYSTEM": "HTCondor", "_CONDOR_JOB_AD": str(ad), "_CONDOR_MACHINE_AD": str(machine),
               "OMP_NUM_THREADS": "3", "CUDA_VISIBLE_DEVICES": "0,1"}
    job = condor(environ)
    assert job is not None and job == detect(environ)
    assert (job.scheduler, job.job_id, job.array_job_id, job.array_task) == ("condor", "123.4", "123", "4")
    assert (job.array_rank, job.array_size) == (4, 8)
    assert job.cpus == 3 and job.memory == 6000 * 1024 * 1024  # what the slot was given
    assert job.gpus == ("0", "1") and job.walltime == 5400 and job.start_time == 1767225600
    assert job.time_left(now=1767225600 + 400) == 5000
    assert job.worker == "condor:123.4" and parse_worker(job.worker) == ("condor", "123", "4")
    # Without the machine ad: what the job asked for.
    del environ["_CONDOR_MACHINE_AD"], environ["OMP_NUM_THREADS"]
    job = condor(environ)
    assert job is not None and job.cpus == 2 and job.memory == 4096 * 1024 * 1024
    assert condor({"PATH": "/bin"}) is None
    assert detect({"PATH": "/bin"}).scheduler is None


def test_worker_ids_name_the_cluster_and_process(tmp_path, monkeypatch):
    from taskflow.stores.identity import worker_id

    ad = tmp_path / ".job.ad"
    ad.write_text(JOB_AD)
    for name in [k for k in os.environ if k.startswith(("SLURM_", "SGE_", "PBS_", "JOB_ID"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("_CONDOR_JOB_AD", str(ad))
    assert worker_id() == "condor:123.4"


# -- taskflow submit against a fake condor_submit ------------------------------------------------

@pytest.fixture
def cluster(tmp_path):
    return Cluster(tmp_path).install("condor_submit", "condor_q")


@pytest.fixture
def taskfile(tmp_path):
    return write_taskfile(tmp_path, TASKFILE)


def test_submit_writes_script_and_description_and_records_the_cluster(cluster, taskfile, tmp_path):
    cluster.env["FAKE_CONDOR_SUBMIT_REPLY"] = "4242.0 - 4242.19"
    proc = cluster.run("submit", taskfile, "-n", "20", "--time", "2h", "--mem", "4G", "--cpus", "2", cwd=tmp_path,
                       check=0)  # found as the only scheduler on PATH
    assert proc.stdout == "4242\n"
    [call] = cluster.submits()
    store = store_of(taskfile)
    description = Path(call["args"][-1])
    assert call["args"] == ["-terse", str(description)] and description.suffix == ".sub"
    script = description.with_suffix(".sh")
    assert script.parent == store / "jobs" and os.access(script, os.X_OK)
    lines = call["script"].splitlines()  # what condor_submit read: the description
    for line in (f"executable = {script}", "queue 20", "allowed_execute_duration = 7200", "request_cpus = 2",
                 "request_memory = 4096", "getenv = True", f"log = {store}/jobs/logs/taskflow-$(Cluster).events.log",
                 "batch_name = taskflow-taskfile"):
        assert line in lines, line
    text = script.read_text()
    assert f"[ $# -gt 0 ] || set -- {taskfile} --store {store}" in text
    assert f'exec >>"{store}/jobs/logs/taskflow-$job.$task.log" 2>&1' in text
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    [record] = records(taskfile)
    assert (record["scheduler"], record["job_id"], record["number"], record["workers"]) == ("condor", "4242",
                                                                                            "4242", 20)
    assert record["command"] == ["condor_submit", *call["args"]] and record["resources"]["mem"] == "4G"
    status = cluster.run("status", taskfile, check=None).stdout
    assert "condor job 4242: 0 of 20 workers active" in status


def test_arguments_after_dashdash_reach_condor_submit(cluster, taskfile):
    cluster.env["FAKE_CONDOR_SUBMIT_REPLY"] = "7.0 - 7.1"
    cluster.run("submit", taskfile, "-n", "2", "--scheduler", "condor", "--", "-append", "accounting_group = phys",
                check=0)
    [call] = cluster.submits()
    assert call["args"][:3] == ["-terse", "-append", "accounting_group = phys"]


def test_a_rejected_or_unreadable_submission_leaves_nothing(cluster, taskfile):
    cluster.env.update({"FAKE_CONDOR_SUBMIT_EXIT": "1", "FAKE_CONDOR_SUBMIT_STDERR": "ERROR: Failed to connect"})
    proc = cluster.run("submit", taskfile, "-n", "2", "--scheduler", "condor", check=2)
    assert "condor_submit rejected the job (exit 1): ERROR: Failed to connect" in proc.stderr
    cluster.env.update({"FAKE_CONDOR_SUBMIT_EXIT": "0", "FAKE_CONDOR_SUBMIT_REPLY": "Submitting job(s)."})
    proc = cluster.run("submit", taskfile, "-n", "2", "--scheduler", "condor", check=2)
    assert "cannot find a job id in the reply of condor_submit" in proc.stderr
    jobs = store_of(taskfile) / "jobs"
    assert not [p for p in jobs.iterdir() if p.suffix in (".sh", ".sub")] and not records(taskfile)


def test_queue_and_dry_run(cluster, taskfile):
    proc = cluster.run("submit", taskfile, "-n", "2", "--scheduler", "condor", "--queue", "long", check=2)
    assert "HTCondor has no queues" in proc.stderr and "Traceback" not in proc.stderr
    proc = cluster.run("submit", taskfile, "-n", "3", "--scheduler", "condor", "--dry-run", check=0)
    assert "queue 3" in proc.stdout and proc.stdout.rstrip().splitlines()[-1].startswith("condor_submit -terse ")
    assert not cluster.submits() and not store_of(taskfile).exists()
