"""dask/jobqueue.py: the dask-jobqueue cluster options `submit --dask` asks for, from what each scheduler
module declares (`dask_cluster`, `dask_skip`, `dask_directives`, `directive_prefix`); no job is
submitted here (tests/test_dask_batch.py submits to the real Slurm and SGE)."""
from __future__ import annotations

import logging
import signal

import pytest

from taskflow.dask.jobqueue import cluster_options
from taskflow.errors import UsageError
from taskflow.schedulers.registry import SCHEDULERS
from taskflow.schedulers.slurm import Slurm
from taskflow.submit import SubmitOptions

SIZED = SubmitOptions(workers=3, walltime=600.0, memory=2048, queue="q", cpus=4, extra=("--x", "a b"))


def options(name: str, submit: SubmitOptions) -> dict:
    return cluster_options(SCHEDULERS[name], submit, "/logs", "job name", python="/py", cwd="/cwd")


def test_the_options_of_each_scheduler():
    assert options("slurm", SIZED) == {
        "cores": 4, "processes": 4, "memory": "2048MiB", "walltime": "00:10:00", "job_name": "job_name",
        "log_directory": "/logs", "python": "/py",
        "job_extra_directives": ["--time=00:10:00", "--cpus-per-task=4", "--mem=2G", "--partition=q", "--x 'a b'"],
        "job_directives_skip": ["--mem", "#SBATCH -t ", "--cpus-per-task", "#SBATCH -p "],
        "job_script_prologue": ["cd /cwd"], "worker_extra_args": [],
        "scheduler_options": {"dashboard": False, "dashboard_address": "127.0.0.1:0"},
        "silence_logs": logging.ERROR}
    sge = options("sge", SIZED)
    assert sge["job_extra_directives"] == ["-l h_rt=00:10:00", "-pe smp 4", "-l h_vmem=512M", "-q q", "-V",
                                           "--x 'a b'"]
    assert sge["job_directives_skip"] == ["h_rt=", "#$ -q "]
    pbs = options("pbs", SIZED)
    assert pbs["job_extra_directives"] == ["-l walltime=00:10:00", "-l ncpus=4", "-l mem=2gb", "-q q", "-V",
                                           "--x 'a b'"]
    assert pbs["job_directives_skip"] == ["walltime=", "#PBS -q ", "#PBS -l select", "#PBS -l nodes"]
    assert options("pbs", SIZED)["job_name"] == "job_name"


def test_without_resources_only_the_environment_is_asked_for():
    plain = SubmitOptions(workers=2)
    assert options("slurm", plain)["job_extra_directives"] == []
    assert options("sge", plain)["job_extra_directives"] == options("pbs", plain)["job_extra_directives"] == ["-V"]
    got = options("slurm", plain)
    assert (got["cores"], got["memory"], got["walltime"], got["worker_extra_args"]) == (
        1, "1GiB", None, ["--memory-limit", "0"])


def test_a_scheduler_without_a_dask_cluster_is_refused_naming_those_with_one():
    with pytest.raises(UsageError, match=r"^--dask runs on pbs, sge, slurm, not condor$"):
        options("condor", SIZED)


def test_a_scheduler_module_declares_its_own_dask_cluster():
    """A new scheduler needs no change here: its class attributes are all jobqueue.py reads."""
    class Other(Slurm):
        name = "other"
        directive_prefix = "#OTHER"
        walltime_directive = "#OTHER --walltime {}"
        dask_cluster = "OtherCluster"
        dask_skip = ("--walltime",)
        dask_directives = ("--export",)

    got = cluster_options(Other(), SubmitOptions(workers=1, walltime=60.0), "/logs", "n", python="/py", cwd="/")
    assert got["job_extra_directives"] == ["--walltime 00:01:00", "--export"]
    assert got["job_directives_skip"] == ["--walltime"]


def test_the_cluster_classes_are_dask_jobqueues():
    interrupt = signal.getsignal(signal.SIGINT)
    try:
        dask_jobqueue = pytest.importorskip("dask_jobqueue")
    finally:
        # Its import makes Ctrl-C a SystemExit in this process, as jobqueue.batch_cluster knows:
        # the tests that follow send SIGINT and expect KeyboardInterrupt.
        signal.signal(signal.SIGINT, interrupt)
    named = {s.name: s.dask_cluster for s in SCHEDULERS.values() if s.dask_cluster}
    assert named == {"slurm": "SLURMCluster", "sge": "SGECluster", "pbs": "PBSCluster"}
    assert all(isinstance(getattr(dask_jobqueue, cls), type) for cls in named.values())
