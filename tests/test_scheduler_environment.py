"""schedulers/environment.py: what each scheduler's job environment says, read from mappings
shaped like the ones real Slurm 22.05 and SGE 8.1.9 jobs were seen to get, and what the
other parts (worker ids, array ranks, job records) take from it."""
from __future__ import annotations

import os

import pytest

from taskflow.stores import identity as lease
from taskflow.cli.running import _array_rank
from taskflow.schedulers.environment import (JobEnvironment, detect, parse_worker, pbs, sge, sge_memory, slurm,
                                             visible_devices)

# As `env` printed them in `sbatch --array=3-4 --cpus-per-task=2 --mem=100M` on this test cluster.
SLURM_ARRAY_TASK = {
    "SLURM_ARRAY_JOB_ID": "176", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_ID": "3",
    "SLURM_ARRAY_TASK_MAX": "4", "SLURM_ARRAY_TASK_MIN": "3", "SLURM_ARRAY_TASK_STEP": "1",
    "SLURM_CPUS_ON_NODE": "2", "SLURM_CPUS_PER_TASK": "2", "SLURM_JOBID": "177", "SLURM_JOB_ID": "177",
    "SLURM_JOB_CPUS_PER_NODE": "2", "SLURM_MEM_PER_NODE": "100", "SLURM_NNODES": "1",
}

# As `env` printed them in `qsub -t 2-6:2 -l h_rt=0:05:00,h_vmem=200M` (task 4).
SGE_ARRAY_TASK = {
    "JOB_ID": "2", "JOB_NAME": "probe", "NSLOTS": "1", "NHOSTS": "1", "QUEUE": "all.q",
    "SGE_TASK_FIRST": "2", "SGE_TASK_ID": "4", "SGE_TASK_LAST": "6", "SGE_TASK_STEPSIZE": "2",
}


def test_slurm_array_task():
    job = slurm(SLURM_ARRAY_TASK)
    assert job == detect(SLURM_ARRAY_TASK)
    assert (job.scheduler, job.job_id, job.array_job_id, job.array_task) == ("slurm", "177", "176", "3")
    assert (job.array_first, job.array_last, job.array_step, job.array_size, job.array_rank) == (3, 4, 1, 2, 0)
    assert job.cpus == 2 and job.memory == 100 * 1024 * 1024
    assert job.gpus is None and job.walltime is None and job.time_left() is None
    assert job.worker == "slurm:176.3"


def test_slurm_resources_and_times():
    env = {"SLURM_JOB_ID": "9", "SLURM_CPUS_ON_NODE": "8", "SLURM_MEM_PER_CPU": "512",
           "SLURM_GPUS_ON_NODE": "2", "CUDA_VISIBLE_DEVICES": "0,1",
           "SLURM_JOB_START_TIME": "1000", "SLURM_JOB_END_TIME": "4600"}
    job = detect(env)
    assert job.scheduler == "slurm" and job.array_task is None and job.worker is None
    assert job.cpus == 8, "without --cpus-per-task the cpus of the node's allocation count"
    assert job.memory == 8 * 512 * 1024 * 1024, "--mem-per-cpu counts once per allocated cpu"
    assert job.gpus == ("0", "1")
    assert (job.start_time, job.end_time, job.walltime) == (1000.0, 4600.0, 3600.0)
    assert job.time_left(now=4000) == 600
    assert detect({"SLURM_JOB_ID": "9", "SLURM_GPUS_ON_NODE": "0"}).gpus == ()
    # sbatch -n 4 -c 2: the batch step, where the worker runs, has all 8 cpus of the node.
    assert detect({"SLURM_JOB_ID": "9", "SLURM_CPUS_ON_NODE": "8", "SLURM_CPUS_PER_TASK": "2"}).cpus == 8
    assert detect({"SLURM_JOB_ID": "9", "SLURM_CPUS_PER_TASK": "2"}).cpus == 2


def test_slurm_index_list_with_gaps_has_no_rank():
    env = {"SLURM_ARRAY_JOB_ID": "5", "SLURM_ARRAY_TASK_ID": "9", "SLURM_ARRAY_TASK_MIN": "1",
           "SLURM_ARRAY_TASK_MAX": "9", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_JOB_ID": "8"}
    job = detect(env)  # --array=1,5,9: no step describes it
    assert job.array_size == 3 and job.array_rank is None and job.worker == "slurm:5.9"


def test_sge_array_task_with_a_step():
    job = sge(SGE_ARRAY_TASK)
    assert job == detect(SGE_ARRAY_TASK)
    assert (job.scheduler, job.job_id, job.array_job_id, job.array_task) == ("sge", "2", "2", "4")
    assert (job.array_first, job.array_last, job.array_step, job.array_size, job.array_rank) == (2, 6, 2, 3, 1)
    assert job.cpus == 1 and job.memory is None and job.walltime is None
    assert job.worker == "sge:2.4"


def test_sge_outside_an_array_job():
    env = {"JOB_ID": "12", "NSLOTS": "4", "SGE_TASK_ID": "undefined", "SGE_TASK_FIRST": "undefined",
           "SGE_TASK_LAST": "undefined", "SGE_TASK_STEPSIZE": "undefined"}
    job = detect(env)
    assert (job.scheduler, job.job_id, job.cpus) == ("sge", "12", 4)
    assert job.array_task is None and job.array_size is None and job.array_rank is None and job.worker is None


def test_sge_memory_from_the_job_spool_config(tmp_path):
    # The shepherd's config file, as a job given -l h_vmem=200M found it (abridged).
    (tmp_path / "config").write_text("h_vmem=200M\nh_vmem_is_consumable_job=0\ns_vmem=INFINITY\n"
                                     "pe=none\npe_slots=2\nhost_slots=2\njob_id=3\n")
    job = detect({**SGE_ARRAY_TASK, "NSLOTS": "2", "SGE_JOB_SPOOL_DIR": str(tmp_path)})
    assert job.memory == 2 * 200 * 1024 * 1024, "h_vmem counts per slot"
    assert detect({**SGE_ARRAY_TASK, "SGE_JOB_SPOOL_DIR": str(tmp_path / "gone")}).memory is None


def test_sge_memory_values():
    assert sge_memory("200M") == 200 * 1024 ** 2 and sge_memory("2m") == 2 * 1000 ** 2
    assert sge_memory("1.5G") == int(1.5 * 1024 ** 3) and sge_memory("1048576") == 1048576
    assert sge_memory("INFINITY") is None and sge_memory("") is None and sge_memory("0") is None


def test_pbs_pro_and_torque():
    pro = detect({"PBS_JOBID": "123[7].server.example.org", "PBS_ARRAY_INDEX": "7", "NCPUS": "4"})
    assert (pro.scheduler, pro.job_id, pro.array_job_id, pro.array_task) == (
        "pbs", "123[7].server.example.org", "123[].server.example.org", "7")
    assert pro.cpus == 4 and pro.array_size is None and pro.array_rank is None
    assert pro.worker == "pbs:123[7].server.example.org.7"
    assert parse_worker(pro.worker) == ("pbs", "123", "7")
    torque = pbs({"PBS_JOBID": "55[2].head", "PBS_ARRAYID": "2", "PBS_NP": "16", "PBS_NUM_PPN": "8",
                  "PBS_WALLTIME": "3600"})
    assert torque is not None and torque.cpus == 8 and torque.walltime == 3600.0
    assert torque.worker == "pbs:55[2].head.2"


def test_outside_a_scheduler():
    job = detect({"JOB_ID": "3", "HOME": "/root", "CUDA_VISIBLE_DEVICES": ""})
    assert job == JobEnvironment(), "JOB_ID alone is no Grid Engine"


def test_an_array_task_outranks_the_job_it_was_submitted_from():
    # A Slurm array task started from inside an SGE job inherits that job's variables.
    env = {**SGE_ARRAY_TASK, "SGE_TASK_ID": "undefined", **SLURM_ARRAY_TASK}
    assert detect(env).scheduler == "slurm"
    env = {"SLURM_JOB_ID": "40", **SGE_ARRAY_TASK}
    assert detect(env).worker == "sge:2.4"


def test_cuda_visible_devices():
    assert detect({"SLURM_JOB_ID": "1", "CUDA_VISIBLE_DEVICES": "NoDevFiles"}).gpus == ()
    assert detect({**SGE_ARRAY_TASK, "CUDA_VISIBLE_DEVICES": "2, 3"}).gpus == ("2", "3")


@pytest.mark.parametrize("value, expected", [
    (None, None), ("", ()), (" ", ()), (",", ()), ("NoDevFiles", ()), (" NoDevFiles ", ()),
    ("0", ("0",)), ("2, 3", ("2", "3")), ("1,,4,", ("1", "4")), ("0,NoDevFiles", ("0",)),
    ("GPU-8f3c2a1e-77d0-4c5b-9a1f-0e2d4b6c8a10,MIG-1", ("GPU-8f3c2a1e-77d0-4c5b-9a1f-0e2d4b6c8a10", "MIG-1")),
])
def test_visible_devices_is_the_one_reader_of_cuda_visible_devices(value, expected):
    """Every scheduler's allocation and the machine's GPUs (capacity.machine_gpus) read it here."""
    from taskflow.capacity import machine_gpus

    environ = {} if value is None else {"CUDA_VISIBLE_DEVICES": value}
    assert visible_devices(environ) == expected
    for job in (SLURM_ARRAY_TASK, SGE_ARRAY_TASK, {"PBS_JOBID": "55[2].head", "PBS_ARRAYID": "2"}):
        assert detect({**job, **environ}).gpus == expected
    if expected is not None:
        assert machine_gpus(environ, dev="/nonexistent") == expected


@pytest.mark.parametrize("env, expected", [
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_JOB_ID": "176", "SLURM_JOB_ID": "177"}, "slurm:176.3"),
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_JOB_ID": "177"}, "slurm:177.3"),
    ({"SGE_TASK_ID": "4", "JOB_ID": "2"}, "sge:2.4"),
    ({"PBS_ARRAYID": "2", "PBS_JOBID": "55[2].head"}, "pbs:55[2].head.2"),
    ({"PBS_ARRAY_INDEX": "7", "PBS_JOBID": "123[7].srv"}, "pbs:123[7].srv.7"),
])
def test_worker_id_names_the_array_task(monkeypatch, env, expected):
    for name in list(os.environ):
        if name.startswith(("SLURM_", "SGE_", "PBS_")) or name in ("JOB_ID", "NSLOTS"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert lease.worker_id() == expected
    assert parse_worker(expected)[0] == expected.split(":")[0]


def test_worker_id_outside_an_array(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("SLURM_", "SGE_", "PBS_")) or name in ("JOB_ID", "NSLOTS"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SGE_TASK_ID", "undefined")
    assert lease.worker_id() == f"{lease.HOST}:{os.getpid()}"


def test_array_rank_of_execute_counts_steps(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("SLURM_", "SGE_", "PBS_")) or name in ("JOB_ID", "NSLOTS"):
            monkeypatch.delenv(name)
    assert _array_rank() == (None, None)
    for name, value in SGE_ARRAY_TASK.items():
        monkeypatch.setenv(name, value)
    # qsub -t 2-6:2 runs tasks 2, 4 and 6: task 4 is the second of three.
    assert _array_rank() == (1, 3)


def test_every_registered_scheduler_has_an_environment_reader():
    from taskflow.schedulers import SCHEDULERS
    from taskflow.schedulers.environment import READERS

    assert sorted(read.__name__ for read in READERS) == sorted(SCHEDULERS)
