"""Workers take only tasks that fit: what they were given, the share of the machine their --jobs
siblings leave free (measured with timestamps), and the time they have left."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli, write_taskfile
from taskflow.errors import ExitCode, UsageError
from taskflow.resources import Resources
from taskflow.worker import share
from taskflow.worker.share import MachineShare, create

# Each task notes when it ran and which GPUs it saw, in an O_APPEND log.
TASKFILE = """
import os
import time
from taskflow import TaskGenerator

LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "times.log")


def note(kind, i, seconds):
    start = time.time()
    time.sleep(seconds)
    line = f"{{kind}} {{i}} {{start}} {{time.time()}} {{os.environ.get('CUDA_VISIBLE_DEVICES', '-')}}\\n"
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return i

{body}
"""


def taskfile(folder: Path, body: str) -> Path:
    return write_taskfile(folder, TASKFILE.format(body=body))


def intervals(folder: Path) -> list[tuple[str, float, float, str]]:
    rows = []
    for line in (folder / "times.log").read_text().splitlines():
        kind, i, start, end, gpus = line.split()
        rows.append((f"{kind}{i}", float(start), float(end), gpus))
    return rows


def most_at_once(rows, names=None) -> int:
    """The most tasks (of `names`, or all) running at one instant."""
    chosen = [r for r in rows if names is None or r[0] in names]
    return max(sum(1 for _, s, e, _ in chosen if s <= start < e) for _, start, _, _ in chosen)


# -- the machine share ---------------------------------------------------------------------------

def test_the_share_hands_out_cpus_memory_and_distinct_gpus_and_takes_them_back(tmp_path):
    create(str(tmp_path), cpus=4, memory=1024, gpus=("0", "1"))
    a, b = MachineShare(str(tmp_path)), MachineShare(str(tmp_path))
    r1 = a.reserve(Resources(cpus=3))
    assert r1 is not None and b.reserve(Resources(cpus=2)) is None
    r2 = b.reserve(Resources(cpus=1, memory=1024))
    assert r2 is not None and a.reserve(Resources(memory=1)) is None
    g1, g2 = a.reserve(Resources(gpus=1)), b.reserve(Resources(gpus=1))
    assert g1 is not None and g2 is not None and {g1.gpus, g2.gpus} == {("0",), ("1",)}
    assert a.reserve(Resources(gpus=1)) is None
    a.release(r1)
    assert b.reserve(Resources(cpus=3)) is not None
    a.release(g1)
    again = a.reserve(Resources(gpus=1))
    assert again is not None and again.gpus == g1.gpus  # a process gets its own devices back first
    a.close()
    b.close()


def test_what_a_killed_holder_reserved_is_free_again(tmp_path):
    create(str(tmp_path), cpus=2, memory=None, gpus=())
    code = ("import os, sys\n"
            "from taskflow.resources import Resources\n"
            "from taskflow.worker.share import MachineShare\n"
            "share = MachineShare(sys.argv[1])\n"
            "assert share.reserve(Resources(cpus=2)) is not None\n"
            "print('reserved', flush=True)\n"
            "os.kill(os.getpid(), 9)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == -9 and "reserved" in proc.stdout, proc.stderr
    share = MachineShare(str(tmp_path))
    assert share.reserve(Resources(cpus=2)) is not None  # the dead holder's 2 cpus came back
    ledger = json.loads((tmp_path / "ledger.json").read_text())
    assert list(ledger["held"]) == [share.holder]
    share.close()


# -- --jobs packing ------------------------------------------------------------------------------

def test_the_pools_share_folder_is_private_and_removed_with_what_killed_holders_left(tmp_path, monkeypatch):
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    folders = [share.new_folder() for _ in range(3)]
    assert len(set(folders)) == 3 and all(os.path.dirname(f) == str(temp) for f in folders)
    assert all(os.stat(f).st_mode & 0o777 == 0o700 for f in folders)
    create(folders[0], 2, None, ())
    MachineShare(folders[0])  # a holder that never closes, as one killed with kill -9 leaves its file
    share.remove(folders[0])
    assert not os.path.exists(folders[0])
    share.remove(folders[0])  # gone already: nothing to say


def test_without_a_writable_temporary_folder_jobs_says_what_to_set(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "missing"))
    folder = share.new_folder()  # the next candidate, /tmp, serves
    assert os.path.dirname(folder) in ("/tmp", "/var/tmp")
    share.remove(folder)

    def refused(path, mode=0o777):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(os, "mkdir", refused)
    with pytest.raises(UsageError, match=r"--jobs needs a temporary folder .*/tmp: Permission denied.* set TMPDIR"):
        share.new_folder()


def test_jobs_leave_no_share_folder_behind(tmp_path):
    temp = tmp_path / "temp"
    temp.mkdir()
    tf = taskfile(tmp_path, """
@TaskGenerator
def plain(i):
    return sorted(os.listdir(os.environ["TMPDIR"])), note("plain", i, 0.05)

tasks = [plain(i) for i in range(4)]
""")
    run_cli("execute", tf, "--jobs", "2", "-q", env={"TMPDIR": str(temp)}, check=ExitCode.OK)
    import taskflow

    seen = {name for names, _ in taskflow.value(taskflow.init(str(tf)).tasks) for name in names}
    assert len(seen) == 1 and seen.pop().startswith("taskflow-share-"), "the share was made in TMPDIR"
    assert list(temp.iterdir()) == []


def test_jobs_pack_four_one_cpu_tasks_side_by_side_and_a_four_cpu_task_alone(tmp_path):
    tf = taskfile(tmp_path, """
@TaskGenerator(resources={"cpus": 1})
def small(i):
    return note("small", i, 1.5)

@TaskGenerator(resources={"cpus": 4})
def big(i):
    return note("big", i, 1.0)

smalls = [small(i) for i in range(4)]
bigs = [big(i) for i in range(2)]
""")
    run_cli("execute", tf, "--jobs", "4", "--cpus", "4", "-q", check=ExitCode.OK, timeout=60)
    rows = intervals(tmp_path)
    assert sorted(r[0] for r in rows) == ["big0", "big1", "small0", "small1", "small2", "small3"]
    assert most_at_once(rows, {"small0", "small1", "small2", "small3"}) == 4, rows  # all four at once
    for big in ("big0", "big1"):
        [(_, start, end, _)] = [r for r in rows if r[0] == big]
        overlapping = [r[0] for r in rows if r[0] != big and r[1] < end and start < r[2]]
        assert overlapping == [], f"{big} ran beside {overlapping}: {rows}"


def test_tasks_that_declare_nothing_are_not_limited_by_the_share(tmp_path):
    tf = taskfile(tmp_path, """
@TaskGenerator
def plain(i):
    return note("plain", i, 1.5)

tasks = [plain(i) for i in range(3)]
""")
    run_cli("execute", tf, "--jobs", "3", "--cpus", "1", "-q", check=ExitCode.OK, timeout=60)
    assert most_at_once(intervals(tmp_path)) == 3


def test_jobs_hand_each_gpu_task_its_own_device(tmp_path):
    tf = taskfile(tmp_path, """
@TaskGenerator(resources={"gpus": 1})
def gpu(i):
    return note("gpu", i, 1.2)

tasks = [gpu(i) for i in range(4)]
""")
    env = {"CUDA_VISIBLE_DEVICES": "3,5,7"}
    run_cli("execute", tf, "--jobs", "3", "--gpus", "2", "-q", check=ExitCode.OK, timeout=60, env=env)
    rows = intervals(tmp_path)
    assert len(rows) == 4 and {r[3] for r in rows} == {"3", "5"}, rows  # one device each, of the first two
    assert most_at_once(rows) == 2, rows  # two devices: two at once, never three
    for a in rows:
        for b in rows:
            if a is not b and a[1] < b[2] and b[1] < a[2]:
                assert a[3] != b[3], f"{a[0]} and {b[0]} shared device {a[3]}"


def test_one_worker_gives_a_gpu_task_the_first_of_its_devices(tmp_path):
    tf = taskfile(tmp_path, """
@TaskGenerator(resources={"gpus": 1})
def gpu(i):
    return note("gpu", i, 0.01)

@TaskGenerator
def plain(i):
    return note("plain", i, 0.01)

tasks = [gpu(0), plain(0)]
""")
    run_cli("execute", tf, "--gpus", "2", "-q", check=ExitCode.OK, timeout=60, env={"CUDA_VISIBLE_DEVICES": "4,6"})
    seen = {r[0]: r[3] for r in intervals(tmp_path)}
    assert seen == {"gpu0": "4", "plain0": "4,6"}


# -- tasks no worker can take ------------------------------------------------------------------

def test_a_task_needing_more_memory_than_the_worker_stays_ready_and_status_says_so(tmp_path):
    tf = taskfile(tmp_path, """
@TaskGenerator(resources={"mem": "64G"})
def huge(i):
    return note("huge", i, 0.01)

@TaskGenerator
def slow(i):
    return note("slow", i, 2.5)

hs = [huge(i) for i in range(3)]
s = slow(0)
""")
    env = dict(os.environ)
    env.pop("TASKFLOW_STORE", None)
    worker = subprocess.Popen([sys.executable, "-m", "taskflow", "execute", str(tf), "--mem", "1G", "-q"],
                              env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            shown = run_cli("status", tf, check=0).stdout
            if "workers: 1 running" in shown or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert "workers: 1 running: 1 with cpus=" in shown and "mem=1G gpus=0" in shown, shown
        assert "3 ready, need mem=64G: no running worker has it" in shown, shown
        _, err = worker.communicate(timeout=30)
    finally:
        worker.kill()
        worker.wait()
    assert worker.returncode == ExitCode.REMAINING, err
    assert "3 ready task(s) need more than this worker has" in err and "(first: taskfile.huge, needs mem=64G)" in err, err
    assert [r[0] for r in intervals(tmp_path)] == ["slow0"]
    after = run_cli("status", tf, check=0).stdout
    assert "workers:" not in after  # it said it exited
    assert json.loads(run_cli("status", tf, "--json", check=0).stdout)["total"]["ready"] == 3


# -- walltime ------------------------------------------------------------------------------------

def test_a_worker_skips_tasks_that_would_not_finish_in_its_max_time_and_report_counts_them(tmp_path):
    tf = taskfile(tmp_path, """
@TaskGenerator(resources={"time": "30s"})
def long(i):
    return note("long", i, 30)

@TaskGenerator
def medium(i):
    return note("medium", i, 1.0)

ls = [long(0)]
ms = [medium(i) for i in range(6)]
""")
    started = time.monotonic()
    proc = run_cli("execute", tf, "--max-time", "2.8", "-v", check=ExitCode.REMAINING, timeout=60)
    took = time.monotonic() - started
    ran = [r[0] for r in intervals(tmp_path)]
    # The first medium runs without a known length; from then on each is known to take 1s: a
    # second fits in the 2.8s, a third not (nor the declared 30s task, ever).
    assert ran == ["medium0", "medium1"], proc.stderr
    assert took < 10
    assert "not taking taskfile.long" in proc.stderr and "expected 30.0s (declared time)" in proc.stderr
    assert "p90 of finished taskfile.medium tasks" in proc.stderr
    assert "taking no new task: 5 ready task(s) need more time than this worker has left" in proc.stderr
    report = run_cli("report", tf, check=0).stdout
    assert "Walltime: 5 time(s) a worker did not start a task that would not have finished" in report, report
    assert json.loads(run_cli("report", tf, "--json", check=0).stdout)["walltime_skips"] == 5


def test_inside_a_job_the_jobs_end_not_max_time_decides_what_fits(tmp_path):
    # The job scripts pass --max-time a margin before the job's end, and the whole time left in
    # TASKFLOW_WALLTIME_LEFT: a task declared to take 1s is started with 1.5s of --max-time left
    # as long as the job has time for it, and not once the job has none.
    tf = taskfile(tmp_path, """
@TaskGenerator(resources={"time": "3s"})
def task(i):
    return note("task", i, 0.1)

tasks = [task(0)]
""")
    run_cli("execute", tf, "--max-time", "1.5", "-q", env={"TASKFLOW_WALLTIME_LEFT": "60"}, check=ExitCode.OK)
    (tmp_path / "taskfile.taskflow").rename(tmp_path / "first.taskflow")
    proc = run_cli("execute", tf, "--max-time", "60", "-v", env={"TASKFLOW_WALLTIME_LEFT": "2"},
                   check=ExitCode.REMAINING)
    assert "expected 3.0s (declared time)" in proc.stderr


def test_time_left_readers():
    from taskflow.schedulers.environment import JobEnvironment, slurm_duration, time_left
    from taskflow.worker.walltime import deadline, grace, percentile

    assert [slurm_duration(t) for t in ("4:58", "1-02:00:00", "02:03:04", "5", "UNLIMITED")] == [
        298.0, 93600.0, 7384.0, 300.0, None]
    assert time_left(JobEnvironment(scheduler="pbs", walltime=3600.0)) == 3600.0
    assert time_left(JobEnvironment(scheduler="slurm", start_time=100.0, end_time=700.0), now=400.0) == 300.0
    assert time_left(JobEnvironment()) is None
    assert deadline(10.0, 5.0, None) == 15.0 and deadline(10.0, 5.0, 100.0) == 110.0
    assert deadline(10.0, None, None) is None
    assert grace(1200.0) == 60.0 and grace(10.0) == 0.5
    assert percentile([1.0] * 9 + [10.0], 90) == 1.0 and percentile([1.0] * 8 + [10.0] * 2, 90) == 10.0


def test_status_counts_running_workers_per_resource_class(tmp_path):
    tf = taskfile(tmp_path, """
@TaskGenerator
def slow(i):
    return note("slow", i, 2.5)

tasks = [slow(i) for i in range(3)]
""")
    env = dict(os.environ)
    env.pop("TASKFLOW_STORE", None)
    workers = [subprocess.Popen([sys.executable, "-m", "taskflow", "execute", str(tf), "--cpus", "1", "--mem", mem,
                                 "-q"], env=env) for mem in ("1G", "2G", "2G")]
    try:
        deadline = time.monotonic() + 20
        shown = ""
        while "workers: 3 running" not in shown and time.monotonic() < deadline:
            time.sleep(0.2)
            shown = run_cli("status", tf, check=0).stdout
        assert "workers: 3 running: 2 with cpus=1 mem=2G gpus=0, 1 with cpus=1 mem=1G gpus=0" in shown, shown
        assert "no running worker has it" not in shown
    finally:
        for w in workers:
            w.wait(timeout=30)


def test_runtimes_of_tasks_finished_earlier_come_from_the_store(tmp_path):
    tf = taskfile(tmp_path, """
@TaskGenerator
def medium(i):
    return note("medium", i, 1.5)

ms = [medium(i) for i in range(4)]
""")
    run_cli("execute", tf, "--max-tasks", "2", "-q", check=ExitCode.REMAINING)
    # Known from those two to take 1.5s: none fits in 1.2s, so this worker runs nothing.
    proc = run_cli("execute", tf, "--max-time", "1.2", "-v", check=ExitCode.REMAINING)
    assert len(intervals(tmp_path)) == 2, proc.stderr
    assert "2 ready task(s) need more time than this worker has left" in proc.stderr
    assert "p90 of finished taskfile.medium tasks" in proc.stderr
