"""The README's one-minute example runs as written, from the folder that ships it."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
EXAMPLE = ROOT / "examples" / "wordcount"


def section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else None]


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def shell_lines(text: str) -> list[str]:
    """The indented command lines of a section (four spaces, not inside a fenced block)."""
    outside = re.sub(r"```.*?```", "", text, flags=re.S)
    return [line[4:] for line in outside.splitlines() if line.startswith("    ") and not line.startswith("     ")]


def test_the_readme_taskfile_is_the_shipped_one():
    taskfile, _notebook = python_blocks(section("A one-minute example"))
    assert taskfile == (EXAMPLE / "taskfile.py").read_text()
    for i in range(100):
        assert (EXAMPLE / "data" / f"{i}.txt").stat().st_size > 0


def test_the_one_minute_example_runs_as_written(tmp_path):
    text = section("A one-minute example")
    commands = shell_lines(text)
    assert commands[:3] == ["cd examples/wordcount", "taskflow execute taskfile.py",
                            "taskflow execute taskfile.py --jobs 4"], commands
    repo = tmp_path / "clone"
    shutil.copytree(EXAMPLE, repo / "examples" / "wordcount")
    here = repo / "examples" / "wordcount"
    # Each `taskflow ...` line in order, from the folder the first line enters.
    first = run_cli(*commands[1].split()[1:], cwd=here, check=0)
    assert "101 tasks, 0 already finished" in first.stderr
    second = run_cli(*commands[2].split()[1:], cwd=here, check=0)
    assert "taskflow: all 101 tasks already finished" in second.stderr
    assert "`taskflow: all 101 tasks already finished`" in text

    _taskfile, notebook = python_blocks(text)
    expected = dict(re.findall(r"^(taskflow\.value\(.*?\))\s+# (.*)$", notebook, re.M))
    assert len(expected) == 2, notebook
    script = notebook + "".join(f"print(repr({call}))\n" for call in expected)
    out = subprocess.run([sys.executable, "-c", script], cwd=here, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == list(expected.values())
