"""What a worker may run: execute's options, then the scheduler's allocation, then the machine."""
from __future__ import annotations

import os

import pytest

from conftest import run_cli, write_taskfile
from taskflow.capacity import capacity, machine_cpus, machine_gpus, machine_memory
from taskflow.errors import UsageError
from taskflow.resources import Resources
from taskflow.schedulers.environment import JobEnvironment

SLURM = {"SLURM_JOB_ID": "7", "SLURM_ARRAY_TASK_ID": "1", "SLURM_CPUS_ON_NODE": "4",
         "SLURM_MEM_PER_NODE": "16384", "CUDA_VISIBLE_DEVICES": "2,3"}


def test_outside_a_scheduler_the_machine_counts():
    got = capacity(environ={})
    assert got.cpus == len(os.sched_getaffinity(0)) == machine_cpus()
    with open("/proc/meminfo") as f:
        total_kib = int(f.readline().split()[1])
    assert got.memory == total_kib // 1024 == machine_memory()
    assert got.sources == {"cpus": "machine", "memory": "machine", "gpus": "machine"}


def test_the_scheduler_allocation_counts_inside_a_job():
    got = capacity(environ=SLURM)
    assert (got.cpus, got.memory, got.gpus) == (4, 16384, ("2", "3"))
    assert got.sources == {"cpus": "slurm", "memory": "slurm", "gpus": "slurm"}


def test_options_override_the_allocation():
    got = capacity(cpus=2, mem="8G", gpus=1, environ=SLURM)
    assert (got.cpus, got.memory, got.gpus) == (2, 8192, ("2",))
    assert got.sources == {"cpus": "--cpus", "memory": "--mem", "gpus": "--gpus"}
    with pytest.raises(UsageError, match="--gpus 3: only 2 GPU"):
        capacity(gpus=3, environ=SLURM)
    with pytest.raises(UsageError, match="mem"):
        capacity(mem="16 parsecs", environ={})
    assert capacity(gpus=2, environ={}, job=JobEnvironment()).gpus in (("0", "1"), machine_gpus({})[:2])


def test_fits():
    got = capacity(cpus=4, mem="16G", gpus=0, environ={})
    assert got.fits(Resources()) and got.fits(Resources(cpus=4, memory=16384))
    assert not got.fits(Resources(cpus=5)) and not got.fits(Resources(memory=16385))
    assert not got.fits(Resources(gpus=1))
    timed = capacity(environ={}, job=JobEnvironment(walltime=3600.0, cpus=1))
    assert timed.fits(Resources(time=3600.0)) and not timed.fits(Resources(time=3601.0))


def test_gpu_devices_of_the_machine(tmp_path):
    assert machine_gpus({"CUDA_VISIBLE_DEVICES": "1, 4"}) == ("1", "4")
    assert machine_gpus({"CUDA_VISIBLE_DEVICES": ""}) == ()
    assert machine_gpus({"CUDA_VISIBLE_DEVICES": "NoDevFiles"}, dev=str(tmp_path)) == ()
    assert machine_gpus({"CUDA_VISIBLE_DEVICES": "0,NoDevFiles"}) == ("0",)
    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm"):
        (tmp_path / name).touch()
    assert machine_gpus({}, dev=str(tmp_path)) == ("0", "1")
    (tmp_path / "nvidia10").touch()
    (tmp_path / "nvidia2").touch()
    assert machine_gpus({}, dev=str(tmp_path)) == ("0", "1", "2", "10")
    assert machine_gpus({}, dev=str(tmp_path / "absent")) == ()


def test_the_allocation_and_the_machine_read_cuda_visible_devices_alike():
    """Inside a job and outside one, the same value gives the same devices (environment.visible_devices)."""
    for value, devices in (("1, 4", ("1", "4")), ("", ()), ("NoDevFiles", ()), ("0,NoDevFiles", ("0",))):
        environ = {"CUDA_VISIBLE_DEVICES": value}
        inside, outside = capacity(environ={**SLURM, **environ}), capacity(environ=environ)
        assert inside.gpus == outside.gpus == devices
        assert (inside.sources["gpus"], outside.sources["gpus"]) == ("slurm", "machine")


def test_machine_memory_falls_back_to_sysconf(tmp_path):
    assert machine_memory(str(tmp_path / "missing")) == os.sysconf("SC_PAGE_SIZE") * os.sysconf(
        "SC_PHYS_PAGES") // 2**20


def test_execute_gpus_gives_its_tasks_that_many_devices(tmp_path):
    path = write_taskfile(tmp_path, """
        import os
        from taskflow import TaskGenerator

        @TaskGenerator
        def devices():
            return os.environ.get("CUDA_VISIBLE_DEVICES")

        result = devices()
    """)
    run_cli("execute", path, "--gpus", "1", "--cpus", "2", "--mem", "1G", "-q",
            env={"CUDA_VISIBLE_DEVICES": "3,5"}, check=0)
    code = f"import taskflow; ns = taskflow.init({str(path)!r}); print(taskflow.value(ns.result))"
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "3"


@pytest.mark.parametrize("option", [("--mem", "16 parsecs"), ("--cpus", "-1"), ("--gpus", "9")])
def test_execute_refuses_bad_capacity_with_one_line(tmp_path, option):
    path = write_taskfile(tmp_path, "from taskflow import Task\n")
    proc = run_cli("execute", path, *option, env={"CUDA_VISIBLE_DEVICES": "0"}, check=2)
    last = proc.stderr.strip().splitlines()[-1]  # click's usage lines come first for its own checks
    assert "Traceback" not in proc.stderr and option[0].lstrip("-") in last, proc.stderr
