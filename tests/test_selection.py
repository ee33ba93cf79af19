"""Task selection by name: one syntax for every command (exact, after the last dot, glob, /regex/)."""
from __future__ import annotations

import pytest

from conftest import NOTE_PREAMBLE, run_cli, status_json, write_taskfile

from taskflow import Task
from taskflow.errors import NoTaskMatchesError, UsageError
from taskflow.selection import matcher, select, select_targets


def count_words(x):
    return x


def count_lines(x):
    return x


def total(xs):
    return xs


@pytest.mark.parametrize("pattern, expected", [
    ("test_selection.count_words", {"test_selection.count_words"}),
    ("count_words", {"test_selection.count_words"}),
    ("count_*", {"test_selection.count_words", "test_selection.count_lines"}),
    ("test_selection.count_*", {"test_selection.count_words", "test_selection.count_lines"}),
    ("*.total", {"test_selection.total"}),
    ("count_?ords", {"test_selection.count_words"}),
    ("count_[lw]*", {"test_selection.count_words", "test_selection.count_lines"}),
    ("/count/", {"test_selection.count_words", "test_selection.count_lines"}),
    ("/^test_selection\\.t/", {"test_selection.total"}),
    ("/words$/", {"test_selection.count_words"}),
    ("count", set()),            # a name is matched whole, never as a part
    ("words", set()),
    ("Count_*", set()),          # globs are case-sensitive, like names
    ("selection.count_words", set()),
])
def test_matcher_forms(pattern, expected):
    names = ["test_selection.count_words", "test_selection.count_lines", "test_selection.total"]
    test = matcher(pattern)
    assert {n for n in names if test(n)} == expected


def test_select_keeps_declaration_order_and_takes_the_union():
    words = [Task(count_words, i) for i in range(3)]
    lines = Task(count_lines, 0)
    t = Task(total, words)
    tasks = [*words, lines, t]
    assert select(tasks, ["total", "count_w*"]) == [*words, t]
    assert select(tasks, ["/./"]) == tasks
    assert select_targets(tasks, ["total"]) == [*words, t]   # with its dependencies
    assert select_targets(tasks, []) == tasks


def test_a_pattern_matching_nothing_is_an_error_naming_it():
    tasks = [Task(count_words, 0), Task(total, [])]
    with pytest.raises(NoTaskMatchesError) as info:
        select(tasks, ["total", "nosuch*"])
    message = str(info.value)
    assert message.startswith("--target nosuch* matches no task; task names are: ")
    assert "test_selection.total" in message and "\n" not in message
    assert info.value.pattern == "nosuch*"
    with pytest.raises(UsageError, match=r"--target /\(/: bad regular expression"):
        select(tasks, ["nosuch", "/(/"])  # syntax is checked before matching


TASKFILE = NOTE_PREAMBLE + """
@TaskGenerator
def count_words(i):
    note("count_words", i)
    return i

@TaskGenerator
def count_lines(i):
    note("count_lines", i)
    return i

@TaskGenerator
def total(xs):
    note("total")
    return sum(xs)

words = [count_words(i) for i in range(2)]
lines = [count_lines(i) for i in range(2)]
result = total(words)
"""

W = ["count_words 0", "count_words 1"]
L = ["count_lines 0", "count_lines 1"]
# pattern, what `execute --target` runs (matches and dependencies), what runs again after
# `invalidate --target` (matches and everything downstream)
FORMS = [
    ("taskfile.total", W + ["total"], ["total"]),
    ("total", W + ["total"], ["total"]),
    ("count_*", L + W, L + W + ["total"]),
    ("taskfile.count_l*", L, L),
    ("/lines$/", L, L),
    ("/\\.to/", W + ["total"], ["total"]),
    ("count_words", W, W + ["total"]),
]


def log_lines(tmp_path):
    path = tmp_path / "log"
    return sorted(path.read_text().splitlines()) if path.exists() else []


@pytest.mark.parametrize("pattern, ran, _", FORMS)
def test_execute_target_forms(tmp_path, pattern, ran, _):
    tf = write_taskfile(tmp_path, TASKFILE)
    env = {"TF_TEST_LOG": str(tmp_path / "log")}
    run_cli("execute", tf, "--target", pattern, env=env, check=0)
    assert log_lines(tmp_path) == sorted(ran)


@pytest.mark.parametrize("pattern, _, again", FORMS)
def test_invalidate_target_forms(tmp_path, pattern, _, again):
    tf = write_taskfile(tmp_path, TASKFILE)
    env = {"TF_TEST_LOG": str(tmp_path / "log")}
    run_cli("execute", tf, env=env, check=0)
    (tmp_path / "log").unlink()
    run_cli("invalidate", tf, "--target", pattern, check=0)
    run_cli("execute", tf, env=env, check=0)
    assert log_lines(tmp_path) == sorted(again)


@pytest.mark.parametrize("command", ["execute", "invalidate"])
def test_target_matching_nothing_exits_2_naming_it(tmp_path, command):
    tf = write_taskfile(tmp_path, TASKFILE)
    proc = run_cli(command, tf, "--target", "total", "--target", "count_x*", check=2)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("taskflow: error: --target count_x* matches no task; ")
    assert "taskfile.count_words" in lines[0]
    assert "Traceback" not in proc.stderr
    assert status_json(tf)["total"]["finished"] == 0


def test_show_takes_patterns_besides_name_index_and_hash(tmp_path):
    tf = write_taskfile(tmp_path, TASKFILE)
    out = run_cli("show", tf, "count_*", check=0).stdout
    assert out.count("task       taskfile.count_") == 4
    out = run_cli("show", tf, "/lines/[1]", check=0).stdout
    assert out.count("task       ") == 1 and "argument 1 1" in out
    proc = run_cli("show", tf, "nosuch*", check=2)
    assert proc.stderr.strip().splitlines() == [
        "taskflow: error: nosuch* matches no task by name, pattern, NAME[i] or hash prefix (at least 4 hex digits)"]
