"""`taskflow submit` against fake qsub/sbatch on PATH that record their arguments; settings from
pyproject.toml and the environment; job records; the "N of M workers active" line of status."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import run_cli, write_taskfile
from taskflow import jobs
from taskflow.config import read_section
from taskflow.errors import SchedulerError, UsageError
from taskflow.schedulers import SCHEDULERS, choose, job_number
from taskflow.schedulers.environment import parse_worker
from taskflow.stores.folder import FolderStore as Store

TASKFILE = """
from taskflow import Task

def square(x):
    return x * x

results = [Task(square, i) for i in range(5)]
"""

# A fake scheduler command: appends its arguments (and the submitted script) to $FAKE_LOG as
# one JSON line, then answers as $FAKE_<NAME>_REPLY / _STDERR / _EXIT say.
FAKE = """#!{python}
import json, os, sys
name = os.path.basename(sys.argv[0]).upper()
args = sys.argv[1:]
script = None
if args and os.path.isfile(args[-1]):
    with open(args[-1]) as f:
        script = f.read()
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps({{"cmd": name.lower(), "args": args, "script": script, "cwd": os.getcwd()}}) + "\\n")
if args == ["--version"]:
    print(os.environ.get("FAKE_VERSION", ""))
    sys.exit(0)
reply = os.environ.get("FAKE_" + name + "_REPLY", "")
print(reply.replace("PID", str(os.getpid())))
sys.stderr.write(os.environ.get("FAKE_" + name + "_STDERR", ""))
sys.exit(int(os.environ.get("FAKE_" + name + "_EXIT", "0")))
"""


class Cluster:
    """A PATH holding only the fake commands asked for."""

    def __init__(self, folder: Path):
        self.bin = folder / "fakebin"
        self.bin.mkdir()
        self.log = folder / "fake.log"
        self.env: dict[str, str] = {}

    def install(self, *names: str) -> "Cluster":
        for name in names:
            path = self.bin / name
            path.write_text(FAKE.format(python=sys.executable))
            path.chmod(0o755)
        return self

    def calls(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def submits(self) -> list[dict]:
        return [c for c in self.calls() if c["args"] != ["--version"]]

    def run(self, *args, cwd: Path | None = None, env: dict | None = None, check: int | None = None):
        full = {k: v for k, v in os.environ.items() if not k.startswith(("TASKFLOW_", "SGE_", "SLURM_", "PBS_"))}
        full.update({"PATH": str(self.bin), "FAKE_LOG": str(self.log), **self.env, **(env or {})})
        proc = subprocess.run([sys.executable, "-m", "taskflow", *map(str, args)], cwd=cwd, env=full,
                              capture_output=True, text=True, timeout=120)
        if check is not None:
            assert proc.returncode == check, (
                f"exit {proc.returncode} != {check}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc


@pytest.fixture
def cluster(tmp_path):
    return Cluster(tmp_path)


@pytest.fixture
def taskfile(tmp_path):
    return write_taskfile(tmp_path, TASKFILE)


def store_of(taskfile: Path) -> Path:
    return taskfile.parent / "taskfile.taskflow"


def records(taskfile: Path) -> list[dict]:
    folder = store_of(taskfile) / "jobs"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []


def scripts_left(taskfile: Path) -> list[Path]:
    folder = store_of(taskfile) / "jobs"
    return [p for p in folder.iterdir() if p.suffix in (".sge", ".sbatch", ".pbs")] if folder.exists() else []


# -- success ------------------------------------------------------------------------------------

def test_slurm_submit_prints_and_records_the_job(cluster, taskfile, tmp_path):
    cluster.install("sbatch")
    cluster.env["FAKE_SBATCH_REPLY"] = "4242"
    proc = cluster.run("submit", taskfile, "-n", "20", "--scheduler", "slurm", cwd=tmp_path, check=0)
    assert proc.stdout == "4242\n"
    [call] = cluster.submits()
    script_path = call["args"][-1]
    assert call["args"] == ["--parsable", "--array=1-20", script_path]
    assert call["cwd"] == str(tmp_path)
    store = store_of(taskfile)
    assert Path(script_path).parent == store / "jobs" and Path(script_path).suffix == ".sbatch"
    script = Path(script_path).read_text()
    assert script == call["script"]
    assert f"python=${{TASKFLOW_PYTHON:-{sys.executable}}}" in script
    assert f"[ $# -gt 0 ] || set -- {taskfile} --store {store}" in script
    assert f"#SBATCH --output={store}/jobs/logs/taskflow-%A.%a.log" in script
    assert "#SBATCH --job-name=taskflow-taskfile" in script
    assert (store / "jobs" / "logs").is_dir()
    [record] = records(taskfile)
    assert record["scheduler"] == "slurm" and record["job_id"] == "4242" and record["number"] == "4242"
    assert record["workers"] == 20 and record["taskfile"] == str(taskfile) and record["store"] == str(store)
    assert record["script"] == script_path and record["command"] == ["sbatch", *call["args"]]
    assert (store / "jobs" / "slurm-4242.json").exists()
    assert "submitted slurm job 4242" in proc.stderr


def test_sge_submit(cluster, taskfile):
    cluster.install("qsub", "qconf")
    cluster.env["FAKE_QSUB_REPLY"] = "77.1-3:1"
    proc = cluster.run("submit", taskfile, "-n", "3", "--time", "2h", "--mem", "4G", "--queue", "all.q", check=0)
    assert proc.stdout == "77\n"
    [call] = cluster.submits()
    assert call["args"][:3] == ["-terse", "-t", "1-3"] and len(call["args"]) == 4
    for line in ("#$ -l h_rt=02:00:00", "#$ -l h_vmem=4G", "#$ -q all.q", "#$ -V"):
        assert line in call["script"].splitlines()
    assert records(taskfile)[0]["job_id"] == "77"


@pytest.mark.parametrize("version, flag", [("pbs_version = 22.05.11", "-J"), ("Version: 6.1.3", "-t"), ("", "-J")])
def test_pbs_submit_picks_the_array_option_of_its_flavor(cluster, taskfile, version, flag):
    cluster.install("qsub", "pbsnodes")
    cluster.env.update({"FAKE_QSUB_REPLY": "123[].pbs01", "FAKE_VERSION": version})
    proc = cluster.run("submit", taskfile, "-n", "4", check=0)  # auto: qsub + pbsnodes is PBS
    assert proc.stdout == "123[].pbs01\n"
    [call] = cluster.submits()
    assert call["args"][:2] == [flag, "1-4"]
    [record] = records(taskfile)
    assert record["scheduler"] == "pbs" and record["number"] == "123"


def test_pbs_pro_refuses_a_single_task_array(cluster, taskfile):
    cluster.install("qsub", "pbsnodes")
    cluster.env["FAKE_VERSION"] = "pbs_version = 22.05.11"
    proc = cluster.run("submit", taskfile, "-n", "1", check=2)
    assert "at least 2" in proc.stderr and not cluster.submits()


def test_scheduler_arguments_after_dashdash(cluster, taskfile):
    cluster.install("sbatch")
    cluster.env["FAKE_SBATCH_REPLY"] = "5;cluster2"
    cluster.run("submit", taskfile, "-n", "2", "--", "--account=proj42", "--qos", "low", check=0)
    [call] = cluster.submits()
    assert call["args"][:-1] == ["--parsable", "--array=1-2", "--account=proj42", "--qos", "low"]
    assert records(taskfile)[0]["job_id"] == "5"


# -- failures: exit 2, the scheduler's own message, nothing recorded ----------------------------

def test_rejected_submission(cluster, taskfile):
    cluster.install("sbatch")
    cluster.env.update({"FAKE_SBATCH_EXIT": "1", "FAKE_SBATCH_STDERR":
                        "sbatch: error: Batch job submission failed: Invalid partition name specified\n"})
    proc = cluster.run("submit", taskfile, "-n", "2", "--queue", "nope", check=2)
    assert "sbatch rejected the job (exit 1)" in proc.stderr
    assert "Invalid partition name specified" in proc.stderr
    assert proc.stdout == ""
    assert len(cluster.submits()) == 1
    assert records(taskfile) == [] and scripts_left(taskfile) == []


def test_unreadable_reply(cluster, taskfile):
    cluster.install("qsub", "qconf")
    cluster.env["FAKE_QSUB_REPLY"] = "Unable to parse this <html>"
    proc = cluster.run("submit", taskfile, "-n", "2", check=2)
    assert "cannot find a job id in the reply of qsub" in proc.stderr and "Unable to parse this" in proc.stderr
    assert "check the SGE queue" in proc.stderr
    assert records(taskfile) == [] and scripts_left(taskfile) == []


def test_missing_scheduler(cluster, taskfile):
    proc = cluster.run("submit", taskfile, "-n", "2", "--scheduler", "slurm", check=2)
    assert "sbatch not found on PATH" in proc.stderr
    proc = cluster.run("submit", taskfile, "-n", "2", check=2)
    assert "no batch scheduler found" in proc.stderr
    assert not store_of(taskfile).exists()


@pytest.mark.parametrize("commands, env, expected", [
    (["sbatch"], {}, "slurm"),
    (["qsub", "qconf"], {}, "sge"),
    (["qsub"], {"SGE_ROOT": "/opt/sge"}, "sge"),
    (["qsub", "pbsnodes"], {}, "pbs"),
    (["qsub"], {}, None),
    (["sbatch", "qsub", "qconf"], {}, "several"),
])
def test_auto_detection(tmp_path, commands, env, expected, monkeypatch):
    for k in ("SGE_ROOT",):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    which = {c: f"/fake/{c}" for c in commands}.get
    if expected in (None, "several"):
        with pytest.raises(SchedulerError) as e:
            choose("auto", which)
        assert ("several" if expected else "no batch scheduler") in str(e.value)
    else:
        assert choose("auto", which).name == expected
        assert choose(None, which).name == expected


def test_unknown_scheduler_and_bad_values(cluster, taskfile):
    proc = cluster.run("submit", taskfile, "-n", "2", "--scheduler", "lsf", check=2)
    assert "--scheduler" in proc.stderr and "lsf" in proc.stderr
    assert "give the number of workers" in cluster.run("submit", taskfile, "--dry-run", "--scheduler", "sge",
                                                      check=2).stderr
    proc = cluster.run("submit", taskfile, "-n", "2", "--time", "soon", "--scheduler", "sge", "--dry-run", check=2)
    assert "--time" in proc.stderr and "duration" in proc.stderr
    proc = cluster.run("submit", taskfile, "-n", "2", "--mem", "lots", "--scheduler", "sge", "--dry-run", check=2)
    assert "--mem" in proc.stderr
    proc = cluster.run("submit", "nothere.py", "-n", "2", "--scheduler", "sge", "--dry-run", check=2)
    assert "nothere.py" in proc.stderr
    proc = cluster.run("submit", taskfile, "-n", "2", "--scheduler", "sge", env={"TASKFLOW_SCHEDULER": "lsf"},
                       check=2)  # the command line wins over the environment
    assert "qsub not found" in proc.stderr
    proc = cluster.run("submit", taskfile, "-n", "2", "--dry-run", env={"TASKFLOW_SCHEDULER": "lsf"}, check=2)
    assert "unknown" in proc.stderr and "lsf" in proc.stderr


def test_store_path_that_directives_cannot_carry(cluster, tmp_path):
    folder = tmp_path / "my project"
    folder.mkdir()
    tf = write_taskfile(folder, TASKFILE)
    proc = cluster.run("submit", tf, "-n", "2", "--scheduler", "slurm", "--dry-run", check=2)
    assert "directives cannot carry" in proc.stderr and "--store" in proc.stderr
    proc = cluster.run("submit", tf, "-n", "2", "--scheduler", "slurm", "--dry-run",
                       "--store", tmp_path / "plain.taskflow", check=0)
    assert f"--store {tmp_path}/plain.taskflow" in proc.stdout


# -- dry run and settings -------------------------------------------------------------------------

def test_dry_run_prints_script_and_command_and_touches_nothing(cluster, taskfile):
    cluster.install("sbatch")
    proc = cluster.run("submit", taskfile, "-n", "20", "--time", "4h", "--dry-run", check=0)
    assert proc.stdout.startswith("#!/bin/bash\n")
    assert "#SBATCH --time=04:00:00" in proc.stdout
    *_, note, command = proc.stdout.splitlines()
    assert note.startswith("# taskflow submit --dry-run: would write the script above to ")
    assert command.startswith("sbatch --parsable --array=1-20 ") and command.endswith(".sbatch")
    assert cluster.calls() == [] and not store_of(taskfile).exists()


def test_settings_command_line_over_environment_over_pyproject(cluster, taskfile):
    (taskfile.parent / "pyproject.toml").write_text(textwrap.dedent("""
        [project]
        name = "analysis"

        [tool.taskflow.submit]
        scheduler = "slurm"
        workers = 3
        time = "2h"
        mem = "2G"
        queue = "long"
        args = ["--account=a1"]
    """))
    proc = cluster.run("submit", taskfile, "--dry-run", check=0)
    for piece in ("--array=1-3", "--account=a1"):
        assert piece in proc.stdout.splitlines()[-1]
    for line in ("#SBATCH --time=02:00:00", "#SBATCH --mem=2G", "#SBATCH --partition=long"):
        assert line in proc.stdout.splitlines()
    env = {"TASKFLOW_QUEUE": "short", "TASKFLOW_WORKERS": "5", "TASKFLOW_SUBMIT_ARGS": "--qos=low"}
    proc = cluster.run("submit", taskfile, "--dry-run", "--time", "30m", env=env, check=0)
    lines = proc.stdout.splitlines()
    assert "#SBATCH --time=00:30:00" in lines and "#SBATCH --partition=short" in lines
    assert "#SBATCH --mem=2G" in lines
    assert "--array=1-5 --account=a1 --qos=low " in lines[-1]
    proc = cluster.run("submit", taskfile, "--dry-run", "-n", "7", "--queue", "gpu", "--", "--qos=high",
                       env=env, check=0)
    assert "#SBATCH --partition=gpu" in proc.stdout.splitlines()
    assert "--array=1-7 --account=a1 --qos=low --qos=high " in proc.stdout.splitlines()[-1]


def test_bad_pyproject_settings(cluster, taskfile):
    pyproject = taskfile.parent / "pyproject.toml"
    pyproject.write_text('[tool.taskflow.submit]\nworkerz = 3\n')
    proc = cluster.run("submit", taskfile, "--dry-run", "--scheduler", "sge", check=2)
    assert "workerz" in proc.stderr and str(pyproject) in proc.stderr
    pyproject.write_text('[tool.taskflow.submit]\nworkers = "many"\n')
    proc = cluster.run("submit", taskfile, "--dry-run", "--scheduler", "sge", check=2)
    assert "'many'" in proc.stderr and "workers" in proc.stderr
    pyproject.write_text('[tool.taskflow.submit\n')
    proc = cluster.run("submit", taskfile, "--dry-run", "--scheduler", "sge", "-n", "2", check=2)
    assert "not valid TOML" in proc.stderr


def test_pyproject_without_a_toml_parser(taskfile):
    # Python 3.10 without tomli: fine unless the file has our section.
    pyproject = taskfile.parent / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\n')
    assert read_section(str(taskfile), "submit", loads=None) == ({}, None)
    pyproject.write_text('[project]\nname = "x"\n\n[tool.taskflow.submit]\nworkers = 4\n')
    with pytest.raises(UsageError) as e:
        read_section(str(taskfile), "submit", loads=None)
    assert "tomli" in str(e.value) and str(pyproject) in str(e.value)
    data, path = read_section(str(taskfile), "submit")
    assert data == {"workers": 4} and path == str(pyproject)


# -- records ----------------------------------------------------------------------------------------

def test_concurrent_submits_keep_every_record(cluster, taskfile):
    cluster.install("sbatch")
    # An existing store: processes that race to create a fresh one can see it half made
    # (Store.ensure makes its folders before its marker), which is not what this test is about.
    Store(str(store_of(taskfile))).ensure()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKFLOW_", "SGE_", "SLURM_"))}
    env.update({"PATH": str(cluster.bin), "FAKE_LOG": str(cluster.log), "FAKE_SBATCH_REPLY": "PID"})
    procs = [subprocess.Popen([sys.executable, "-m", "taskflow", "submit", str(taskfile), "-n", "2",
                               "--scheduler", "slurm"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(8)]
    ids = set()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        ids.add(out.strip())
    assert len(ids) == 8
    assert {r["job_id"] for r in records(taskfile)} == ids
    assert len(scripts_left(taskfile)) == 8


def test_worker_ids_and_job_numbers():
    assert parse_worker("slurm:123.4") == ("slurm", "123", "4")
    assert parse_worker("sge:77.12") == ("sge", "77", "12")
    assert parse_worker("pbs:123[4].server.example.org.4") == ("pbs", "123", "4")
    assert parse_worker("node7:12345") is None and parse_worker("") is None
    assert parse_worker("slurm:?.3") is None
    assert job_number("123[].pbs01") == "123" and job_number("77.1-20:1") == "77"
    assert SCHEDULERS["sge"].parse_reply("77.1-20:1\n") == "77"
    assert SCHEDULERS["slurm"].parse_reply("note: using default account\n88;c2\n") == "88"
    assert SCHEDULERS["pbs"].parse_reply("123[].pbs01.example.org\n") == "123[].pbs01.example.org"
    for name in SCHEDULERS:
        with pytest.raises(SchedulerError):
            SCHEDULERS[name].parse_reply("error: something\n")


def test_status_shows_how_many_workers_of_a_job_are_active(taskfile):
    from taskflow.stores.folder.claims import FolderClaims as Leases
    from taskflow.taskfile import load

    store = Store(str(store_of(taskfile)))
    store.ensure()
    assert "workers active" not in run_cli("status", taskfile, check=0).stdout
    common = dict(taskfile=str(taskfile), store=store.path, script="", log_dir="", command=[])
    jobs.save(store, jobs.JobRecord(scheduler="sge", job_id="8", number="8", workers=4, submitted=1.0, **common))
    jobs.save(store, jobs.JobRecord(scheduler="slurm", job_id="4242", number="4242", workers=20, submitted=2.0,
                                    **common))
    tasks = load(str(taskfile), store).tasks
    held = []
    for task, worker in zip(tasks, ["slurm:4242.3", "slurm:4242.17", "slurm:999.1", "sge:8.2"]):
        held.append(Leases(store, worker=worker).claim(task.hash))
    assert all(held)
    out = run_cli("status", taskfile, check=0).stdout
    assert "sge job 8: 1 of 4 workers active" in out
    assert "slurm job 4242: 2 of 20 workers active" in out
    assert "in all: 3 of 24 workers active" in out
    # --json stays as it was
    assert "workers" not in run_cli("status", taskfile, "--json", check=0).stdout


def test_status_shows_the_latest_job_even_when_idle(taskfile):
    store = Store(str(store_of(taskfile)))
    store.ensure()
    common = dict(taskfile=str(taskfile), store=store.path, script="", log_dir="", command=[])
    jobs.save(store, jobs.JobRecord(scheduler="sge", job_id="8", number="8", workers=4, submitted=1.0, **common))
    jobs.save(store, jobs.JobRecord(scheduler="sge", job_id="9", number="9", workers=6, submitted=2.0, **common))
    (store_of(taskfile) / "jobs" / "sge-10.json").write_text("{broken")
    proc = run_cli("status", taskfile, check=0)
    assert "sge job 9: 0 of 6 workers active" in proc.stdout and "job 8" not in proc.stdout
    assert "unreadable job record" in proc.stderr


@pytest.mark.parametrize("command", ["submit", "wait"])
def test_help_has_summary_example_and_exit_codes(command):
    out = run_cli(command, "--help", check=0).stdout
    assert "Example:" in out and f"taskflow {command}" in out and "Exit codes" in out
    assert command in run_cli("--help", check=0).stdout


def test_taskfile_arguments_reach_the_workers(cluster, taskfile):
    proc = cluster.run("submit", taskfile, "-n", "2", "--scheduler", "sge", "--dry-run",
                       "--arg", "--delay", "--arg", "0.1", check=0)
    assert f"[ $# -gt 0 ] || set -- {taskfile} --store {store_of(taskfile)} -- --delay 0.1" in proc.stdout


# -- resource classes -------------------------------------------------------------------------------

CLASSES = """
from taskflow import Task, TaskGenerator

@TaskGenerator(resources={"cpus": 4, "mem": "16G", "time": "2h"})
def big(x):
    return x

@TaskGenerator(resources={"time": "10m"})
def small(x):
    return x

bigs = [big(i) for i in range(2)]
smalls = [small(i) for i in range(40)]
"""


def test_one_array_per_resource_class_with_its_directives(cluster, tmp_path):
    tf = write_taskfile(tmp_path, CLASSES)
    cluster.install("sbatch")
    cluster.env["FAKE_SBATCH_REPLY"] = "PID"
    proc = cluster.run("submit", tf, "-n", "6", "--scheduler", "slurm", "--mem", "2G", cwd=tmp_path, check=0)
    jobs = proc.stdout.split()
    assert len(jobs) == 2 and all(j.isdigit() for j in jobs)
    big_call, small_call = cluster.submits()
    # work: 2 x 2h against 40 x 10m = 4h against 6h40m, so 6 workers go 2 and 4
    assert big_call["args"][1] == "--array=1-2" and small_call["args"][1] == "--array=1-4"
    big_script, small_script = big_call["script"], small_call["script"]
    for line in ("#SBATCH --time=02:00:00", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=16G"):
        assert line in big_script.splitlines()
    for line in ("#SBATCH --time=00:10:00", "#SBATCH --mem=2G"):  # --mem: the default for what declares none
        assert line in small_script.splitlines()
    assert "--cpus-per-task" not in small_script
    store = store_of(tf)
    assert f"set -- {tf} --store {store} --cpus 4 --mem 16G\n" in big_script
    assert f"set -- {tf} --store {store} --mem 2G\n" in small_script
    by_workers = {r["workers"]: r for r in records(tf)}
    assert by_workers[2]["resources"] == {"cpus": 4, "mem": "16G", "time": "2h00m"}
    assert by_workers[4]["resources"] == {"mem": "2G", "time": "10m00s"}
    assert "2 worker(s) for 2 unfinished task(s) with cpus=4 mem=16G time=2h00m" in proc.stderr


def test_dry_run_shows_every_class(cluster, tmp_path):
    tf = write_taskfile(tmp_path, CLASSES)
    cluster.install("qsub", "qconf")
    proc = cluster.run("submit", tf, "-n", "3", "--scheduler", "sge", "--dry-run", check=0)
    assert proc.stdout.count("#!/bin/bash\n") == 2
    assert proc.stdout.count("\nqsub -terse -t 1-") == 2
    assert "# taskflow submit --dry-run: resource class 1 worker(s) for 2 unfinished task(s) with cpus=4" in proc.stdout
    assert "#$ -pe smp 4\n#$ -l h_vmem=4G" in proc.stdout
    assert "qsub -terse -t 1-2 " in proc.stdout  # the rest of -n 3 for the 40 small tasks
    assert cluster.calls() == [] and not store_of(tf).exists()


def test_finished_and_failed_tasks_make_no_class(cluster, tmp_path):
    from taskflow.stores.folder import FolderStore as Store
    from taskflow.submit import resolve_options, resource_classes
    from taskflow.taskfile import load

    tf = write_taskfile(tmp_path, CLASSES)
    store = Store(str(store_of(tf)))
    options = resolve_options(str(tf), workers=5, environ={})
    assert [c.tasks for c in resource_classes(str(tf), store, options)] == [2, 40]
    for t in load(str(tf), store).tasks:
        if t.name.endswith("big"):
            store.save_result(t.hash, t.args[0], {"name": t.name, "hash": t.hash})
    [only] = resource_classes(str(tf), store, options)
    assert (only.tasks, only.workers) == (40, 5)  # one class: -n is its size, as without classes


def test_workers_are_shared_by_work_each_class_one_to_one_per_task():
    from taskflow.resources import Resources
    from taskflow.submit import ResourceClass, share_workers

    def shares(total, *classes):
        found = [ResourceClass(Resources(cpus=i + 1), tasks=n, seconds=s) for i, (n, s) in enumerate(classes)]
        share_workers(found, total)
        return [c.workers for c in found]

    assert shares(12, (30, None), (10, None)) == [9, 3]       # in proportion to tasks
    assert shares(10, (1000, None), (1, None)) == [9, 1]      # each class at least one
    assert shares(10, (3, None), (100, None)) == [1, 9]
    assert shares(10, (2, None), (3, None)) == [2, 3]        # at most one per task
    assert shares(4, (10, 600.0), (10, 6000.0)) == [1, 3]    # declared time x tasks
    assert shares(2, (5, None), (5, None), (5, None)) == [1, 1, 1]  # fewer than classes: one each
    assert shares(7, (3, None)) == [7]                       # one class: -n as given


def test_bad_resources_stop_submit_with_exit_2(cluster, tmp_path):
    tf = write_taskfile(tmp_path, CLASSES.replace('"cpus": 4', '"cpus": -4'))
    cluster.install("sbatch")
    proc = cluster.run("submit", tf, "-n", "2", "--scheduler", "slurm", check=2)
    assert "task taskfile.big" in proc.stderr and "cpus" in proc.stderr and "Traceback" not in proc.stderr
    assert cluster.calls() == []
