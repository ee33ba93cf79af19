"""Workers as array jobs of a real Slurm and SGE: `taskflow submit`, `taskflow wait`, the job
script by hand, and an array task killed while it holds a claim.

These run whenever sbatch/qsub reach a working scheduler, and skip otherwise, saying why;
with TASKFLOW_REQUIRE_SCHEDULERS=1 (as in CI) a missing scheduler fails them instead.
Jobs must see this process's files: taskfiles, stores and logs live in pytest's tmp_path,
under /tmp on the submitting host, which is where single-node test clusters run their jobs.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import write_taskfile
from taskflow.stores.folder import FolderStore as Store

pytestmark = pytest.mark.scheduler

ROOT = Path(__file__).resolve().parent.parent
REQUIRE = os.environ.get("TASKFLOW_REQUIRE_SCHEDULERS") == "1"
TASKS = 60

# Each task appends one line to an O_APPEND log once it is done: a task run twice shows twice.
TASKFILE = """
import os
import sys
import time

from taskflow import Task
from taskflow.stores.identity import worker_id

LOG = {log!r}


def work(i):
    time.sleep({pause})
    line = "\\t".join([str(i), worker_id(), os.environ.get("TF_TEST_PYTHON", sys.executable)]) + "\\n"
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return i


results = [Task(work, i) for i in range({tasks})]
"""


def unavailable(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"{reason}; TASKFLOW_REQUIRE_SCHEDULERS=1 says this test must run, not skip")
    pytest.skip(reason)


def sh(*args: str, timeout: float = 30, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kwargs)


def taskflow(*args, cwd: Path | None = None, env: dict | None = None, check: int | None = 0,
             timeout: float = 180) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items()
            if not k.startswith("TASKFLOW_") or k == "TASKFLOW_REQUIRE_SCHEDULERS"}
    full.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "taskflow", *map(str, args)], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=timeout)
    if check is not None:
        assert proc.returncode == check, (
            f"taskflow {' '.join(map(str, args))}: exit {proc.returncode} != {check}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


class Slurm:
    name = "slurm"

    def gone(self, job: str) -> bool:
        proc = sh("squeue", "-h", "-j", job)
        return proc.returncode != 0 or not proc.stdout.strip()

    def kill(self, job: str, task: str) -> None:
        proc = sh("scancel", f"{job}_{task}")
        assert proc.returncode == 0, proc.stderr


class SGE:
    name = "sge"

    def gone(self, job: str) -> bool:
        return sh("qstat", "-j", job).returncode != 0

    def kill(self, job: str, task: str) -> None:
        proc = sh("qdel", job, "-t", task)
        assert proc.returncode == 0, proc.stderr + proc.stdout


def wait_gone(scheduler, job: str, timeout: float = 90) -> None:
    """Until the scheduler has no array task of `job` left, so that every task wrote its log."""
    end = time.monotonic() + timeout
    while not scheduler.gone(job):
        assert time.monotonic() < end, f"{scheduler.name} job {job} still queued after {timeout:.0f}s"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def slurm() -> Slurm:
    if not shutil.which("sbatch") or not shutil.which("squeue"):
        unavailable("no Slurm: sbatch/squeue not on PATH")
    try:
        proc = sh("sinfo", "-h", "-o", "%a %T", timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        unavailable(f"Slurm does not answer: sinfo: {e}")
    if proc.returncode != 0:
        unavailable(f"Slurm does not answer: sinfo: {proc.stderr.strip()}")
    if not re.search(r"^up (idle|mixed|allocated|completing)", proc.stdout, re.M):
        unavailable(f"Slurm has no usable node: sinfo says {proc.stdout.strip()!r}")
    return Slurm()


@pytest.fixture(scope="module")
def sge() -> SGE:
    if not shutil.which("qsub") or not shutil.which("qconf"):
        unavailable("no SGE: qsub/qconf not on PATH")
    try:
        proc = sh("qstat", "-g", "c", timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        unavailable(f"SGE does not answer: qstat: {e}")
    if proc.returncode != 0:
        unavailable(f"SGE does not answer: qstat: {(proc.stderr or proc.stdout).strip()}")
    if not re.search(r"^\S+\s+\S+\s+\d+\s+\d+\s+[1-9]", proc.stdout, re.M):  # a queue with slots available
        unavailable(f"SGE has no queue with free slots: qstat -g c says {proc.stdout.strip()!r}")
    return SGE()


def make_taskfile(folder: Path, tasks: int = TASKS, pause: float = 0.15) -> tuple[Path, Path]:
    log = folder / "done.log"
    return write_taskfile(folder, TASKFILE.format(log=str(log), pause=pause, tasks=tasks)), log


def read_log(log: Path) -> list[tuple[int, str, str]]:
    rows = []
    for line in log.read_text().splitlines():
        i, worker, python = line.split("\t")
        rows.append((int(i), worker, python))
    return rows


def check_every_task_once(log: Path, prefix: str, python: str, tasks: int = TASKS) -> set[str]:
    rows = read_log(log)
    done = sorted(i for i, _, _ in rows)
    assert done == list(range(tasks)), f"tasks not run exactly once: {done}"
    workers = {w for _, w, _ in rows}
    assert all(w.startswith(prefix) for w in workers), workers
    assert len(workers) >= 2, f"only {workers} did any work"
    assert {p for _, _, p in rows} == {python}
    return workers


def submit_and_wait(scheduler, tmp_path: Path) -> None:
    tf, log = make_taskfile(tmp_path)
    proc = taskflow("submit", tf, "-n", "4", "--scheduler", scheduler.name, "--time", "10m", cwd=tmp_path)
    job = proc.stdout.strip()
    assert job.isdigit(), proc.stdout
    waited = taskflow("wait", tf, "--timeout", "150", "--interval", "0.5", timeout=200)
    assert "all 60 tasks finished" in waited.stderr
    wait_gone(scheduler, job)

    workers = check_every_task_once(log, f"{scheduler.name}:{job}.", sys.executable)
    store = tmp_path / "taskfile.taskflow"
    logs = store / "jobs" / "logs"
    assert sorted(p.name for p in logs.iterdir()) == [f"taskflow-{job}.{t}.log" for t in range(1, 5)]
    title = {"slurm": "Slurm", "sge": "SGE"}[scheduler.name]
    for t in range(1, 5):
        text = (logs / f"taskflow-{job}.{t}.log").read_text()
        assert f"taskflow: {title} job {job} task {t} on " in text, text
        # the 10 minutes asked for, less a minute (Slurm tells the time left: a second may be gone)
        max_time = re.search(r"--max-time (\d+)s", text)
        assert max_time and 530 <= int(max_time.group(1)) <= 540, text
    for w in workers:  # a worker that did work says so in its own log
        assert "finished taskfile.work" in (logs / f"taskflow-{job}.{w.rsplit('.', 1)[1]}.log").read_text()
    [record] = [json.loads(p.read_text()) for p in (store / "jobs").glob("*.json")]
    assert record["job_id"] == job and record["workers"] == 4 and record["scheduler"] == scheduler.name
    taskflow("check", tf)
    status = taskflow("status", tf).stdout
    assert f"{scheduler.name} job {job}: 0 of 4 workers active" in status


def test_slurm_submit_and_wait(slurm, tmp_path):
    submit_and_wait(slurm, tmp_path)


def test_sge_submit_and_wait(sge, tmp_path):
    submit_and_wait(sge, tmp_path)


def test_sge_job_script_by_hand(sge, tmp_path):
    """`qsub -t 1-3 scripts/sge/taskflow_array.sge taskfile.py`, as the script's header says."""
    tf, log = make_taskfile(tmp_path)
    # The job runs the python3 of the submitting shell's PATH (-V): make that one recognisable.
    # A wrapper, not a symlink: through a symlink in another folder, the interpreter of a
    # virtualenv (or a conda-style prefix) no longer finds its pyvenv.cfg, nor taskflow.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "python3"
    wrapper.write_text(f'#!/bin/sh\nTF_TEST_PYTHON="$0" exec {shlex.quote(sys.executable)} "$@"\n')
    wrapper.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKFLOW_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    # Workers racing to create a fresh store can see it half made (see Store.ensure), and so
    # could `taskflow wait`; taskflow submit creates it before submitting, so do that here too.
    Store(str(tmp_path / "taskfile.taskflow")).ensure()
    proc = sh("qsub", "-t", "1-3", str(ROOT / "scripts/sge/taskflow_array.sge"), "taskfile.py", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    m = re.search(r"job-array (\d+)\.1-3:1", proc.stdout)
    assert m, proc.stdout
    job = m.group(1)
    taskflow("wait", tf, "--timeout", "150", "--interval", "0.5", "-q", timeout=200)
    wait_gone(sge, job)
    check_every_task_once(log, f"sge:{job}.", str(bin_dir / "python3"))
    for t in (1, 2, 3):
        text = (tmp_path / f"taskflow-{job}.{t}.log").read_text()
        assert f"SGE job {job} task {t}" in text and "walltime none" in text


def kill_one_worker(scheduler, tmp_path: Path) -> None:
    """Kill one array task while it holds a claim; the others must finish the graph."""
    tasks, pause = 12, 1.5
    tf, log = make_taskfile(tmp_path, tasks=tasks, pause=pause)
    job = taskflow("submit", tf, "-n", "3", "--scheduler", scheduler.name, cwd=tmp_path).stdout.strip()
    locks = tmp_path / "taskfile.taskflow" / "locks"
    end = time.monotonic() + 90
    victim = held = None
    while victim is None:
        assert time.monotonic() < end, "no array task ever claimed a task"
        for path in locks.glob("*") if locks.exists() else ():
            try:
                owner = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            # A claim just made: its worker is sure to be killed before it finishes that task.
            if owner.get("worker", "").startswith(f"{scheduler.name}:{job}.") \
                    and time.time() - owner.get("started", 0) < pause / 5:
                victim, held = owner["worker"], path.name
                break
        else:
            time.sleep(0.1)
    scheduler.kill(job, victim.rsplit(".", 1)[1])

    taskflow("wait", tf, "--timeout", "150", "--interval", "0.5", "-q", timeout=200)
    wait_gone(scheduler, job)
    rows = read_log(log)
    assert sorted({i for i, _, _ in rows}) == list(range(tasks))
    finisher = Store(str(tmp_path / "taskfile.taskflow")).result_meta(held)["worker"]
    # The task the killed worker held was finished by another one.
    assert finisher != victim and finisher.startswith(f"{scheduler.name}:{job}.")
    taskflow("check", tf)


def test_slurm_scancel_one_array_task(slurm, tmp_path):
    kill_one_worker(slurm, tmp_path)


def test_sge_qdel_one_array_task(sge, tmp_path):
    kill_one_worker(sge, tmp_path)


# Writes what schedulers/environment.py makes of this array task's environment.
PROBE = """
import dataclasses
import json
import os
import sys

from taskflow.schedulers.environment import detect

job = detect()
seen = {**dataclasses.asdict(job), "rank": job.array_rank, "size": job.array_size}
with open(os.path.join(sys.argv[1], f"env.{job.array_task}.json"), "w") as f:
    json.dump(seen, f)
"""


def probe_array(scheduler, tmp_path: Path, submit: list[str], tasks: list[int]) -> dict[int, dict]:
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    proc = sh(*submit, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    job = re.match(r"\d+", proc.stdout.strip())
    assert job, proc.stdout
    wait_gone(scheduler, job.group(0))
    seen = {}
    for t in tasks:
        path = tmp_path / f"env.{t}.json"
        assert path.exists(), f"array task {t} wrote nothing: {sorted(p.name for p in tmp_path.iterdir())}"
        seen[t] = json.loads(path.read_text())
        assert seen[t]["array_job_id"] == job.group(0)
    return seen


def test_slurm_array_task_environment(slurm, tmp_path):
    """A real Slurm array task: its index, rank and size, its job ids and the cpus and memory it got."""
    wrap = f"exec {shlex.quote(sys.executable)} probe.py {shlex.quote(str(tmp_path))}"
    seen = probe_array(slurm, tmp_path, ["sbatch", "--parsable", "--array=3-5", "--cpus-per-task=2", "--mem=100M",
                                         "--time=5", "-o", "slurm-%A_%a.out", "--wrap", wrap], [3, 4, 5])
    for rank, t in enumerate([3, 4, 5]):
        job = seen[t]
        assert (job["scheduler"], job["array_task"], job["rank"], job["size"]) == ("slurm", str(t), rank, 3)
        assert (job["array_first"], job["array_last"]) == (3, 5)
        assert job["cpus"] == 2 and job["memory"] == 100 * 1024 * 1024
        assert job["worker"] == f"slurm:{job['array_job_id']}.{t}"
        assert job["job_id"].isdigit()  # each array task is a job of its own
    assert len({job["job_id"] for job in seen.values()}) == 3


def test_sge_array_task_environment(sge, tmp_path):
    """A real SGE array task with a step: index, rank and size, job id, slots and its h_vmem."""
    seen = probe_array(sge, tmp_path, ["qsub", "-terse", "-N", "envprobe", "-t", "2-6:2", "-cwd", "-V", "-j", "y",
                                       "-l", "h_vmem=1G", "-b", "y", sys.executable, "probe.py", str(tmp_path)],
                       [2, 4, 6])
    for rank, t in enumerate([2, 4, 6]):
        job = seen[t]
        assert (job["scheduler"], job["array_task"], job["rank"], job["size"]) == ("sge", str(t), rank, 3)
        assert (job["array_first"], job["array_last"], job["array_step"]) == (2, 6, 2)
        assert job["job_id"] == job["array_job_id"] and job["worker"] == f"sge:{job['job_id']}.{t}"
        assert job["cpus"] == 1 and job["memory"] == 1024 ** 3


# Two resource classes: each gets its own array with its own request, and the graph finishes.
CLASSES_TASKFILE = """
import time
from taskflow import TaskGenerator

@TaskGenerator(resources={big})
def big(i):
    time.sleep(0.1)
    return i

@TaskGenerator(resources={small})
def small(i):
    time.sleep(0.1)
    return i

bigs = [big(i) for i in range(3)]
smalls = [small(i) for i in range(6)]
"""


def submit_two_classes(scheduler, tmp_path: Path, big: dict, small: dict) -> dict[str, str]:
    tf = write_taskfile(tmp_path, CLASSES_TASKFILE.format(big=big, small=small))
    proc = taskflow("submit", tf, "-n", "3", "--scheduler", scheduler.name, cwd=tmp_path)
    jobs = proc.stdout.split()
    assert len(jobs) == 2 and all(j.isdigit() for j in jobs), proc.stdout
    details = {}
    for job in jobs:
        asked = sh("scontrol", "show", "job", job) if scheduler.name == "slurm" else sh("qstat", "-j", job)
        details[job] = asked.stdout
    waited = taskflow("wait", tf, "--timeout", "150", "--interval", "0.5", timeout=200)
    assert "all 9 tasks finished" in waited.stderr
    for job in jobs:
        wait_gone(scheduler, job)
    records = {r["job_id"]: r for r in (json.loads(p.read_text())
                                        for p in (tmp_path / "taskfile.taskflow" / "jobs").glob("*.json"))}
    assert sorted(records) == sorted(jobs)
    assert {records[jobs[0]]["workers"], records[jobs[1]]["workers"]} == {1, 2}  # 3 by work: 3 tasks and 6
    taskflow("check", tf)
    return dict(zip(("big", "small"), (details[jobs[0]], details[jobs[1]]), strict=True))


def test_slurm_two_resource_classes_two_arrays(slurm, tmp_path):
    shown = submit_two_classes(slurm, tmp_path, {"cpus": 2, "mem": "1G", "time": "20m"},
                               {"mem": "512M", "time": "10m"})
    assert re.search(r"NumCPUs=2\b", shown["big"]) and re.search(r"MinMemoryNode=1G\b", shown["big"]), shown["big"]
    assert "TimeLimit=00:20:00" in shown["big"]
    assert re.search(r"NumCPUs=1\b", shown["small"]) and re.search(r"MinMemoryNode=512M\b", shown["small"])
    assert "TimeLimit=00:10:00" in shown["small"]


def test_sge_two_resource_classes_two_arrays(sge, tmp_path):
    # This SGE has no parallel environment, so its classes differ in memory and walltime only.
    shown = submit_two_classes(sge, tmp_path, {"mem": "3G", "time": "20m"}, {"mem": "2G", "time": "10m"})
    assert re.search(r"h_vmem=3G", shown["big"]) and re.search(r"h_rt=1200", shown["big"]), shown["big"]
    assert re.search(r"h_vmem=2G", shown["small"]) and re.search(r"h_rt=600", shown["small"]), shown["small"]


# A task that kills its worker (as the OOM killer would), beside tasks that finish.
CRASHING = """
import os

from taskflow import Task


def ok(i):
    return i


def crash():
    os.kill(os.getpid(), 9)


oks = [Task(ok, i) for i in range(3)]
crashed = Task(crash)
"""


def kills_its_workers(scheduler, tmp_path: Path, said: str) -> None:
    """Four array workers: three die running the task, the fourth records the failure, naming
    each dead array task's end as the scheduler tells it (`said`, a pattern after the job)."""
    tf = write_taskfile(tmp_path, CRASHING)
    job = taskflow("submit", tf, "-n", "4", "--scheduler", scheduler.name, "--time", "5m",
                   cwd=tmp_path).stdout.strip()
    assert job.isdigit()
    wait_gone(scheduler, job)
    failed = taskflow("status", tf, "--failed", check=None).stdout
    assert "WorkerDied: its worker died 3 times while running it: check memory and walltime" in failed, failed
    store = Store(str(tmp_path / "taskfile.taskflow"))
    [h] = store.failed_hashes()
    record = store.load_failure(h)
    assert record["attempts"] == 3 and record["worker"].startswith(f"{scheduler.name}:{job}.")
    told = [d.get("scheduler", "") for d in record["died"]]
    assert all(re.match(rf"{scheduler.name} job {job}\.\d: {said}", t) for t in told), told
    assert len(store.finished_hashes()) == 3


def test_slurm_a_task_that_kills_its_workers_is_failed_with_what_slurm_says(slurm, tmp_path):
    # This cluster enforces no memory limit (TaskPlugin task/none, no cgroup) and keeps no
    # accounting (scontrol answers): the state is FAILED with signal 9, where an enforcing one
    # says OUT_OF_MEMORY.
    kills_its_workers(slurm, tmp_path, r"FAILED \(ended with an error\), exit code 0:9")


def test_sge_a_task_that_kills_its_workers_is_failed_with_what_qacct_says(sge, tmp_path):
    kills_its_workers(sge, tmp_path, r"KILLED \(killed by a signal[^)]*\), exit_status 137.*maxvmem")
