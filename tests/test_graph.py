"""graph: the collapsed picture has every name with the right counts; SVG when Graphviz is there."""
from __future__ import annotations

import re
import shutil

import pytest

from conftest import run_cli, write_taskfile

GRAPH = """
from taskflow import TaskGenerator

@TaskGenerator
def load(i):
    if i == 3:
        raise RuntimeError("broken input")
    return i

@TaskGenerator
def total(xs):
    return sum(xs)

@TaskGenerator
def per_item(x):
    return x

items = [load(i) for i in range(5)]
good = total(items[:3])
everything = total(items)
each = [per_item(x) for x in items]
"""


def test_dot_contains_every_name_with_counts(tmp_path):
    tf = write_taskfile(tmp_path, GRAPH)
    run_cli("execute", tf, "--keep-going", check=1)
    out = tmp_path / "g.dot"
    run_cli("graph", tf, "-o", out, check=0)
    dot = out.read_text()
    assert re.search(r'"taskfile\.load" \[label="taskfile\.load\\nfinished 4, failed 1", fillcolor="#f08080"', dot)
    assert re.search(r'"taskfile\.total" \[label="taskfile\.total\\nwaiting 1, finished 1"', dot)
    assert re.search(r'"taskfile\.per_item" \[label="taskfile\.per_item\\nwaiting 1, finished 4"', dot)
    assert '"taskfile.load" -> "taskfile.total" [label="8"' in dot  # 3 + 5 dependencies
    assert '"taskfile.load" -> "taskfile.per_item" [label="5"' in dot

    full = tmp_path / "full.dot"
    run_cli("graph", tf, "-o", full, "--full", check=0)
    assert full.read_text().count("->") == 3 + 5 + 5


def test_svg_with_graphviz_or_a_clear_message(tmp_path):
    tf = write_taskfile(tmp_path, GRAPH)
    svg = tmp_path / "g.svg"
    if shutil.which("dot"):
        run_cli("graph", tf, "-o", svg, check=0)
        assert svg.read_text().lstrip().startswith(("<?xml", "<svg"))
    else:
        proc = run_cli("graph", tf, "-o", svg, check=2)
        assert "apt-get install graphviz" in proc.stderr
        assert (tmp_path / "g.dot").exists()


def test_full_refuses_huge_graphs(tmp_path):
    tf = write_taskfile(tmp_path, """
from taskflow import TaskGenerator

@TaskGenerator
def f(i):
    return i

xs = [f(i) for i in range(2500)]
""")
    proc = run_cli("graph", tf, "-o", tmp_path / "x.dot", "--full", check=2)
    assert "2500" in proc.stderr and "drop --full" in proc.stderr


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
def test_png(tmp_path):
    tf = write_taskfile(tmp_path, GRAPH)
    png = tmp_path / "g.png"
    run_cli("graph", tf, "-o", png, check=0)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
