"""shell: starts with the taskfile loaded and runs piped commands."""
from __future__ import annotations

import os
import subprocess
import sys

from conftest import run_cli, write_taskfile


def test_shell_runs_piped_commands(tmp_path):
    tf = write_taskfile(tmp_path, """
from taskflow import TaskGenerator

@TaskGenerator
def square(x):
    return x * x

squares = [square(i) for i in range(4)]
""")
    run_cli("execute", tf, check=0)
    commands = "print('sum', sum(value(squares)))\nshow(squares[2])\ninvalidate(squares[3])\n"
    proc = subprocess.run([sys.executable, "-m", "taskflow", "shell", str(tf)], input=commands,
                          capture_output=True, text=True, timeout=60, env={**os.environ})
    assert proc.returncode == 0, proc.stderr
    assert "sum 14" in proc.stdout
    assert "task       taskfile.square" in proc.stdout and "argument 1 2" in proc.stdout
    assert "removed 1 taskfile.square result(s)" in proc.stdout
    assert "taskflow shell for" in proc.stderr
    status = run_cli("status", tf, "--json", check=0).stdout
    assert '"ready": 1' in status
