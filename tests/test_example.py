"""The main example, examples/jugfile_mps, run end to end: two workers, one worker, the notebook."""
from __future__ import annotations

import hashlib
import http.server
import json
import shutil
import sys
import threading
import urllib.parse
from collections import Counter
from pathlib import Path

import pytest

import taskflow
from conftest import run_cli

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "jugfile_mps"
FILES = ("taskfile.py", "mpdata.py", "MPs.txt", "results.ipynb")
MPS = [line.strip() for line in (EXAMPLE / "MPs.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
PER_NAME = {"taskfile.getdata": len(MPS), "taskfile.countwords": len(MPS), "taskfile.addcounts": 1,
            "taskfile.divergence": len(MPS)}

# Loaded into every process of a run through PYTHONPATH: appends "name hash pid" to
# MPS_TASK_LOG each time a task function is called, so that the test can tell a
# task that ran twice from one that ran once.
SITECUSTOMIZE = """\
import os
import taskflow.task

_run = taskflow.task.Task.run


def run(self, lookup):
    fd = os.open(os.environ["MPS_TASK_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{self.name} {self.hash} {os.getpid()}\\n".encode())
    finally:
        os.close(fd)
    return _run(self, lookup)


taskflow.task.Task.run = run
"""


def copy_example(folder: Path) -> Path:
    """The example's files without a developer's documents/ or store, which would change the tasks."""
    folder.mkdir()
    for name in FILES:
        shutil.copy(EXAMPLE / name, folder / name)
    return folder / "taskfile.py"


def status_json(taskfile: Path, store: Path, *args: str) -> dict:
    proc = run_cli("status", taskfile, "--store", store, "--json", *(("--", *args) if args else ()), check=0)
    return json.loads(proc.stdout)


def finished(report: dict) -> dict[str, int]:
    return {name: row["finished"] for name, row in report["tasks"].items()}


class Run:
    def __init__(self, taskfile: Path, store: Path, log: Path):
        self.taskfile, self.store, self.log = taskfile, store, log


def execute(tmp: Path, taskfile: Path, jobs: int) -> Run:
    store, log, hooks = tmp / "store", tmp / "tasks.log", tmp / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
    run_cli("execute", taskfile, "--store", store, "--jobs", jobs, "-q",
            env={"PYTHONPATH": str(hooks), "MPS_TASK_LOG": str(log)}, timeout=60, check=0)
    return Run(taskfile, store, log)


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    return copy_example(tmp_path_factory.mktemp("example") / "jugfile_mps")


@pytest.fixture(scope="module")
def two_workers(example: Path, tmp_path_factory) -> Run:
    tmp = tmp_path_factory.mktemp("two")
    before = status_json(example, tmp / "store")
    assert {name: sum(row.values()) for name, row in before["tasks"].items()} == PER_NAME
    assert before["total"]["ready"] == len(MPS) and before["total"]["finished"] == 0
    return execute(tmp, example, jobs=2)


@pytest.fixture(scope="module")
def one_worker(example: Path, tmp_path_factory) -> Run:
    return execute(tmp_path_factory.mktemp("one"), example, jobs=1)


def test_two_workers_run_every_task_exactly_once(two_workers: Run):
    report = status_json(two_workers.taskfile, two_workers.store)
    assert finished(report) == PER_NAME
    assert report["total"] == {"waiting": 0, "ready": 0, "running": 0, "finished": sum(PER_NAME.values()),
                               "failed": 0}

    runs = [line.split() for line in two_workers.log.read_text().splitlines()]
    repeated = [h for h, n in Counter(h for _, h, _ in runs).items() if n > 1]
    assert not repeated, f"tasks that ran more than once: {repeated[:5]}"
    assert Counter(name for name, _, _ in runs) == PER_NAME
    assert len({pid for _, _, pid in runs}) == 2  # both workers took part
    ns = taskflow.init(str(two_workers.taskfile), store=str(two_workers.store))
    declared = {t.hash for t in [*ns.documents, *ns.counts, ns.corpus, *ns.results]}
    assert {h for _, h, _ in runs} == declared


def test_results_are_the_same_with_one_worker(two_workers: Run, one_worker: Run):
    assert finished(status_json(one_worker.taskfile, one_worker.store)) == PER_NAME
    assert len(one_worker.log.read_text().splitlines()) == sum(PER_NAME.values())

    def load(run: Run):
        ns = taskflow.init(str(run.taskfile), store=str(run.store))
        return taskflow.value([ns.documents, ns.counts, ns.corpus, ns.results])

    two = load(two_workers)
    one = load(one_worker)
    assert one[0] == two[0]
    for (words1, n1), (words2, n2) in zip(one[1], two[1]):
        assert words1.tolist() == words2.tolist() and n1.tolist() == n2.tolist()
    assert one[2][0].tolist() == two[2][0].tolist() and one[2][1].tolist() == two[2][1].tolist()
    assert one[3] == two[3]


def test_divergence_finds_the_topics_documents_were_generated_from(two_workers: Run):
    ns = taskflow.init(str(two_workers.taskfile), store=str(two_workers.store))
    import mpdata

    results = taskflow.value(ns.results)
    top = [word for mp, words in zip(ns.mps, results) for word, _ in words[:5]
           if word in {w for topic in mpdata.interests(mp) for w in mpdata.TOPICS[topic]}]
    assert len(top) >= 0.95 * 5 * len(MPS)
    assert all(len(words) == 10 and words[0][1] > words[-1][1] > 0 for words in results)


def test_notebook_shows_the_top_words(two_workers: Run, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")

    ns = taskflow.init(str(two_workers.taskfile), store=str(two_workers.store))
    results = taskflow.value(ns.results[:10])
    folder = two_workers.taskfile.parent
    monkeypatch.setenv("TASKFLOW_STORE", str(two_workers.store))
    notebook = nbformat.read(folder / "results.ipynb", as_version=4)
    nbclient.NotebookClient(notebook, timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}}).execute()

    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    for mp, words in zip(MPS[:10], results):
        assert f"{mp:<24} {', '.join(word for word, _ in words[:6])}\n" in text
    assert f"{len(MPS)} documents" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2
    status_table = next(o for o in outputs if "text/html" in o.get("data", {}))
    assert "taskfile.divergence" in status_table["data"]["text/plain"]


def test_options_and_documents_decide_which_tasks_there_are(two_workers: Run, tmp_path: Path):
    everything = finished(status_json(two_workers.taskfile, two_workers.store))
    # --delay only slows tasks down: the same tasks, all finished.
    assert finished(status_json(two_workers.taskfile, two_workers.store, "--delay", "5")) == everything
    # --fetch declares other getdata tasks, so nothing downstream of them is finished.
    fetched = status_json(two_workers.taskfile, two_workers.store, "--fetch")
    assert fetched["total"]["finished"] == 0 and fetched["total"]["ready"] == len(MPS)

    # A document in documents/ replaces one MP's generated text: that MP's tasks
    # and everything that reads the corpus must be computed again.
    taskfile = copy_example(tmp_path / "jugfile_mps")
    (taskfile.parent / "documents").mkdir()
    (taskfile.parent / "documents" / "Siôn Simon.txt").write_text("Rugby rugby rugby.", encoding="utf-8")
    changed = finished(status_json(taskfile, two_workers.store))
    assert changed == {"taskfile.getdata": len(MPS) - 1, "taskfile.countwords": len(MPS) - 1,
                       "taskfile.addcounts": 0, "taskfile.divergence": 0}


class _FakeWikipedia(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        title = query["titles"][0]
        page = {"title": title, "extract": f"{title} is a Welsh politician."} if title == "Siôn Simon" \
            else {"title": title, "missing": True}
        body = json.dumps({"query": {"pages": [page]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_fetch_reads_the_api_and_writes_whole_files(tmp_path: Path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    sys.modules.pop("mpdata", None)
    import mpdata

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeWikipedia)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = f"http://127.0.0.1:{server.server_address[1]}/w/api.php"
    try:
        assert mpdata.fetch_wikipedia("Siôn Simon", api=api) == "Siôn Simon is a Welsh politician."
        with pytest.raises(RuntimeError, match="no page"):
            mpdata.fetch_wikipedia("Nobody", api=api)
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(RuntimeError, match="cannot download"):
        mpdata.fetch_wikipedia("Siôn Simon", api=api, timeout=2)

    path = tmp_path / "documents" / "Siôn Simon.txt"
    mpdata.save_atomically(path, "text\n")
    assert path.read_text(encoding="utf-8") == "text\n"
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_generated_documents_are_deterministic_and_topics_disjoint(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    sys.modules.pop("mpdata", None)
    import mpdata

    words = [w for topic in mpdata.TOPICS.values() for w in topic]
    assert len(words) == len(set(words)) and not set(words) & set(mpdata.BACKGROUND)
    assert mpdata.generate("Siôn Simon") == mpdata.generate("Siôn Simon") != mpdata.generate("Lembit Öpik")
    # The same on every Python and every host. Changing the generator on purpose
    # changes these, and stores keep the old documents until
    # `taskflow invalidate taskfile.py --target getdata`.
    assert mpdata.interests("Richard Benyon") == ["pensions", "banking"]
    assert mpdata.interests("Lembit Öpik") == ["defence", "europe"]
    assert hashlib.sha256(mpdata.generate("Lembit Öpik").encode()).hexdigest()[:16] == "eceade20c3f6d98c"
