"""Jugfiles under taskflow, compared value by value with a real jug 2.7.0.

jug is installed at test time, with numpy and PyYAML, in a virtualenv of its own (cached
between runs under TASKFLOW_TEST_CACHE or ~/.cache/taskflow-tests), never in taskflow's:
taskflow must run jugfiles without jug. The jugfiles of jug's own tests are
read from that installation. Without network or package index the tests
skip, saying why; with TASKFLOW_REQUIRE_JUG=1 (as in CI) that is a failure.
"""
from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli

JUG_VERSION = "2.7.0"
REQUIRE = os.environ.get("TASKFLOW_REQUIRE_JUG") == "1"

# jug's tests/jugfiles, each run unmodified under both: all but those that import jug's own test
# suite. builtin_function needs numpy (taskflow's dependency), write_with_meta PyYAML (a test extra).
JUGFILES = [
    "barrier_mapreduce", "barrier_recurse", "block_access", "builtin_function", "bvalue", "bvalue_error",
    "bvalue_nested",
    "compound", "compound_nonsimple", "compound_wbarrier", "custom_hash_function", "empty_mapreduce",
    "iteratetask", "mapgenerator", "mapreduce_generator", "no_load", "run-simple-create-file", "simple",
    "simple_multiple", "sleep_until_tasklet", "slice_task", "tasklet_simple", "tasklets", "wbarrier",
    "write_with_meta",
]
# The others, and why they are not compared.
NOT_RUN = {
    "failing": "imports jug.tests.jugfiles.exceptions, a module of jug's own test suite",
    "failing_barrier": "imports jug.tests.jugfiles.exceptions, a module of jug's own test suite",
}
NOT_JUGFILES = {"__init__", "exceptions"}
# Tasks whose jug key is not computed (so import-jug leaves them to compute), per jugfile.
NOT_IMPORTABLE = {"tasklets": 1}  # a Tasklet of a lambda: jug hashes its bytecode
# Values drawn at random: compared through what the jugfile computes from them, not as numbers.
RANDOM = {"no_load": {"map_ts", "x", "final"}}


def unavailable(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"{reason}; TASKFLOW_REQUIRE_JUG=1 says the jug tests must run, not skip")
    pytest.skip(reason)


class RealJug:
    def __init__(self, venv: Path):
        self.python = venv / "bin" / "python"
        self.jug = venv / "bin" / "jug"
        proc = subprocess.run([str(self.python), "-c", "import os, jug.tests.jugfiles as j; "
                               "print(os.path.dirname(j.__file__))"], capture_output=True, text=True, check=True)
        self.jugfiles = Path(proc.stdout.strip())

    def jugfile(self, name: str) -> Path:
        return self.jugfiles / f"{name}.py"


def _cache_dir() -> Path:
    return Path(os.environ.get("TASKFLOW_TEST_CACHE") or Path.home() / ".cache" / "taskflow-tests")


def _has_jug(venv: Path) -> bool:
    python = venv / "bin" / "python"
    if not python.exists():
        return False
    proc = subprocess.run([str(python), "-c", "import jug, numpy, yaml; print(jug.__version__)"], capture_output=True,
                          text=True)
    return proc.returncode == 0 and proc.stdout.strip() == JUG_VERSION


@pytest.fixture(scope="session")
def real_jug() -> RealJug:
    venv = _cache_dir() / f"jug-{JUG_VERSION}-numpy-pyyaml-py{sys.version_info.major}.{sys.version_info.minor}"
    done = venv / "taskflow-tests-complete"
    if not (done.exists() and _has_jug(venv)):
        try:
            venv.parent.mkdir(parents=True, exist_ok=True)
            lock = open(venv.parent / f"{venv.name}.lock", "w")
        except OSError as e:
            unavailable(f"cannot make a folder for jug's virtualenv under {venv.parent}: {e}")
        import fcntl
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one test run builds it; others wait for it
            if not (done.exists() and _has_jug(venv)):
                shutil.rmtree(venv, ignore_errors=True)
                _build_jug_venv(venv)
                done.touch()
    return RealJug(venv)


def _build_jug_venv(venv: Path) -> None:
    # From the base interpreter, not this virtualenv: jug must not see taskflow's packages.
    base = getattr(sys, "_base_executable", None) or sys.executable
    steps = [[base, "-m", "venv", str(venv)],
             [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
              f"jug=={JUG_VERSION}", "numpy", "pyyaml"]]
    for step in steps:
        try:
            proc = subprocess.run(step, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            unavailable(f"{' '.join(step[-3:])} took more than 10 minutes")
        if proc.returncode != 0:
            last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["no output"]
            unavailable(f"cannot install jug {JUG_VERSION}, numpy and PyYAML in a virtualenv ({' '.join(step[-3:])}): {last[0]}")


# What a jugfile's namespace holds, printed as JSON: each global that holds tasks, as the repr of
# its value (or the exception loading it raised), and jug's key of every declared task.
JUG_DUMP = """
import json, sys
import jug, jug.task, jug.mapreduce
sys.setrecursionlimit(100000)  # jug hashes a chain of 4096 tasks recursively
kinds = (jug.task.Task, jug.task.Tasklet, jug.mapreduce.block_access, jug.mapreduce.block_access_slice)
def holds(x):
    if isinstance(x, kinds): return True
    if type(x) in (list, tuple): return any(holds(i) for i in x)
    if type(x) is dict: return any(holds(i) for i in x.values())
    return False
out = {"values": {}, "keys": []}
try:
    store, space = jug.init(sys.argv[1], sys.argv[2], on_error="propagate")
except Exception as e:
    out["load_error"] = type(e).__name__
    space = {}
for name, v in sorted(space.items()):
    if not name.startswith("__") and holds(v):
        try:
            out["values"][name] = repr(jug.value(v))
        except Exception as e:
            out["values"][name] = "raised " + type(e).__name__
out["keys"] = sorted(t.hash().decode() for t in jug.task.alltasks)
print(json.dumps(out))
"""

TASKFLOW_DUMP = """
import json, sys
import taskflow
import taskflow.jug as jug
from taskflow.jug.task import Tasklet
from taskflow.jug.mapreduce import MapResult, _MapSlice
kinds = (taskflow.Task, taskflow.TaskElement, Tasklet, MapResult, _MapSlice)
def holds(x):
    if isinstance(x, kinds): return True
    if type(x) in (list, tuple): return any(holds(i) for i in x)
    if type(x) is dict: return any(holds(i) for i in x.values())
    return False
out = {"values": {}}
try:
    store, space = jug.init(sys.argv[1], sys.argv[2])
except taskflow.TaskfileError as e:
    out["load_error"] = type(e.__cause__).__name__
    space = {}
for name, v in sorted(space.items()):
    if not name.startswith("__") and holds(v):
        try:
            out["values"][name] = repr(jug.value(v))
        except Exception as e:
            out["values"][name] = "raised " + type(e).__name__
out["leaked"] = sorted(m for m in sys.modules if m == "jug" or m.startswith("jug."))
print(json.dumps(out))
"""


def jug_run(real_jug: RealJug, folder: Path, name: str) -> dict:
    """Run the jugfile with jug in `folder` (`jug execute`, then its values through jug.init)."""
    subprocess.run([str(real_jug.jug), "execute", "--will-cite", f"{name}.py"], cwd=folder,
                   capture_output=True, text=True, timeout=300)
    proc = subprocess.run([str(real_jug.python), "-c", JUG_DUMP, f"{name}.py", f"{name}.jugdata"], cwd=folder,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def taskflow_values(folder: Path, name: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", TASKFLOW_DUMP, f"{name}.py", f"{name}.jugdata"], cwd=folder,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def copy_jugfile(real_jug: RealJug, name: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.py"
    shutil.copyfile(real_jug.jugfile(name), target)  # read from jug's installation at test time
    return target


def assert_same_values(name: str, ours: dict, theirs: dict) -> None:
    assert ours.get("load_error") == theirs.get("load_error")
    random = RANDOM.get(name, set())
    assert set(ours["values"]) == set(theirs["values"])
    for var in ours["values"]:
        if var not in random:
            assert ours["values"][var] == theirs["values"][var], f"{name}.{var}"
    if name == "no_load":
        for side in (ours, theirs):
            v = {k: ast.literal_eval(side["values"][k]) for k in random}
            assert v["x"] == pytest.approx(sum(v["map_ts"]))
            assert v["final"] == pytest.approx(2 * v["x"])
    assert ours["leaked"] == []  # jug.* names are gone once the jugfile is loaded


def test_every_jugfile_of_jug_is_listed(real_jug: RealJug) -> None:
    shipped = {p.stem for p in real_jug.jugfiles.glob("*.py")}
    assert shipped == set(JUGFILES) | set(NOT_RUN) | NOT_JUGFILES


@pytest.mark.parametrize("name", ["failing", "failing_barrier"])
def test_jugfiles_needing_jugs_test_suite_say_so_in_one_line(real_jug: RealJug, tmp_path: Path, name: str) -> None:
    jugfile = copy_jugfile(real_jug, name, tmp_path)
    proc = run_cli("execute", jugfile, cwd=tmp_path, check=2)
    assert proc.stderr == (f"taskflow: error: {jugfile}:2: module jug.tests is not covered by taskflow's jug "
                           "compatibility: jug's test suite is part of jug, not of its API\n")


@pytest.mark.parametrize("name", JUGFILES)
def test_jugfile_runs_unmodified_with_jugs_values(real_jug: RealJug, tmp_path: Path, name: str) -> None:
    if name == "write_with_meta":
        pytest.importorskip("yaml", reason="PyYAML (a test extra: pip install -e '.[test]') is not installed")
    jug_dir, ours_dir, imported_dir = tmp_path / "jug", tmp_path / "taskflow", tmp_path / "imported"
    copy_jugfile(real_jug, name, jug_dir)
    theirs = jug_run(real_jug, jug_dir, name)

    # Unmodified, through `taskflow execute`, jug not installed in this process's environment.
    jugfile = copy_jugfile(real_jug, name, ours_dir)
    proc = run_cli("execute", "-q", jugfile, cwd=ours_dir, timeout=300)
    assert proc.returncode == (2 if theirs.get("load_error") else 0), proc.stderr
    assert "Traceback" not in proc.stderr
    assert_same_values(name, taskflow_values(ours_dir, name), theirs)
    if name == "run-simple-create-file":
        assert (ours_dir / "test-result.txt").read_text() == (jug_dir / "test-result.txt").read_text()
    if name == "write_with_meta":
        assert (ours_dir / "x.pkl").read_bytes() == (jug_dir / "x.pkl").read_bytes()
        assert json.loads((ours_dir / "x.meta.json").read_text())["name"] == "write_with_meta.plus1"
        assert "write_with_meta.plus1" in (ours_dir / "x.meta.yaml").read_text()

    # jug's finished results imported: each computable key is jug's (jug finished every task, so a
    # computed key that jug has no result for would be a wrong key), and the values are jug's.
    jugfile = copy_jugfile(real_jug, name, imported_dir)
    proc = run_cli("import-jug", jug_dir / f"{name}.jugdata", jugfile, cwd=imported_dir, timeout=300)
    if theirs.get("load_error") or not theirs["keys"]:
        # Nothing to import: the jugfile does not load, or declares no task (jug made no jugdata).
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        return
    assert proc.returncode == 0, proc.stderr
    summary = proc.stdout.strip().splitlines()[-1]
    assert "not finished under jug 0," in summary, proc.stdout
    assert f"not importable {NOT_IMPORTABLE.get(name, 0)}" in summary, proc.stdout
    assert not summary.startswith("imported 0,"), proc.stdout
    # Nothing imported is computed again: all is finished but what could not be imported.
    run_cli("check", jugfile, cwd=imported_dir, check=1 if NOT_IMPORTABLE.get(name) else 0)
    run_cli("execute", "-q", jugfile, cwd=imported_dir, check=0, timeout=300)
    assert_same_values(name, taskflow_values(imported_dir, name), theirs)


# A jugfile of this suite's own, touching the rest of jug's API that jugfiles use.
API_JUGFILE = """
import jug
from jug import Task, TaskGenerator, Tasklet, value, bvalue, barrier, iteratetask, CachedFunction
from jug.mapreduce import map as jmap, mapreduce, currymap, reduce as jreduce
from jug.compound import CompoundTaskGenerator
from jug.utils import identity, timed_path, jug_execute, cached_glob, CustomHash
from jug.io import NoLoad, write_task_out
from jug.hooks import exit_checks
from jug.hash import hash_one

def add(a, b):
    return a + b

def square(x):
    return x * x

def pair(x):
    return (x, x + 1)

def first_plus_100(t):
    return t[0] + 100

def length(path):
    with open(path) as f:
        return len(f.read())

def through(nl):
    return jug.value(nl.base) + 1

def by_repr(x):
    return repr(x).encode()

class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __jug_hash__(self):
        return hash_one((self.x, self.y))

def norm2(p):
    return p.x * p.x + p.y * p.y

@TaskGenerator
def double(x):
    return 2 * x

@CompoundTaskGenerator
def tree(n):
    return jreduce(add, [double(i) for i in range(n)])

exit_checks.exit_after_time(hours=5)
files = cached_glob("data/*.txt")
listed = identity(files)
sizes = [Task(length, timed_path(f)) for f in files]
total = jreduce(add, sizes)
squares = jmap(square, range(10))
some_squares = Task(sum, squares[2:7])
sq_sum = mapreduce(add, square, range(10))
curried = currymap(add, [(1, 2), (3, 4), (5, 6)])
first, second = iteratetask(Task(pair, 5), 2)
let = Task(add, Tasklet(Task(pair, 7), first_plus_100), 1)
cached = Task(add, CachedFunction(square, 12), 0)
nl = Task(through, NoLoad(double(20)))
pt = Task(norm2, Point(3, 4))
custom = double(CustomHash(21, by_repr))
echo = jug_execute(["true"], return_value=5)
compound = tree(4)
b = bvalue(sq_sum)
after = double(b)
barrier()
last = Task(add, value(total), 1)
written = write_task_out(after, "after.pkl", metadata_fname="after.json", metadata_format="json")
"""


def _api_folder(folder: Path) -> Path:
    (folder / "data").mkdir(parents=True)
    for i in range(3):
        (folder / "data" / f"{i}.txt").write_text("x" * (10 + i))
    return write_api(folder)


def write_api(folder: Path) -> Path:
    path = folder / "api.py"
    path.write_text(API_JUGFILE)
    return path


def test_jug_api_matches_jug(real_jug: RealJug, tmp_path: Path) -> None:
    jug_dir, ours_dir, imported_dir = tmp_path / "jug", tmp_path / "taskflow", tmp_path / "imported"
    _api_folder(jug_dir)
    theirs = jug_run(real_jug, jug_dir, "api")
    assert "raised" not in json.dumps(theirs["values"])
    jugfile = _api_folder(ours_dir)
    run_cli("execute", "-q", jugfile, cwd=ours_dir, check=0)
    assert_same_values("api", taskflow_values(ours_dir, "api"), theirs)
    assert (ours_dir / "after.pkl").read_bytes() == (jug_dir / "after.pkl").read_bytes()
    assert json.loads((ours_dir / "after.json").read_text())["name"] == "api.double"

    # Every task imports: timed_path's key holds the files' times, which copy2 keeps.
    shutil.copytree(jug_dir / "data", imported_dir / "data", copy_function=shutil.copy2)
    jugfile = write_api(imported_dir)
    proc = run_cli("import-jug", jug_dir / "api.jugdata", jugfile, "--dry-run", cwd=imported_dir, check=0)
    assert proc.stdout.startswith("would import ")
    # A dry run imports nothing (the load ran the jugfile's CachedFunction which stores its own result).
    from taskflow.stores.folder import FolderStore as Store
    store = Store(str(imported_dir / "api.taskflow"))
    assert not [h for h in store.finished_hashes() if "imported_from" in store.result_meta(h)]
    assert len(store.finished_hashes()) == 2  # cached_glob and CachedFunction(square, 12)
    proc = run_cli("import-jug", jug_dir / "api.jugdata", jugfile, cwd=imported_dir, check=0)
    assert "not finished under jug 0, not importable 0" in proc.stdout, proc.stdout
    run_cli("check", jugfile, cwd=imported_dir, check=0)
    assert_same_values("api", taskflow_values(imported_dir, "api"), theirs)

    # A file that changed makes a new timed_path task, and a new reduce task of its size: not in
    # jug's store, so left to compute, and the barrier above `last` waits for them.
    (imported_dir / "data" / "1.txt").write_text("changed")
    proc = run_cli("import-jug", jug_dir / "api.jugdata", jugfile, cwd=imported_dir, check=0)
    assert "imported 0, already in the store 25, not finished under jug 2," in proc.stdout, proc.stdout
    assert "stopped at the barrier at" in proc.stdout and "api.py:70 " in proc.stdout, proc.stdout


def test_import_jug_reports_damaged_results_and_imports_nothing_else_for_them(real_jug: RealJug,
                                                                               tmp_path: Path) -> None:
    jug_dir, ours_dir = tmp_path / "jug", tmp_path / "taskflow"
    copy_jugfile(real_jug, "simple", jug_dir)
    jug_run(real_jug, jug_dir, "simple")
    results = sorted(p for p in (jug_dir / "simple.jugdata").glob("??/*"))
    damaged = results[0]
    damaged.write_bytes(damaged.read_bytes()[:-3])  # a truncated zlib stream
    jugfile = copy_jugfile(real_jug, "simple", ours_dir)
    proc = run_cli("import-jug", jug_dir / "simple.jugdata", jugfile, cwd=ours_dir, check=0)
    assert "imported 31," in proc.stdout and "not importable 1" in proc.stdout, proc.stdout
    assert "not a complete zlib stream" in proc.stdout
    run_cli("execute", "-q", jugfile, cwd=ours_dir, check=0)  # computes the one left
    ours = taskflow_values(ours_dir, "simple")
    assert ours["values"]["vals"] == repr([4 * i + 6 for i in range(8)])


NOTEBOOK = """
import sys
{before}
import taskflow.jug as jug
store, space = jug.init("analysis.py", "analysis.jugdata")
print(jug.value(space["total"]), jug.value(space["parts"][1]), type(jug.value(space["box"])).__module__)
print(space["results_from"], jug.is_jug_running())
print(sorted(m for m in sys.modules if m == "jug" or m.startswith("jug.")))
import analysis  # the loaded jugfile, as after jug.init
print(jug.task.value(analysis.total))
{after}
"""

ANALYSIS = """
from jug import TaskGenerator, is_jug_running
from jug.utils import CustomHash

def by_repr(x):
    return repr(x).encode()

@TaskGenerator
def part(i):
    import jug  # while the task runs, jug is taskflow.jug
    return (i, jug.__name__)

@TaskGenerator
def total(parts):
    return sum(i for i, _ in parts)

@TaskGenerator
def boxed(x):
    return CustomHash(x, by_repr)  # a result of taskflow.jug's own class

parts = [part(i) for i in range(4)]
total = total(parts)
box = boxed(3)
results_from = "taskflow command" if is_jug_running() else "notebook"
"""


def test_notebook_pattern_with_taskflow_jug_init(tmp_path: Path) -> None:
    (tmp_path / "analysis.py").write_text(ANALYSIS)
    run_cli("execute", "-q", "analysis.py", cwd=tmp_path, check=0)
    script = NOTEBOOK.format(before="", after="")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["6 (1, 'taskflow.jug') taskflow.jug.utils", "notebook False", "[]", "6"]


def test_a_real_jug_in_the_same_process_keeps_its_name(real_jug: RealJug, tmp_path: Path) -> None:
    (tmp_path / "analysis.py").write_text(ANALYSIS)
    run_cli("execute", "-q", "analysis.py", cwd=tmp_path, check=0)
    site = subprocess.run([str(real_jug.python), "-c", "import jug, os; print(os.path.dirname(os.path.dirname("
                           "jug.__file__)))"], capture_output=True, text=True, check=True).stdout.strip()
    script = NOTEBOOK.format(before=f"sys.path.append({site!r}); import jug as real; import jug.task",
                             after="import jug; print(jug is real, jug.__version__, jug.task.__name__)")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "6 (1, 'taskflow.jug') taskflow.jug.utils"
    assert lines[4] == f"True {JUG_VERSION} jug.task"  # the real jug, untouched by the load


@pytest.mark.parametrize("line, message", [
    ("from jug.backends import redis_store",
     "module jug.backends is not covered by taskflow's jug compatibility: taskflow keeps results"),
    ("from jug.hooks import register_hook",
     "jug.hooks.register_hook is not covered by taskflow's jug compatibility: taskflow runs no hooks"),
    ("import jug.task\nprint(len(jug.task.alltasks))",
     "jug.task.alltasks is not covered by taskflow's jug compatibility:"),
    ("import jug\nt = jug.Task(max, 1, 2)\nt.lock()",
     "jug's Task.lock() is not covered by taskflow's jug compatibility: taskflow claims tasks"),
    ("jug.main()", "jug.main is not covered by taskflow's jug compatibility: run the taskflow command"),
    ("store = jug.redis_store.redis_store('redis://localhost')",
     "jug.redis_store is not covered by taskflow's jug compatibility: taskflow needs only a shared folder"),
])
def test_an_uncovered_jug_feature_gives_one_clear_error(tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "jugfile.py").write_text(f"import jug\n{line}\n")
    proc = run_cli("execute", "jugfile.py", cwd=tmp_path, check=2)
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"jugfile.py:{len(line.splitlines()) + 1}: {message}" in proc.stderr, proc.stderr


EXIT_HOOKS = """
from jug import TaskGenerator
from jug.hooks import exit_checks

@TaskGenerator
def double(x):
    return 2 * x

exit_checks.exit_after_n_tasks(3)
exit_checks.exit_if_file_exists("stop-now")
values = [double(i) for i in range(10)]
"""


def test_jug_exit_hooks_are_worker_limits(tmp_path: Path) -> None:
    (tmp_path / "jugfile.py").write_text(EXIT_HOOKS)
    run_cli("execute", "-q", "jugfile.py", cwd=tmp_path, check=3)
    finished = json.loads(run_cli("status", "jugfile.py", "--json", cwd=tmp_path, check=0).stdout)
    assert finished["total"]["finished"] == 3
    (tmp_path / "stop-now").touch()
    proc = run_cli("execute", "jugfile.py", cwd=tmp_path, check=3)
    assert "stop-now exists" in proc.stderr
    (tmp_path / "stop-now").unlink()
    run_cli("execute", "-q", "--max-tasks", "2", "jugfile.py", cwd=tmp_path, check=3)  # the stricter wins
    assert json.loads(run_cli("status", "jugfile.py", "--json", cwd=tmp_path).stdout)["total"]["finished"] == 5


def test_import_jug_reads_packed_results(real_jug: RealJug, tmp_path: Path) -> None:
    jug_dir, ours_dir = tmp_path / "jug", tmp_path / "taskflow"
    copy_jugfile(real_jug, "simple", jug_dir)
    theirs = jug_run(real_jug, jug_dir, "simple")
    proc = subprocess.run([str(real_jug.jug), "pack", "--will-cite", "simple.py"], cwd=jug_dir, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert not list((jug_dir / "simple.jugdata").glob("??/*"))  # every result is in packs/jugpack now
    jugfile = copy_jugfile(real_jug, "simple", ours_dir)
    proc = run_cli("import-jug", jug_dir / "simple.jugdata", jugfile, cwd=ours_dir, check=0)
    assert proc.stdout.startswith("imported 32, "), proc.stdout
    run_cli("check", jugfile, cwd=ours_dir, check=0)
    assert_same_values("simple", taskflow_values(ours_dir, "simple"), theirs)


RUNNING = """
from jug import Task, is_jug_running
with open("running.txt", "w") as f:
    f.write(str(is_jug_running()))
biggest = Task(max, 1, 2)
"""


def test_is_jug_running_and_set_jugdir(tmp_path: Path) -> None:
    (tmp_path / "jugfile.py").write_text(RUNNING)
    run_cli("execute", "-q", "jugfile.py", cwd=tmp_path, check=0)
    assert (tmp_path / "running.txt").read_text() == "True"  # under a taskflow command
    script = ("import taskflow.jug as jug\n"
              "store = jug.set_jugdir('jugfile.jugdata')\n"
              "print(store.path.endswith('jugfile.taskflow'), jug.Task(max, 1, 2).value(), jug.is_jug_running())\n"
              "jug.init('jugfile.py')\n"
              "print(open('running.txt').read())\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "2", "False", "False"]


BOXED = """
from jug import TaskGenerator
from jug.utils import CustomHash

def by_repr(x):
    return repr(x).encode()

@TaskGenerator
def box(x):
    return CustomHash(x, by_repr)  # jug pickles it as jug.utils.CustomHash

boxed = box(3)
"""


def test_imported_pickles_naming_jug_read_as_taskflow_jug(real_jug: RealJug, tmp_path: Path) -> None:
    jug_dir, ours_dir = tmp_path / "jug", tmp_path / "taskflow"
    for folder in (jug_dir, ours_dir):
        folder.mkdir()
        (folder / "boxes.py").write_text(BOXED)
    jug_run(real_jug, jug_dir, "boxes")
    run_cli("import-jug", jug_dir / "boxes.jugdata", "boxes.py", cwd=ours_dir, check=0)
    script = ("import sys, taskflow.jug as jug\n"
              "store, space = jug.init('boxes.py')\n"
              "b = jug.value(space['boxed'])\n"
              "print(type(b).__module__, b.obj, [m for m in sys.modules if m.split('.')[0] == 'jug'])\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ours_dir, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "taskflow.jug.utils 3 []"


def test_jug_exit_after_time_is_max_time(tmp_path: Path) -> None:
    source = EXIT_HOOKS.replace("exit_checks.exit_after_n_tasks(3)", "exit_checks.exit_after_time(seconds=0)")
    (tmp_path / "jugfile.py").write_text(source)
    proc = run_cli("execute", "jugfile.py", cwd=tmp_path, check=3)
    assert "--max-time 0s reached" in proc.stderr, proc.stderr
    assert json.loads(run_cli("status", "jugfile.py", "--json", cwd=tmp_path).stdout)["total"]["finished"] == 0


LAMBDAS = """
from jug import Task, Tasklet

def two():
    return 2

def same(x):
    return x

t = Task(two)
plus, times = Task(same, Tasklet(t, lambda x: x + 1)), Task(same, Tasklet(t, lambda x: x * 1))
"""


def test_two_lambdas_on_one_line_are_two_tasklets(tmp_path: Path) -> None:
    (tmp_path / "jugfile.py").write_text(LAMBDAS)
    run_cli("execute", "-q", "jugfile.py", cwd=tmp_path, check=0)
    script = ("import taskflow.jug as jug\n"
              "store, space = jug.init('jugfile.py')\n"
              "print(jug.value([space['plus'], space['times']]), space['plus'].hash != space['times'].hash)\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[3, 2] True"


COMMANDS_JUGFILE = """
from jug import TaskGenerator, barrier, value
from jug.mapreduce import mapreduce

@TaskGenerator
def double(x):
    return 2 * x

def add(a, b):
    return a + b

doubled = [double(i) for i in range(4)]
barrier()
total = mapreduce(add, double, value(doubled))
"""


@pytest.mark.parametrize("command, expected", [
    (["status"], "jugfile.double"),
    (["check"], ""),
    (["report"], "jugfile.double"),
    (["show", "jugfile.py", "double[0]"], "finished"),
    (["graph", "-o", "graph.dot"], ""),
    (["wait", "--timeout", "5", "-q"], ""),
    (["cleanup", "--dry-run"], "nothing to remove"),
    (["invalidate", "--target", "jugfile.double", "--dry-run"], "double"),
])
def test_every_command_loads_an_unmodified_jugfile(tmp_path: Path, command: list, expected: str) -> None:
    (tmp_path / "jugfile.py").write_text(COMMANDS_JUGFILE)
    run_cli("execute", "-q", "jugfile.py", cwd=tmp_path, check=0)
    args = command if "jugfile.py" in command else [command[0], "jugfile.py", *command[1:]]
    proc = run_cli(*args, cwd=tmp_path, check=0)
    assert expected in proc.stdout, proc.stdout + proc.stderr


def test_the_shell_loads_an_unmodified_jugfile(tmp_path: Path) -> None:
    (tmp_path / "jugfile.py").write_text(COMMANDS_JUGFILE)
    run_cli("execute", "-q", "jugfile.py", cwd=tmp_path, check=0)
    proc = subprocess.run([sys.executable, "-m", "taskflow", "shell", "jugfile.py"], cwd=tmp_path,
                          input="print(value(total))\n", capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TERM": "dumb"})
    assert proc.returncode == 0, proc.stderr
    assert "24" in proc.stdout


def test_import_jug_refuses_a_folder_jug_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "jugfile.py").write_text(COMMANDS_JUGFILE)
    wrong = tmp_path / "project"
    (wrong / "data").mkdir(parents=True)
    (wrong / "notes.txt").write_text("x")
    proc = run_cli("import-jug", wrong, "jugfile.py", cwd=tmp_path, check=2)
    assert proc.stderr.strip().splitlines() == [
        f"taskflow: error: {wrong}: not a jugdata folder (it holds 'data', which jug does not write)"]
    jugdata = tmp_path / "jugfile.jugdata"
    for name in ("locks", "tempfiles", "0a"):
        (jugdata / name).mkdir(parents=True)
    proc = run_cli("import-jug", jugdata, "jugfile.py", cwd=tmp_path, check=0)
    assert "not finished under jug" in proc.stdout


def test_jug_arguments_resolve_like_taskflow_ones():
    """jug's tasks get their arguments through taskflow's `substitute`: into namedtuples and slices too,
    with Tasklets and `__jug_value__` objects replaced by their values."""
    import collections

    from taskflow.jug.task import Task as JugTask
    from taskflow.jug.task import Tasklet, resolve
    from taskflow.task import Declarations, activate

    previous = activate(Declarations())
    try:
        a, b = JugTask(max, 1, 2), JugTask(min, 3, 4)
        pair = collections.namedtuple("pair", "x y")
        results = {a.hash: 2, b.hash: 3}

        class Wrapped:
            def __jug_value__(self):
                return "unwrapped"

        got = resolve([pair(a, 7), slice(a, b), {"k": Tasklet(b, lambda v: v * 10)}, Wrapped(), int],
                      lambda t: results[t.hash])
    finally:
        activate(previous)
    assert got[0] == pair(2, 7) and type(got[0]) is pair
    assert got[1] == slice(2, 3)
    assert got[2] == {"k": 30} and got[3] == "unwrapped" and got[4] is int
