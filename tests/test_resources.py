"""Declaring resources: on a TaskGenerator, on Task, per taskfile and per project; never in the hash."""
from __future__ import annotations

import pytest

import taskflow
from conftest import run_cli, write_taskfile
from taskflow import Task, TaskGenerator
from taskflow.errors import UsageError
from taskflow.resources import NONE, Resources, effective, parse, project_defaults


def f(x, k=None):
    return x


def test_generator_and_task_declare_resources():
    big = TaskGenerator(resources={"cpus": 4, "mem": "16G", "gpus": 1, "time": "2h"})(f)
    t = big(1)
    assert t.resources == Resources(cpus=4, memory=16 * 1024, gpus=1, time=7200.0)
    u = Task(f, 2, resources={"mem": "1.5G", "time": 90})
    assert u.resources == Resources(memory=1536, time=90.0)
    assert u.kwargs == {}  # taken by taskflow, not passed to f
    assert Task(f, 3).resources == NONE


def test_resources_never_change_the_hash():
    # The pinned vectors of tests/test_hashing.py: task_hash("mod.f", (1,), {}) and with k="v".
    f.__module__, f.__qualname__ = "mod", "f"
    try:
        assert Task(f, 1, resources={"cpus": 8, "mem": "64G"}).hash == "b872c3988f887bb32b74c10c932de725"
        gen = TaskGenerator(resources={"gpus": 2, "time": "1d"})(f)
        assert gen(1, k="v").hash == "1f653150a302529a6d22b2e3cea98374"
        assert Task(f, 1).hash == gen(1).hash
    finally:
        f.__module__, f.__qualname__ = __name__, "f"


def test_defaults_fill_in_what_later_tasks_leave_out():
    early = Task(f, 0)
    taskflow.defaults(resources={"mem": "4G", "cpus": 2})
    later = Task(f, 1, resources={"cpus": 8})
    assert early.resources == NONE
    assert later.resources == Resources(cpus=8, memory=4096)
    assert effective(later, Resources(time=60.0, memory=1)) == Resources(cpus=8, memory=4096, time=60.0)


@pytest.mark.parametrize("spec, key", [
    ({"cpu": 4}, "cpu"),
    ({"mem": "16 parsecs"}, "mem"),
    ({"cpus": -1}, "cpus"),
    ({"cpus": 0}, "cpus"),
    ({"cpus": 1.5}, "cpus"),
    ({"cpus": True}, "cpus"),
    ({"gpus": -1}, "gpus"),
    ({"mem": -5}, "mem"),
    ({"mem": 0}, "mem"),
    ({"time": "soon"}, "time"),
    ({"time": 0}, "time"),
])
def test_bad_values_name_the_task_and_the_key(spec, key):
    with pytest.raises(UsageError) as caught:
        TaskGenerator(resources=spec)(f)
    message = str(caught.value)
    assert "task test_resources.f" in message and key in message and "\n" not in message
    with pytest.raises(UsageError, match="task test_resources.f"):
        Task(f, 1, resources=spec)


def test_resources_must_be_a_mapping():
    with pytest.raises(UsageError, match="must be a dict"):
        parse(["cpus", 4], "task x")


def test_bad_resources_in_a_taskfile_exit_2_with_one_line(tmp_path):
    path = write_taskfile(tmp_path, """
        from taskflow import TaskGenerator

        @TaskGenerator(resources={"mem": "16 parsecs"})
        def big(x):
            return x

        big(1)
    """)
    for command in ("execute", "status"):
        proc = run_cli(command, path, check=2)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert "taskfile.py:4" in lines[0] and "task taskfile.big" in lines[0] and "mem" in lines[0]
        assert "Traceback" not in proc.stderr


def test_project_defaults_from_pyproject(tmp_path):
    path = write_taskfile(tmp_path, "")
    assert project_defaults(str(path)) == NONE
    (tmp_path / "pyproject.toml").write_text('[tool.taskflow.resources]\nmem = "2G"\ntime = "30m"\n')
    assert project_defaults(str(path)) == Resources(memory=2048, time=1800.0)
    (tmp_path / "pyproject.toml").write_text('[tool.taskflow.resources]\nmemory = "2G"\n')
    with pytest.raises(UsageError, match=r"pyproject.toml \[tool.taskflow.resources\]: unknown resource 'memory'"):
        project_defaults(str(path))


def test_describe_and_worker_args_read_back():
    r = Resources(cpus=4, memory=16 * 1024, gpus=1, time=7200.0)
    assert r.describe() == "cpus=4 mem=16G gpus=1 time=2h00m"
    assert parse(r.as_dict(), "x") == r
    assert r.worker_args() == ["--cpus", "4", "--mem", "16G", "--gpus", "1"]
    assert NONE.describe() == "no declared resources" and not NONE
