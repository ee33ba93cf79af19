"""`taskflow submit --via drmaa`: the array of workers submitted through libdrmaa to the real SGE.

Needs the drmaa package (taskflow[drmaa]), a libdrmaa for Grid Engine (Debian's
gridengine-drmaa1.0) and a working SGE (see test_cluster_integration.py);
skips without them, unless TASKFLOW_REQUIRE_DRMAA=1 (CI) makes that a failure.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_taskfile
from taskflow.errors import SchedulerError
from taskflow.schedulers import SCHEDULERS
from taskflow.schedulers import drmaasubmit
from test_cluster_integration import check_every_task_once, make_taskfile, sge, taskflow, wait_gone  # noqa: F401

REQUIRE = os.environ.get("TASKFLOW_REQUIRE_DRMAA") == "1"
SGE = SCHEDULERS["sge"]


def drmaa_library() -> str:
    """The libdrmaa the tests use; skips (fails under TASKFLOW_REQUIRE_DRMAA=1) without one or the package."""
    reason = None
    try:
        import importlib.util
        if importlib.util.find_spec("drmaa") is None:
            reason = "the drmaa package is not installed (pip install 'taskflow[drmaa]')"
    except ImportError:
        reason = "the drmaa package is not installed"
    if reason is None:
        try:
            return drmaasubmit.find_library(SGE, os.environ)
        except SchedulerError as e:
            reason = str(e)
    if REQUIRE:
        pytest.fail(f"{reason}; TASKFLOW_REQUIRE_DRMAA=1 says this test must run, not skip")
    pytest.skip(reason)


@pytest.mark.scheduler
def test_an_array_of_three_through_drmaa_finishes_sixty_tasks(sge, tmp_path):  # noqa: F811
    drmaa_library()
    tf, log = make_taskfile(tmp_path)
    proc = taskflow("submit", tf, "-n", "3", "--scheduler", "sge", "--via", "drmaa", "--time", "10m", cwd=tmp_path)
    job = proc.stdout.strip()
    assert job.isdigit(), proc.stdout + proc.stderr
    waited = taskflow("wait", tf, "--timeout", "150", "--interval", "0.5", timeout=200)
    assert "all 60 tasks finished" in waited.stderr
    wait_gone(sge, job)
    workers = check_every_task_once(log, f"sge:{job}.", sys.executable)
    assert workers <= {f"sge:{job}.{t}" for t in (1, 2, 3)}
    store = tmp_path / "taskfile.taskflow"
    logs = store / "jobs" / "logs"
    # The script's directives reached SGE through the native specification: log names, walltime.
    assert sorted(p.name for p in logs.iterdir()) == [f"taskflow-{job}.{t}.log" for t in (1, 2, 3)]
    for t in (1, 2, 3):
        text = (logs / f"taskflow-{job}.{t}.log").read_text()
        assert f"taskflow: SGE job {job} task {t} on " in text, text
        assert re.search(r"--max-time 540s", text), text
        assert "GLIBC_TUNABLES" not in text
    [record] = [json.loads(p.read_text()) for p in (store / "jobs").glob("*.json")]
    assert record["job_id"] == job and record["workers"] == 3 and record["scheduler"] == "sge"
    assert record["command"][:2] == ["drmaa", "runBulkJobs(1-3)"] and "-l h_rt=00:10:00" in record["command"][3]
    status = taskflow("status", tf).stdout
    assert f"sge job {job}: 0 of 3 workers active" in status


def test_a_libdrmaa_that_needs_static_tls_gets_a_one_line_message(tmp_path):
    """With the tunable set too small (glibc's default), loading Debian's libdrmaa fails: say what to set."""
    library = drmaa_library()
    linked = subprocess.run(["ldd", library], capture_output=True, text=True).stdout
    if "jemalloc" not in linked:
        pytest.skip(f"{library} does not link libjemalloc: nothing to work around")
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n#$ -N x\ntrue\n")
    env = {**os.environ, "DRMAA_LIBRARY_PATH": library, "GLIBC_TUNABLES": f"{drmaasubmit.TUNABLE}=512"}
    env.pop("LD_PRELOAD", None)
    with pytest.raises(SchedulerError) as e:
        drmaasubmit.submit(SGE, str(script), script.read_text(), 1, environ=env)
    message = str(e.value)
    assert "\n" not in message
    assert "static TLS" in message
    assert f"set GLIBC_TUNABLES={drmaasubmit.TUNABLE}={drmaasubmit.STATIC_TLS}" in message
    assert re.search(r"or LD_PRELOAD=/\S*libjemalloc\.so\.2\)", message), message


def test_the_tunable_is_set_for_the_child_only_and_set_back_for_the_job():
    env, restore = drmaasubmit.loading_environment({"PATH": "/bin"}, "/lib/libdrmaa.so")
    assert env["GLIBC_TUNABLES"] == f"{drmaasubmit.TUNABLE}={drmaasubmit.STATIC_TLS}"
    assert env["DRMAA_LIBRARY_PATH"] == "/lib/libdrmaa.so" and restore == {"GLIBC_TUNABLES": None}
    env, restore = drmaasubmit.loading_environment({"GLIBC_TUNABLES": "glibc.malloc.check=3"}, "/l.so")
    assert env["GLIBC_TUNABLES"] == f"glibc.malloc.check=3:{drmaasubmit.TUNABLE}={drmaasubmit.STATIC_TLS}"
    assert restore == {"GLIBC_TUNABLES": "glibc.malloc.check=3"}
    # The user's own choice stands.
    env, restore = drmaasubmit.loading_environment({"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}, "/l.so")
    assert "GLIBC_TUNABLES" not in env and restore == {}


def test_no_library_and_no_package_are_one_line_errors(tmp_path):
    with pytest.raises(SchedulerError) as e:
        drmaasubmit.find_library(SGE, {"DRMAA_LIBRARY_PATH": str(tmp_path / "libdrmaa.so")})
    assert str(e.value) == f"DRMAA_LIBRARY_PATH={tmp_path / 'libdrmaa.so'}: no such file"
    with pytest.raises(SchedulerError) as e:
        drmaasubmit.find_library(SCHEDULERS["slurm"], {"PATH": "/nowhere"}) if not any(
            os.path.isfile(p) for p in SCHEDULERS["slurm"].drmaa_libraries) else pytest.skip("slurm-drmaa installed")
    assert "set DRMAA_LIBRARY_PATH to your site's libdrmaa.so" in str(e.value)
    # Without the drmaa package (an import of it that fails, first on the path), the message names pip's command.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "drmaa.py").write_text("raise ImportError(\"No module named 'drmaa'\")\n")
    library = tmp_path / "libdrmaa.so"
    library.write_text("")
    taskflow_root = str(Path(drmaasubmit.__file__).resolve().parents[2])
    with pytest.raises(SchedulerError) as e:
        drmaasubmit.submit(SGE, "/bin/true", "#!/bin/sh\n", 1, environ={
            **os.environ, "DRMAA_LIBRARY_PATH": str(library), "PYTHONPATH": f"{shadow}:{taskflow_root}"})
    assert str(e.value) == "--via drmaa needs the drmaa package: pip install 'taskflow[drmaa]'"


def test_the_dry_run_shows_the_directives_as_native_specification(tmp_path):
    tf = write_taskfile(tmp_path, "from taskflow import Task\nx = [Task(abs, i) for i in range(3)]\n")
    proc = taskflow("submit", tf, "-n", "3", "--scheduler", "sge", "--via", "drmaa", "--time", "1h", "--mem", "2G",
                    "--dry-run", "--", "-P", "proj", cwd=tmp_path)
    command = proc.stdout.strip().splitlines()[-1]
    assert command.startswith("drmaa 'runBulkJobs(1-3)' --native '-N taskflow-taskfile -S /bin/bash -cwd -V -j y -o ")
    assert "-l h_rt=01:00:00 -l h_vmem=2G -P proj'" in command
