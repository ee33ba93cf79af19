"""`taskflow execute` through the CLI: graphs, barriers, failures, targets, damaged results."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import NOTE_PREAMBLE, run_cli, status_json, write_taskfile

LOGGING = NOTE_PREAMBLE


def log_lines(tmp_path):
    path = tmp_path / "log"
    return path.read_text().splitlines() if path.exists() else []


def env_for(tmp_path):
    return {"TF_TEST_LOG": str(tmp_path / "log")}


def test_diamond(tmp_path):
    tf = write_taskfile(tmp_path, LOGGING + """
@TaskGenerator
def source():
    note("source")
    return 10

@TaskGenerator
def left(x):
    note("left")
    return x + 1

@TaskGenerator
def right(x):
    note("right")
    return x * 2

@TaskGenerator
def join(a, b):
    note("join")
    return (a, b)

s = source()
result = join(left(s), right(s))
""")
    env = env_for(tmp_path)
    run_cli("execute", tf, env=env, check=0)
    assert sorted(log_lines(tmp_path)) == ["join", "left", "right", "source"]
    assert log_lines(tmp_path)[0] == "source" and log_lines(tmp_path)[-1] == "join"
    run_cli("execute", tf, env=env, check=0)
    assert len(log_lines(tmp_path)) == 4, "a second execute must run nothing"
    out = subprocess.run([sys.executable, "-c", (
        "import taskflow; ns = taskflow.init(%r); print(taskflow.value(ns.result))" % str(tf))],
        capture_output=True, text=True, env={**os.environ, **env}, check=True)
    assert out.stdout.strip() == "(11, 20)"
    counts = status_json(tf)
    assert counts["total"] == {"waiting": 0, "ready": 0, "running": 0, "finished": 4, "failed": 0}


def test_fan_out_fan_in_1000(tmp_path):
    tf = write_taskfile(tmp_path, """
from taskflow import TaskGenerator

@TaskGenerator
def square(x):
    return x * x

@TaskGenerator
def total(xs):
    return sum(xs)

result = total([square(i) for i in range(1000)])
""")
    before = status_json(tf)
    assert before["tasks"]["taskfile.square"]["ready"] == 1000
    assert before["tasks"]["taskfile.total"]["waiting"] == 1
    run_cli("execute", tf, check=0)
    import taskflow
    ns = taskflow.init(str(tf))
    assert taskflow.value(ns.result) == sum(i * i for i in range(1000))
    assert status_json(tf)["total"]["finished"] == 1001


def test_chain_500_deep(tmp_path):
    tf = write_taskfile(tmp_path, """
from taskflow import TaskGenerator

@TaskGenerator
def step(x):
    return x + 1

t = 0
for _ in range(500):
    t = step(t)
last = t
""")
    run_cli("execute", tf, check=0)
    import taskflow
    assert taskflow.value(taskflow.init(str(tf)).last) == 500


def test_barrier_needs_several_passes_in_one_run(tmp_path):
    tf = write_taskfile(tmp_path, LOGGING + """
@TaskGenerator
def make(n):
    note("make", n)
    return list(range(n))

@TaskGenerator
def double(x):
    note("double", x)
    return 2 * x

sizes = make(3)
first = bvalue(sizes)            # pass 1 stops here
doubled = [double(x) for x in first]
barrier()                        # pass 2 stops here
values = bvalue(doubled)
final = make(sum(values))        # pass 3
""")
    env = env_for(tmp_path)
    before = status_json(tf)
    assert before["total"]["ready"] == 1 and sum(before["total"].values()) == 1
    run_cli("execute", tf, env=env, check=0)
    assert log_lines(tmp_path) == ["make 3", "double 0", "double 1", "double 2", "make 6"]
    after = status_json(tf)
    assert after["total"]["finished"] == 5 and sum(after["total"].values()) == 5
    import taskflow
    ns = taskflow.init(str(tf))
    assert taskflow.value(ns.final) == [0, 1, 2, 3, 4, 5]


def test_indexing_by_tasks_makes_them_dependencies(tmp_path):
    tf = write_taskfile(tmp_path, LOGGING + """
@TaskGenerator
def values():
    note("values")
    return list(range(10))

@TaskGenerator
def index(i):
    note("index", i)
    return i

@TaskGenerator
def bounds():
    note("bounds")
    return (2, 8)

@TaskGenerator
def combine(one, part):
    note("combine")
    return (one, part)

r = values()
z = index(3)
w = index(6)
b = bounds()
picked = combine(r[z], r[z:w])
stepped = combine(r[b[0]], r[b[0]:b[1]:z])
""")
    before = status_json(tf)["tasks"]
    # The index tasks are dependencies: the combining tasks wait for them.
    assert before["taskfile.combine"] == {"waiting": 2, "ready": 0, "running": 0, "finished": 0, "failed": 0}
    assert before["taskfile.index"]["ready"] == 2 and before["taskfile.bounds"]["ready"] == 1
    env = env_for(tmp_path)
    run_cli("execute", tf, env=env, check=0)
    assert sorted(log_lines(tmp_path)) == ["bounds", "combine", "combine", "index 3", "index 6", "values"]
    import taskflow
    ns = taskflow.init(str(tf))
    assert taskflow.value(ns.picked) == (3, [3, 4, 5])
    assert taskflow.value(ns.stepped) == (2, [2, 5])
    assert taskflow.value(ns.r[ns.z:ns.w]) == [3, 4, 5]
    assert taskflow.value([ns.r[ns.b[1]]]) == [8]


BVALUE_AND_UNRELATED_FAILURE = LOGGING + """
@TaskGenerator
def unrelated():
    note("unrelated")
    raise ValueError("unrelated failure")

@TaskGenerator
def make(n):
    note("make", n)
    return list(range(n))

@TaskGenerator
def double(x):
    note("double", x)
    return 2 * x

@TaskGenerator
def total(xs):
    note("total")
    return sum(xs)

bad = unrelated()                   # declared first, so it runs first
sizes = make(3)
first = bvalue(sizes)               # waits for `sizes` only, not for `bad`
doubled = [double(x) for x in first]
result = total(doubled)
"""


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_bvalue_waits_only_for_what_it_needs(tmp_path, jobs):
    tf = write_taskfile(tmp_path, BVALUE_AND_UNRELATED_FAILURE)
    env = env_for(tmp_path)
    before = status_json(tf)["total"]
    assert before == {"waiting": 0, "ready": 2, "running": 0, "finished": 0, "failed": 0}
    proc = run_cli("execute", tf, "--keep-going", "--jobs", jobs, env=env, check=1)
    assert "unrelated failure" in proc.stderr
    assert sorted(log_lines(tmp_path)) == ["double 0", "double 1", "double 2", "make 3", "total", "unrelated"]
    assert status_json(tf)["total"] == {"waiting": 0, "ready": 0, "running": 0, "finished": 5, "failed": 1}
    import taskflow
    assert taskflow.value(taskflow.init(str(tf)).result) == 6


def test_bvalue_past_an_earlier_failure_without_keep_going(tmp_path):
    tf = write_taskfile(tmp_path, BVALUE_AND_UNRELATED_FAILURE)
    env = env_for(tmp_path)
    run_cli("execute", tf, env=env, check=1)  # stops at the unrelated failure, as without --keep-going
    assert {"make 3", "unrelated"} <= set(log_lines(tmp_path))
    # status and init load past the bvalue: what it needs is finished, the failure is elsewhere.
    counts = status_json(tf)["total"]
    assert counts["failed"] == 1 and sum(counts.values()) == 6
    run_cli("execute", tf, env=env, check=1)  # a failure is still recorded: exit 1
    assert sorted(log_lines(tmp_path)) == ["double 0", "double 1", "double 2", "make 3", "total", "unrelated"]
    assert status_json(tf)["total"] == {"waiting": 0, "ready": 0, "running": 0, "finished": 5, "failed": 1}
    # `status --watch` goes past the bvalue too, and stops: nothing else can run.
    proc = run_cli("status", tf, "--watch", "0.2", timeout=60, check=0)
    assert "Total" in proc.stdout


def test_barrier_and_bvalue_wait_for_a_failure_they_need(tmp_path):
    needed = BVALUE_AND_UNRELATED_FAILURE.replace("first = bvalue(sizes)", "first = bvalue([sizes, bad])")
    full = BVALUE_AND_UNRELATED_FAILURE.replace("first = bvalue(sizes)", "barrier()\nfirst = bvalue(sizes)")
    for source in (needed, full):
        tf = write_taskfile(tmp_path, source)
        env = env_for(tmp_path)
        run_cli("execute", tf, "--keep-going", env=env, check=1)
        assert sorted(log_lines(tmp_path)) == ["make 3", "unrelated"]
        assert status_json(tf)["total"] == {"waiting": 0, "ready": 0, "running": 0, "finished": 1, "failed": 1}
        assert "loading stopped at a barrier" in run_cli("status", tf, check=0).stdout
        run_cli("status", tf, "--watch", "0.2", timeout=60, check=0)  # stops: nothing can run
        run_cli("invalidate", tf, "--target", "/./", check=0)
        (tmp_path / "log").unlink()


def test_elements_iteratetask_and_mapreduce(tmp_path):
    tf = write_taskfile(tmp_path, """
from taskflow import TaskGenerator, Task, iteratetask, mapreduce, map as tmap

@TaskGenerator
def pair(x):
    return (x, {"sq": x * x})

@TaskGenerator
def add(a, b):
    return a + b

def square(x):
    return x * x

def plus(a, b):
    return a + b

def concat(a, b):
    return a + b

a, b = iteratetask(pair(7), 2)
s = add(a, b["sq"])
mr = mapreduce(plus, square, range(25), map_step=3, reduce_step=3)
ordered = mapreduce(concat, str, range(12), map_step=2, reduce_step=2)
mapped = tmap(square, range(7), map_step=3)
single = tmap(square, [5])
""")
    run_cli("execute", tf, check=0)
    import taskflow
    ns = taskflow.init(str(tf))
    assert taskflow.value(ns.s) == 56
    assert taskflow.value(ns.mr) == sum(i * i for i in range(25))
    # The reducer need not commute: the tree keeps the inputs' order.
    assert taskflow.value(ns.ordered) == "01234567891011"
    assert taskflow.value(ns.mapped) == [i * i for i in range(7)]
    assert taskflow.value(ns.single) == [25]


FAILING = LOGGING + """
@TaskGenerator
def ok(x):
    note("ok", x)
    return x

@TaskGenerator
def boom(x):
    note("boom", x)
    raise ValueError(f"bad input {x}")

@TaskGenerator
def after(x):
    note("after")
    return x

first = ok(1)
bad = boom(2)
downstream = after(bad)
others = [ok(i) for i in range(10, 14)]
"""


def test_failure_stops_without_keep_going(tmp_path):
    tf = write_taskfile(tmp_path, FAILING)
    env = env_for(tmp_path)
    proc = run_cli("execute", tf, env=env, check=1)
    assert "ValueError: bad input 2" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert log_lines(tmp_path) == ["ok 1", "boom 2"]
    counts = status_json(tf)
    assert counts["tasks"]["taskfile.boom"]["failed"] == 1
    assert counts["tasks"]["taskfile.after"]["waiting"] == 1
    assert counts["tasks"]["taskfile.ok"] == {"waiting": 0, "ready": 4, "running": 0, "finished": 1, "failed": 0}
    listing = run_cli("status", tf, "--failed", check=0).stdout
    assert "taskfile.boom" in listing and "bad input 2" in listing and "failed" in listing

    # A later execute does not retry the failure: it runs the rest and still exits 1.
    run_cli("execute", tf, env=env, check=1)
    assert log_lines(tmp_path).count("boom 2") == 1
    assert sorted(log_lines(tmp_path)[2:]) == ["ok 10", "ok 11", "ok 12", "ok 13"]

    # --retry-failed runs it again.
    run_cli("execute", tf, "--retry-failed", env=env, check=1)
    assert log_lines(tmp_path).count("boom 2") == 2


@pytest.mark.parametrize("jobs", [1, 3])
def test_a_rerun_blocked_by_failures_names_them(tmp_path, jobs):
    tf = write_taskfile(tmp_path, FAILING)
    env = env_for(tmp_path)
    run_cli("execute", tf, "--keep-going", env=env, check=1)
    proc = run_cli("execute", tf, "--jobs", str(jobs), env=env, check=1)
    from taskflow.taskfile import load
    from taskflow.stores.folder import FolderStore as Store
    bad = next(t for t in load(str(tf), Store(str(tmp_path / "taskfile.taskflow"))).tasks if t.name == "taskfile.boom")
    lines = [line for line in proc.stderr.splitlines() if "keeps this run from finishing" in line]
    assert lines == [f"taskflow: error: 1 failed task keeps this run from finishing: taskfile.boom ({bad.hash[:12]}); "
                     "1 other task waits on it. Failed tasks are not run again unless you pass --retry-failed "
                     "(`taskflow status --failed` shows why they failed)"], proc.stderr
    assert "depend on failed" not in proc.stderr


def test_an_execute_with_nothing_left_says_so_once(tmp_path):
    tf = write_taskfile(tmp_path, LOGGING + """
@TaskGenerator
def f(x):
    return x

firsts = [f(i) for i in range(3)]
barrier()
last = f(10)
""")
    first = run_cli("execute", tf, check=0)
    assert "tasks already finished" not in first.stderr
    again = run_cli("execute", tf, check=0)
    assert again.stderr.splitlines() == ["taskflow: all 4 tasks already finished"]
    pool = run_cli("execute", tf, "--jobs", "3", check=0)
    assert pool.stderr.splitlines() == ["taskflow: all 4 tasks already finished"]
    assert run_cli("execute", tf, "-q", check=0).stderr == ""
    assert run_cli("execute", tf, "--jobs", "3", "-q", check=0).stderr == ""


def test_jobs_print_the_start_up_header_once(tmp_path):
    tf = write_taskfile(tmp_path, LOGGING + """
import time

@TaskGenerator
def f(x):
    time.sleep(0.05)
    return x

done = [f(i) for i in range(20)]
""")
    proc = run_cli("execute", tf, "--jobs", "4", check=0)
    headers = [line for line in proc.stderr.splitlines() if "already finished," in line]
    assert headers == ["taskflow: 20 tasks, 0 already finished, 0 failed"], proc.stderr


def test_keep_going_runs_everything_else(tmp_path):
    tf = write_taskfile(tmp_path, FAILING)
    env = env_for(tmp_path)
    run_cli("execute", tf, "--keep-going", env=env, check=1)
    assert sorted(log_lines(tmp_path)) == sorted(["ok 1", "boom 2", "ok 10", "ok 11", "ok 12", "ok 13"])
    counts = status_json(tf)
    assert counts["total"] == {"waiting": 1, "ready": 0, "running": 0, "finished": 5, "failed": 1}
    import taskflow
    ns = taskflow.init(str(tf))
    with pytest.raises(taskflow.TaskFailedError, match="bad input 2"):
        taskflow.value(ns.bad)
    with pytest.raises(taskflow.ResultMissingError, match="taskfile.after"):
        taskflow.value(ns.downstream)


def test_target(tmp_path):
    tf = write_taskfile(tmp_path, LOGGING + """
@TaskGenerator
def load(x):
    note("load", x)
    return x

@TaskGenerator
def analyse(x):
    note("analyse", x)
    return x

@TaskGenerator
def plot(x):
    note("plot", x)
    return x

data = [load(i) for i in range(3)]
analysis = analyse(data[0])
plots = plot(data[1])
""")
    env = env_for(tmp_path)
    run_cli("execute", tf, "--target", "analyse", env=env, check=0)
    assert sorted(log_lines(tmp_path)) == ["analyse 0", "load 0"]
    run_cli("execute", tf, "--target", "taskfile.plot", env=env, check=0)
    assert sorted(log_lines(tmp_path)) == ["analyse 0", "load 0", "load 1", "plot 1"]
    proc = run_cli("execute", tf, "--target", "nosuch", env=env, check=2)
    assert "matches no task" in proc.stderr and "taskfile.plot" in proc.stderr



BARRIER_TARGETS = LOGGING + """
@TaskGenerator
def first(i):
    note("first", i)
    return i

@TaskGenerator
def other(i):
    note("other", i)
    return i

@TaskGenerator
def second(x):
    note("second", x)
    return 10 * x

a = [first(i) for i in range(3)]
o = other(5)
barrier()
b = [second(x) for x in a]
"""


def test_target_below_a_barrier_runs_what_is_above_it_first(tmp_path):
    tf = write_taskfile(tmp_path, BARRIER_TARGETS)
    env = env_for(tmp_path)
    run_cli("execute", tf, "--target", "second", env=env, check=0)
    assert sorted(log_lines(tmp_path)) == ["first 0", "first 1", "first 2", "other 5",
                                          "second 0", "second 1", "second 2"]


def test_target_above_a_barrier_that_stays_closed(tmp_path):
    tf = write_taskfile(tmp_path, BARRIER_TARGETS)
    env = env_for(tmp_path)
    proc = run_cli("execute", tf, "--target", "first", env=env, check=0)
    assert sorted(log_lines(tmp_path)) == ["first 0", "first 1", "first 2"]
    line = tf.read_text().splitlines().index("barrier()") + 1
    assert f"stopping at the barrier at {tf}:{line}" in proc.stderr
    assert "reloading" not in proc.stderr
    assert status_json(tf)["total"]["ready"] == 1  # `other`, which keeps the barrier closed
    # A name not declared above the barrier may be below it: what is above runs first, then the
    # whole taskfile is declared and the name turns out to be a mistake.
    proc = run_cli("execute", tf, "--target", "nosuch", env=env, check=2)
    assert "--target nosuch matches no task" in proc.stderr
    assert sorted(log_lines(tmp_path)) == ["first 0", "first 1", "first 2", "other 5"]


def test_mapreduce_and_map_take_task_generators(tmp_path):
    import taskflow

    tf = write_taskfile(tmp_path, """
from taskflow import TaskGenerator, mapreduce, map as parallel_map

@TaskGenerator
def square(x):
    return x * x

@TaskGenerator
def add(a, b):
    return a + b

total = mapreduce(add, square, range(10), map_step=3, reduce_step=2)
chunked = parallel_map(square, range(5), map_step=2)
single = parallel_map(square, range(3))
""")
    run_cli("execute", tf, check=0)
    ns = taskflow.init(str(tf))
    assert taskflow.value(ns.total) == sum(i * i for i in range(10))
    assert taskflow.value(ns.chunked) == [0, 1, 4, 9, 16]
    assert taskflow.value(ns.single) == [0, 1, 4]


def test_mapreduce_and_map_of_no_inputs(tmp_path):
    import taskflow

    tf = write_taskfile(tmp_path, """
from taskflow import TaskGenerator, mapreduce, map as parallel_map

def square(x):
    return x * x

def add(a, b):
    return a + b

def concat(a, b):
    return a + b

@TaskGenerator
def offset():
    return 100

wanted = [x for x in range(10) if x > 50]       # a filter that matched nothing
empty_sum = mapreduce(add, square, wanted, initial=0)
empty_list = mapreduce(concat, str, [], initial="")
given_task = mapreduce(add, square, [], initial=offset())
full_sum = mapreduce(add, square, range(10), map_step=3, reduce_step=2, initial=0)
# initial is the result for no inputs only: with inputs it is not combined, and changes no task.
with_offset = mapreduce(add, square, range(10), map_step=3, reduce_step=2, initial=offset())
without = mapreduce(add, square, range(10), map_step=3, reduce_step=2)
nothing_mapped = parallel_map(square, wanted)
nothing_chunked = parallel_map(square, wanted, map_step=4)
no_initial = mapreduce(add, square, wanted)
""")
    run_cli("execute", tf, check=0)
    ns = taskflow.init(str(tf))
    assert taskflow.value(ns.empty_sum) == 0
    assert taskflow.value(ns.empty_list) == ""
    assert taskflow.value(ns.given_task) == 100
    assert taskflow.value(ns.full_sum) == sum(i * i for i in range(10))
    assert taskflow.value(ns.with_offset) == sum(i * i for i in range(10))
    assert ns.full_sum.hash == ns.with_offset.hash == ns.without.hash
    assert ns.nothing_mapped == [] and ns.nothing_chunked == []
    assert taskflow.value(ns.no_initial) == []  # what jug gives for no inputs


def test_tasks_import_modules_beside_the_taskfile_while_running(tmp_path):
    import taskflow

    project = tmp_path / "project"
    project.mkdir()
    (project / "neighbour_helpers.py").write_text("def triple(x):\n    return 3 * x\n")
    tf = write_taskfile(project, """
from taskflow import TaskGenerator

@TaskGenerator
def f(x):
    import neighbour_helpers  # while the task runs, not while the taskfile loads
    return neighbour_helpers.triple(x)

r = f(4)
""")
    elsewhere = tmp_path / "elsewhere"  # not the taskfile's folder, so `-m` puts nothing useful on sys.path
    elsewhere.mkdir()
    run_cli("execute", tf, cwd=elsewhere, check=0)
    assert taskflow.value(taskflow.init(str(tf)).r) == 12


def test_a_failure_outranks_work_left_over(tmp_path):
    tf = write_taskfile(tmp_path, LOGGING + """
@TaskGenerator
def boom():
    raise ValueError("no")

@TaskGenerator
def ok(i):
    note("ok", i)
    return i

b = boom()
oks = [ok(i) for i in range(5)]
""")
    env = env_for(tmp_path)
    run_cli("execute", tf, "--keep-going", "--max-tasks", "2", env=env, check=1)
    assert log_lines(tmp_path) == ["ok 0", "ok 1"]
    run_cli("execute", tf, "--max-tasks", "1", env=env, check=3)  # the old failure is not this run's
    assert log_lines(tmp_path) == ["ok 0", "ok 1", "ok 2"]


def test_store_write_error_exits_4_and_records_no_failure(tmp_path):
    import resource

    tf = write_taskfile(tmp_path, """
from taskflow import TaskGenerator

@TaskGenerator
def big():
    return b"x" * 2_000_000

r = big()
""")
    env = {k: v for k, v in os.environ.items() if k != "TASKFLOW_STORE"}

    def small_files():  # writes past 500 kB fail with EFBIG, as on a full disk or quota
        resource.setrlimit(resource.RLIMIT_FSIZE, (500_000, 500_000))

    proc = subprocess.run([sys.executable, "-m", "taskflow", "execute", str(tf)], env=env,
                          capture_output=True, text=True, timeout=60, preexec_fn=small_files)
    assert proc.returncode == 4, proc.stderr
    assert "cannot write result" in proc.stderr and "Traceback" not in proc.stderr
    store = tmp_path / "taskfile.taskflow"
    assert os.listdir(store / "locks") == [] and not (store / "failed").exists() or \
        os.listdir(store / "failed") == []
    assert status_json(tf)["total"] == {"waiting": 0, "ready": 1, "running": 0, "finished": 0, "failed": 0}
    run_cli("execute", tf, check=0)

DAMAGE = LOGGING + """
@TaskGenerator
def base(x):
    note("base", x)
    return list(range(x))

@TaskGenerator
def use(xs):
    note("use")
    return sum(xs)

b = base(1000)
u = use(b)
"""


def test_a_store_that_cannot_be_created_exits_4(tmp_path):
    tf = write_taskfile(tmp_path, LOGGING + """
@TaskGenerator
def f(x):
    return x

one = f(1)
""")
    if os.geteuid() == 0:
        # Permission bits do not stop root; sysfs refuses new folders to everyone.
        if not os.path.isdir("/sys/kernel"):
            pytest.skip("no sysfs to make an uncreatable store in, and root ignores permissions")
        where = "/sys/taskflow-test-store"
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        where = str(locked / "store")
    proc = run_cli("execute", tf, "--store", where, check=4)
    assert proc.stderr.startswith(f"taskflow: error: cannot create store {where}: "), proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr



@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_result_is_detected_and_recomputed(tmp_path, damage):
    import taskflow
    from taskflow.stores.folder import FolderStore as Store

    tf = write_taskfile(tmp_path, DAMAGE)
    env = env_for(tmp_path)
    run_cli("execute", tf, env=env, check=0)
    ns = taskflow.init(str(tf))
    path = Store(str(tmp_path / "taskfile.taskflow")).result_path(ns.b.hash)
    data = bytearray(open(path, "rb").read())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[-3] ^= 0xFF
    with open(path, "wb") as f:
        f.write(data)
    with pytest.raises(taskflow.CorruptResultError, match=path):
        taskflow.value(ns.b)
    # The consumer must read the damaged result again: remove its own result.
    os.unlink(Store(str(tmp_path / "taskfile.taskflow")).result_path(ns.u.hash))
    proc = run_cli("execute", tf, env=env, check=0)
    assert "corrupt result" in proc.stderr and path in proc.stderr
    assert log_lines(tmp_path) == ["base 1000", "use", "base 1000", "use"]
    assert taskflow.value(ns.u) == sum(range(1000))



LEAVES = LOGGING + """
@TaskGenerator
def leaf(i):
    note("leaf", i)
    return list(range(100 * i))

leaves = [leaf(i) for i in range(1, 7)]
"""


@pytest.mark.parametrize("damage, jobs", [("flip", "1"), ("truncate", "2")])
def test_verify_finds_damaged_results_that_no_task_reads(tmp_path, damage, jobs):
    import taskflow
    from taskflow.stores.folder import FolderStore as Store

    tf = write_taskfile(tmp_path, LEAVES)
    env = env_for(tmp_path)
    run_cli("execute", tf, env=env, check=0)
    ns = taskflow.init(str(tf))
    path = Store(str(tmp_path / "taskfile.taskflow")).result_path(ns.leaves[3].hash)
    data = bytearray(open(path, "rb").read())
    if damage == "truncate":
        data = data[:-10]
    else:
        data[-3] ^= 0xFF
    with open(path, "wb") as f:
        f.write(data)
    run_cli("execute", tf, env=env, check=0)  # without --verify, nothing reads it: nothing runs
    assert len(log_lines(tmp_path)) == 6
    proc = run_cli("execute", tf, "--verify", "--jobs", jobs, env=env, check=0)
    assert path in proc.stderr
    assert log_lines(tmp_path)[6:] == ["leaf 4"]
    assert taskflow.value(ns.leaves[3]) == list(range(400))
    run_cli("check", tf, "--verify", check=0)
    # check --verify finds it too, moves it aside and says what comes next.
    with open(path, "wb") as f:
        f.write(data)
    proc = run_cli("check", tf, "--verify", check=1)
    assert f"damaged: corrupt result {path}" in proc.stderr
    assert f"run `taskflow execute {tf}` to compute taskfile.leaf again" in proc.stderr
    assert not os.path.exists(path)
    assert len(os.listdir(tmp_path / "taskfile.taskflow" / "damaged")) == 2
    run_cli("check", tf, check=1)
    run_cli("execute", tf, env=env, check=0)
    assert log_lines(tmp_path)[7:] == ["leaf 4"]
    run_cli("check", tf, "--verify", check=0)


def test_taskfile_errors_exit_2_with_location(tmp_path):
    bad = write_taskfile(tmp_path, "from taskflow import Task\nx = (\n", name="broken.py")
    proc = run_cli("execute", bad, check=2)
    assert f"{bad}:2: syntax error" in proc.stderr
    assert "Traceback" not in proc.stderr

    raising = write_taskfile(tmp_path, "a = 1\nb = 2\nraise RuntimeError('no data dir')\n", name="raising.py")
    proc = run_cli("execute", raising, check=2)
    assert f"{raising}:3: RuntimeError: no data dir" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_cli("execute", raising, "--debug", check=1)
    assert "Traceback" in proc.stderr

    proc = run_cli("execute", tmp_path / "missing.py", check=2)
    assert "missing.py" in proc.stderr and "no such taskfile" in proc.stderr
    proc = run_cli("status", tmp_path / "missing.py", check=2)
    assert "no such taskfile" in proc.stderr


def test_unhashable_argument_exits_2(tmp_path):
    tf = write_taskfile(tmp_path, """
from taskflow import TaskGenerator

class Thing:
    pass

@TaskGenerator
def f(x):
    return x

t = f({"key": Thing()})
""")
    proc = run_cli("execute", tf, check=2)
    assert f"{tf}:11:" in proc.stderr  # the line declaring the task
    assert "taskfile.f" in proc.stderr and "argument 1['key']" in proc.stderr
    assert "__taskflow_hash__" in proc.stderr


def test_taskfile_arguments_after_double_dash(tmp_path):
    tf = write_taskfile(tmp_path, """
import sys
from taskflow import TaskGenerator

@TaskGenerator
def echo(args):
    return args

out = echo(sys.argv[1:])
""")
    run_cli("execute", tf, "--", "--fetch", "x", check=0)
    import taskflow
    ns = taskflow.init(str(tf), argv=["--fetch", "x"])
    assert taskflow.value(ns.out) == ["--fetch", "x"]


def test_store_option_and_environment(tmp_path):
    tf = write_taskfile(tmp_path, """
from taskflow import Task

def one():
    return 1

t = Task(one)
""")
    run_cli("execute", tf, "--store", tmp_path / "elsewhere", check=0)
    assert (tmp_path / "elsewhere" / "results").is_dir()
    assert not (tmp_path / "taskfile.taskflow").exists()
    run_cli("execute", tf, env={"TASKFLOW_STORE": str(tmp_path / "viaenv")}, check=0)
    assert (tmp_path / "viaenv" / "results").is_dir()
    assert status_json(tf, "--store", str(tmp_path / "elsewhere"))["total"]["finished"] == 1
    assert status_json(tf)["total"]["ready"] == 1


def test_check_command(tmp_path):
    tf = write_taskfile(tmp_path, """
from taskflow import Task

def one():
    return 1

t = Task(one)
""")
    proc = run_cli("check", tf, check=1)
    assert proc.stdout == ""
    run_cli("execute", tf, check=0)
    assert run_cli("check", tf, check=0).stdout == ""
    assert "Total" in run_cli("check", tf, "-v", check=0).stdout


def test_large_array_result_and_mmap(tmp_path):
    tf = write_taskfile(tmp_path, """
import numpy as np
from taskflow import TaskGenerator

@TaskGenerator
def big():
    return np.random.default_rng(1).random(25_000_000)

@TaskGenerator
def total(a):
    return float(a.sum())

arr = big()
s = total(arr)
""")
    run_cli("execute", tf, check=0)
    import time
    import numpy as np
    import taskflow
    ns = taskflow.init(str(tf))
    t0 = time.perf_counter()
    mapped = taskflow.value(ns.arr, mmap=True)
    elapsed = time.perf_counter() - t0
    assert mapped.shape == (25_000_000,) and not mapped.flags.writeable
    full = taskflow.value(ns.arr)
    assert np.array_equal(full, mapped)
    assert taskflow.value(ns.s) == pytest.approx(float(full.sum()))
    assert elapsed < 5  # a sanity bound; the speed figure lives in bench/


def test_taskfile_arguments_reach_every_worker_of_jobs(tmp_path):
    tf = write_taskfile(tmp_path, """
import argparse
from taskflow import TaskGenerator

parser = argparse.ArgumentParser()
parser.add_argument("--scale", type=int, required=True)
args = parser.parse_args()

@TaskGenerator
def times(i, k):
    return i * k

xs = [times(i, args.scale) for i in range(20)]
""")
    run_cli("execute", tf, "--jobs", "2", "--", "--scale", "3", check=0)
    import taskflow
    ns = taskflow.init(str(tf), argv=["--scale", "3"])
    assert taskflow.value(ns.xs) == [3 * i for i in range(20)]


PIDS = """
import os, time
from taskflow import TaskGenerator

@TaskGenerator
def whose(i):
    time.sleep(0.05)
    return os.getpid()

pids = [whose(i) for i in range(20)]
"""


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "spawned"])
def test_jobs_pool_runs_every_worker(tmp_path, fork):
    import taskflow
    from taskflow.cli import main
    from taskflow.execute import run_pool
    from taskflow.worker import Reporter

    def forked(rank, progress_fd, wake_fd):  # a worker as the command line would start it
        main.main(args=["execute", str(tf), "-q", "--rank", f"{rank}/2", "--progress-fd", str(progress_fd),
                        "--wake-fd", str(wake_fd)], prog_name="taskflow")

    import gc

    tf = write_taskfile(tmp_path, PIDS)
    code = run_pool(2, [str(tf), "-q"], Reporter(), child_main=forked if fork else None)
    assert code == 0
    assert gc.get_freeze_count() == 0, "what the pool froze for its workers is thawed in the caller"
    pids = taskflow.value(taskflow.init(str(tf)).pids)
    assert len(set(pids)) == 2, "both workers ran tasks"
    assert os.getpid() not in pids


def test_forked_jobs_workers_go_on_from_what_the_pool_parsed_and_opened(tmp_path, monkeypatch):
    """A worker forked by --jobs reads neither its command line nor the store's format again."""
    import logging

    import taskflow
    from taskflow.cli import base, main, running

    opened = tmp_path / "opened"
    real = running._open_store

    def recording(*args, **kwargs):
        with open(opened, "a") as f:
            f.write(f"{os.getpid()}\n")
        return real(*args, **kwargs)

    monkeypatch.setattr(running, "_open_store", recording)
    monkeypatch.setattr(base, "ends_without_teardown", False)
    logger = logging.getLogger("taskflow")
    monkeypatch.setattr(logger, "handlers", list(logger.handlers))
    monkeypatch.setattr(logger, "propagate", logger.propagate)
    monkeypatch.setattr(logger, "level", logger.level)
    tf = write_taskfile(tmp_path, PIDS)
    with pytest.raises(SystemExit) as ended:
        main.main(args=["execute", str(tf), "--jobs", "2", "-q"], prog_name="taskflow")
    assert ended.value.code == 0
    pids = taskflow.value(taskflow.init(str(tf)).pids)
    assert len(set(pids)) == 2 and os.getpid() not in pids
    assert opened.read_text().split() == [str(os.getpid())], "the store was opened by the pool only"


def test_forked_jobs_workers_leave_what_they_inherit_out_of_their_collections(tmp_path):
    """The pool freezes what it holds before it forks (gc.freeze), so that a worker's collections
    never walk, and copy, the pages it shares with the pool; what the worker makes is collected."""
    import taskflow

    body = """
import gc
from taskflow import TaskGenerator

@TaskGenerator
def frozen(i):
    return gc.get_freeze_count()

counts = [frozen(i) for i in range(4)]
"""
    (tmp_path / "pooled").mkdir()
    (tmp_path / "alone").mkdir()
    pooled = write_taskfile(tmp_path / "pooled", body)
    run_cli("execute", pooled, "--jobs", "2", "-q", check=0)
    assert min(taskflow.value(taskflow.init(str(pooled)).counts)) > 1000
    alone = write_taskfile(tmp_path / "alone", body)
    run_cli("execute", alone, "-q", check=0)
    assert taskflow.value(taskflow.init(str(alone)).counts) == [0, 0, 0, 0], "a worker alone freezes nothing"


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd to list open descriptors")
def test_a_forked_jobs_worker_holds_two_pipes_however_many_siblings_it_has(tmp_path):
    """Its progress pipe's write end and its own wake pipe's read end: not its siblings' pipes, which
    would cost a pool of hundreds of workers their descriptors, and hide from a worker that its pool
    is gone."""
    import taskflow

    tf = write_taskfile(tmp_path, """
import os, time
from taskflow import TaskGenerator

@TaskGenerator
def pipes(i):
    time.sleep(0.2)  # all workers alive at once
    fds = [int(n) for n in os.listdir("/proc/self/fd") if int(n) > 2]
    return sorted(os.readlink(f"/proc/self/fd/{fd}") for fd in fds if _is_pipe(fd))

def _is_pipe(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:")
    except OSError:  # the listing's own descriptor, gone
        return False

held = [pipes(i) for i in range(4)]
""")
    run_cli("execute", tf, "--jobs", "4", "-q", "--batch-time", "0", check=0)
    held = taskflow.value(taskflow.init(str(tf)).held)
    assert all(len(pipes) == 2 for pipes in held), held
    assert len({pipes[0] for pipes in held} | {pipes[1] for pipes in held}) >= 5, "one progress pipe, own wake pipes"


def test_spawned_jobs_workers_get_the_pools_options_in_long_form(tmp_path):
    """Where workers cannot be forked they start as `taskflow execute ARGS`: every option the pool
    was given reaches them, by its long name (click matches a short one as a long one first, and
    that failed match imports difflib to suggest names: 3 ms of every worker's start)."""
    from taskflow.cli import main, running
    from taskflow.stores import open_store

    store = open_store(str(tmp_path / "s.taskflow"))
    given = dict(keep_going=True, retry_failed=False, fsync=True, verify=False, verbose=False, debug=True,
                 wait=0.0, max_tasks=5, max_time=None, cpus=2, mem="1G", max_attempts=4)
    args = running._spawned_worker_args("tf.py", store, 30.0, 0.5, ("a.*", "b"), ("--in", "-x"), "/tmp/sh", **given)
    options = args[:args.index("--")]
    assert all(a.startswith("--") for a in options if a.startswith("-")), args
    ctx = main.commands["execute"].make_context("execute", list(args))
    p = ctx.params
    assert (p["taskfile"], p["args"], p["store"], p["lease"], p["batch_time"], p["targets"], p["share"]) == (
        "tf.py", ("--in", "-x"), store.url, 30.0, 0.5, ("a.*", "b"), "/tmp/sh")
    assert p["quiet"] and p["jobs"] == 1
    assert {k: p[k] for k in given} == given


def test_inputs_are_never_shared_between_consumers(tmp_path):
    # A task that changes its input in place must not change what another task receives,
    # whether the input comes from memory or from the store.
    tf = write_taskfile(tmp_path, """
import numpy as np
from taskflow import TaskGenerator

@TaskGenerator
def make():
    return np.zeros(1000)

@TaskGenerator
def scribble(a):
    a += 1
    return float(a.sum())

@TaskGenerator
def total(a, b):
    return float(a.sum() + b.sum())

base = make()
first = scribble(base)
both = total(base, base)
private = make()
only = scribble(private)
""")
    run_cli("execute", tf, check=0)
    import taskflow
    ns = taskflow.init(str(tf))
    assert taskflow.value(ns.first) == 1000.0
    assert taskflow.value(ns.both) == 0.0
    assert taskflow.value(ns.only) == 1000.0
    assert taskflow.value(ns.private).sum() == 0.0


def test_a_worker_imports_only_what_running_tasks_needs(tmp_path):
    """Every worker of an array job pays its imports before its first task: the modules only other
    paths need (spawning workers, file:// URLs, OpenSSL's hashes, large-result threads, file name
    patterns) stay unloaded in a worker that runs tasks to the end."""
    tf = write_taskfile(tmp_path, """
import atexit, sys
from taskflow import TaskGenerator

@TaskGenerator
def double(x):
    return 2 * x

doubled = [double(i) for i in range(5)]
atexit.register(lambda: open("modules.txt", "w").write("\\n".join(sorted(sys.modules))))
""")
    run_cli("execute", tf, cwd=tmp_path, check=0)
    loaded = set((tmp_path / "modules.txt").read_text().split())
    assert {"taskflow.execute", "taskflow.results"} <= loaded
    # What the interpreter loads before taskflow (an editable install's path finder brings pathlib,
    # and with it urllib.parse) is not the worker's doing.
    bare = subprocess.run([sys.executable, "-c", "import sys; print(*sys.modules)"], capture_output=True,
                          text=True, check=True).stdout.split()
    unneeded = {"subprocess", "urllib.parse", "_hashlib", "queue", "glob"} - set(bare)
    assert "subprocess" in unneeded and "_hashlib" in unneeded
    assert loaded.isdisjoint(unneeded), sorted(loaded & unneeded)


def test_jobs_workers_start_without_the_name_suggestions_of_a_failed_option_match(tmp_path):
    """click matches a short option as a long one first, and the failed match loads difflib to
    suggest names: the pool passes its workers long options, so none of them pays for that."""
    tf = write_taskfile(tmp_path, """
import os, sys
from taskflow import TaskGenerator

@TaskGenerator
def note(i):
    with open(f"modules.{os.getpid()}.txt", "w") as f:
        f.write("\\n".join(sorted(sys.modules)))
    return i

notes = [note(i) for i in range(4)]
""")
    run_cli("execute", tf, "--jobs", "2", "--batch-time", "0", cwd=tmp_path, check=0)
    lists = list(tmp_path.glob("modules.*.txt"))
    assert lists
    for path in lists:
        loaded = set(path.read_text().split())
        assert "taskflow.execute" in loaded
        assert "difflib" not in loaded, path.name
