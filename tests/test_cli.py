"""The command line: help, version, exit codes, stdout for data and stderr for diagnostics."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import run_cli, write_taskfile
from taskflow import __version__

COMMANDS = ["execute", "status", "check", "cleanup", "submit", "wait", "invalidate", "report", "show", "graph", "shell"]


def test_version_and_help():
    assert run_cli("--version", check=0).stdout.strip().endswith(__version__)
    top = run_cli("--help", check=0).stdout
    for command in COMMANDS:
        assert command in top


def test_every_command_is_found_in_the_module_named_for_it_and_only_that_module_is_read():
    code = """if True:
        import importlib, json, pkgutil, sys
        import click
        import taskflow.cli as cli
        from taskflow.cli.base import COMMAND_MODULES, main
        ctx = click.Context(main)
        main.get_command(ctx, "execute")
        read = sorted(m for m in sys.modules if m.startswith("taskflow.cli."))
        for info in pkgutil.iter_modules(cli.__path__):
            importlib.import_module("taskflow.cli." + info.name)
        where = {name: c.callback.__module__.rsplit(".", 1)[-1] for name, c in main.commands.items()}
        print(json.dumps([read, where, COMMAND_MODULES, main.list_commands(ctx)]))
    """
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    read, where, named, listed = json.loads(proc.stdout)
    assert read == ["taskflow.cli.base", "taskflow.cli.running"], "execute reads only its own module"
    assert where == named, "every registered command is named with its module, and nothing else is"
    assert listed == sorted(named)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command):
    out = run_cli(command, "--help", check=0).stdout
    assert "Example:" in out and f"taskflow {command}" in out
    assert "Exit codes" in out


def test_execute_help_documents_exit_codes():
    out = run_cli("execute", "--help", check=0).stdout
    for code in ("0", "1", "2", "3", "130"):
        assert f"  {code} " in out


def test_console_script_is_installed():
    proc = subprocess.run(["taskflow", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and __version__ in proc.stdout


def test_bad_option_is_a_usage_error():
    proc = run_cli("execute", "x.py", "--max-time", "soon", check=2)
    assert "duration" in proc.stderr
    proc = run_cli("execute", "x.py", "--jobs", "0", check=2)
    assert "--jobs" in proc.stderr


def test_status_json_is_the_only_stdout(tmp_path):
    tf = write_taskfile(tmp_path, """
from taskflow import Task

def one():
    return 1

t = Task(one)
""")
    proc = run_cli("execute", tf, check=0)
    assert proc.stdout == ""  # progress and logs go to stderr
    assert "finished taskfile.one" in proc.stderr
    proc = run_cli("execute", tf, "-q", check=0)
    assert proc.stderr == ""
    data = json.loads(run_cli("status", tf, "--json", check=0).stdout)
    assert data == {"tasks": {"taskfile.one": {"waiting": 0, "ready": 0, "running": 0, "finished": 1, "failed": 0}},
                    "total": {"waiting": 0, "ready": 0, "running": 0, "finished": 1, "failed": 0},
                    "damaged": 0, "may_lag": False, "unlisted": 0}


def test_store_that_is_not_a_store_is_refused(tmp_path):
    tf = write_taskfile(tmp_path, "x = 1\n")
    other = tmp_path / "mydata"
    other.mkdir()
    (other / "important.csv").write_text("1,2,3")
    proc = run_cli("execute", tf, "--store", other, check=2)
    assert "not a taskflow store" in proc.stderr
    assert (other / "important.csv").exists()


def test_python_dash_m_matches_console_script(tmp_path):
    out1 = subprocess.run([sys.executable, "-m", "taskflow", "--help"], capture_output=True, text=True).stdout
    out2 = subprocess.run(["taskflow", "--help"], capture_output=True, text=True).stdout
    assert out1 == out2


def test_jobs_prints_a_load_error_once(tmp_path):
    bad = write_taskfile(tmp_path, "from taskflow import Task\nx = (\n", name="broken.py")
    proc = run_cli("execute", bad, "--jobs", "3", check=2)
    assert proc.stderr.count("syntax error") == 1, proc.stderr


def test_store_that_is_a_file_is_refused(tmp_path):
    tf = write_taskfile(tmp_path, "x = 1\n")
    proc = run_cli("execute", tf, "--store", tf, check=2)
    assert proc.stderr.strip() == f"taskflow: error: {tf} is a file, not a store folder"


def test_bad_duration_names_the_option_once(tmp_path):
    proc = run_cli("execute", "x.py", "--max-time", "3x", check=2)
    assert proc.stderr.count("--max-time") == 1 and "cannot read '3x' as a duration" in proc.stderr


def test_taskfile_named_like_an_imported_module_is_refused(tmp_path):
    tf = write_taskfile(tmp_path, "x = 1\n", name="json.py")
    proc = run_cli("execute", tf, check=2)
    assert f"{tf}: the taskfile would be module 'json'" in proc.stderr and "rename the taskfile" in proc.stderr
    assert "Traceback" not in proc.stderr


LEASE_TASKFILE = """
from taskflow import TaskGenerator

@TaskGenerator
def one(i):
    return i

xs = [one(i) for i in range(3)]
"""


@pytest.mark.parametrize("args, env, named", [
    (("--lease", "0"), {}, "--lease"),
    (("--lease", "0.5"), {}, "--lease"),
    (("--lease", "0.5", "--jobs", "2"), {}, "--lease"),
    ((), {"TASKFLOW_LEASE": "0"}, "TASKFLOW_LEASE"),
])
def test_a_lease_under_a_second_is_refused(tmp_path, args, env, named):
    tf = write_taskfile(tmp_path, LEASE_TASKFILE)
    proc = run_cli("execute", tf, *args, env=env, check=2)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"taskflow: error: {named}: ") and "at least 1s" in lines[0]
    assert not (tmp_path / "taskfile.taskflow" / "results").exists(), "no task may run"


def test_a_lease_of_one_second_is_legal(tmp_path):
    tf = write_taskfile(tmp_path, LEASE_TASKFILE)
    run_cli("execute", tf, "--lease", "1", check=0)
    run_cli("check", tf, check=0)


def test_submit_refuses_a_lease_under_a_second_in_the_environment(tmp_path):
    tf = write_taskfile(tmp_path, LEASE_TASKFILE)
    proc = run_cli("submit", tf, "-n", "2", "--scheduler", "slurm", "--dry-run", env={"TASKFLOW_LEASE": "0.2"},
                   check=2)
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "TASKFLOW_LEASE" in proc.stderr


def test_the_library_refuses_a_lease_under_a_second(tmp_path):
    from taskflow.errors import UsageError
    from taskflow.stores.folder import FolderStore as Store
    from taskflow.worker import Options, Worker

    with pytest.raises(UsageError, match="at least 1s"):
        Worker(Store(str(tmp_path / "s")), Options(lease=0.0))


@pytest.mark.parametrize("command", [[sys.executable, "-m", "taskflow"], ["taskflow"]])
def test_the_jobs_pool_ends_as_an_ordinary_exit_would(tmp_path, command):
    """The pool of --jobs skips the interpreter's teardown; what an exit does besides still happens:
    exit handlers run (there, and only there: its forked workers inherit them), every line is out, and
    the exit code is the run's."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(
        "import atexit, os\n"
        "atexit.register(lambda: open(os.environ['EXITED'], 'a').write(f'{os.getpid()}\\n'))\n")
    tf = write_taskfile(tmp_path, """
from taskflow import TaskGenerator

@TaskGenerator
def f(x):
    if x == 3:
        raise ValueError("three is refused")
    return x

xs = [f(i) for i in range(8)]
""")
    exited = tmp_path / "exited.txt"
    env = {**os.environ, "EXITED": str(exited),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(hooks), os.environ.get("PYTHONPATH")]))}
    env.pop("TASKFLOW_STORE", None)
    proc = subprocess.Popen([*command, "execute", str(tf), "--jobs", "2", "--keep-going"], env=env,
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "ValueError: three is refused" in err, err
    assert "7/8 finished" in err.splitlines()[-1], err  # the pool's last line, written as it ends
    assert exited.read_text().split() == [str(proc.pid)]
