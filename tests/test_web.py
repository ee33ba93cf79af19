"""`taskflow web` in a real headless chromium: counts during a run of real workers, live updates,
failures, the buttons (launch, cluster submit with fake sbatch/qsub, Stop, Retry, Invalidate),
the token and CSRF checks, --read-only; and `report --html`."""
from __future__ import annotations

import json
import os
import re
import stat
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import run_cli, write_taskfile
from web_helpers import counts, eventually

# Each work(i) waits for GATE to exist (when a gate is named), so a test sees tasks running.
TASKFILE = """
import os
import time
from taskflow import Task

GATE = {gate!r}
FAIL_UNLESS = {fail_unless!r}

def work(i):
    while GATE and not os.path.exists(GATE):
        time.sleep(0.05)
    if i == 2 and FAIL_UNLESS and not os.path.exists(FAIL_UNLESS):
        raise ValueError(f"task {{i}} cannot work without " + FAIL_UNLESS)
    return i * i

def total(xs):
    return sum(xs)

squares = [Task(work, i) for i in range({n})]
result = Task(total, squares)
"""


def taskfile(folder: Path, n: int = 6, gate: str = "", fail_unless: str = "") -> Path:
    return write_taskfile(folder, TASKFILE.format(n=n, gate=gate, fail_unless=fail_unless), "tf.py")


def open_page(page, server, view: str = "") -> None:
    page.goto(server.url + (f"#{view}" if view else ""))
    page.wait_for_selector('#overview-table tr[data-name="Total"]', state="attached")


def test_counts_before_during_and_after_a_run_update_without_reload(tmp_path, page, servers):
    gate = tmp_path / "gate"
    tf = taskfile(tmp_path, gate=str(gate))
    server = servers(tf)
    open_page(page, server)
    assert counts(page, "tf.work") == {"waiting": 0, "ready": 6, "running": 0, "finished": 0, "failed": 0}
    assert counts(page, "tf.total")["waiting"] == 1
    page.evaluate("window.notReloaded = true")

    workers = run_cli_background(tf, "--jobs", "2")
    eventually(lambda: counts(page, "tf.work")["running"] == 2, what="2 tasks running on the page")
    page.click('a[data-view="running"]')
    rows = page.locator("#running-table tbody tr")
    eventually(lambda: rows.count() == 2, what="2 rows of running tasks")
    assert "tf.work" in rows.first.inner_text() and os.uname().nodename in rows.first.inner_text()

    gate.touch()
    assert workers.wait(120) == 0
    page.click('a[data-view="overview"]')
    eventually(lambda: counts(page, "Total")["finished"] == 7, what="all 7 finished on the page")
    assert counts(page, "tf.work") == {"waiting": 0, "ready": 0, "running": 0, "finished": 6, "failed": 0}
    assert page.evaluate("window.notReloaded") is True  # updated in place, not reloaded
    assert "100%" in page.locator('#overview-table tr[data-name="Total"]').inner_text()


def run_cli_background(tf: Path, *args: str):
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKFLOW_")}
    return subprocess.Popen([sys.executable, "-m", "taskflow", "execute", str(tf), "-q", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_a_failure_shows_its_message_and_expandable_traceback(tmp_path, page, servers):
    tf = taskfile(tmp_path, fail_unless=str(tmp_path / "fixed"))
    run_cli("execute", tf, "--keep-going", "-q", check=1)
    server = servers(tf)
    open_page(page, server, "failures")
    failure = page.locator("#failures-list .failure")
    assert failure.count() == 1
    assert "ValueError: task 2 cannot work without" in failure.inner_text()
    pre = failure.locator("details pre")
    assert not pre.is_visible()
    failure.locator("summary").click()
    assert pre.is_visible()
    assert 'raise ValueError(f"task {i} cannot work without "' in pre.inner_text()
    assert "Traceback (most recent call last)" in pre.inner_text()
    # The task's page: what `taskflow show` prints.
    failure.locator("strong a").click()
    page.wait_for_function("document.getElementById('task-text').textContent.includes('failed')")
    shown = run_cli("show", tf, "tf.work[2]", check=0).stdout.strip()
    assert page.locator("#task-text").inner_text().strip() == shown


def test_launching_two_local_workers_finishes_the_graph(tmp_path, page, servers):
    tf = taskfile(tmp_path, n=10)
    server = servers(tf)
    open_page(page, server, "actions")
    page.fill("#local-jobs", "2")
    assert page.locator("#cmd-launch").inner_text().endswith("--jobs 2")
    page.click("#launch-local")
    page.click('a[data-view="overview"]')
    eventually(lambda: counts(page, "Total")["finished"] == 11, what="all 11 finished on the page")
    run_cli("check", tf, check=0)
    logs = list((tmp_path / "tf.taskflow" / "jobs" / "logs").glob("local-*.log"))
    assert len(logs) == 1


FAKE = """#!/bin/sh
printf '%s\\n' "$*" >> {log}
{reply}
"""


def fake_scheduler(folder: Path, name: str, reply: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(FAKE.format(log=folder / "calls.log", reply=reply))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return folder


@pytest.mark.parametrize("scheduler,command,reply,job_id", [
    ("slurm", "sbatch", "echo 4242", "4242"),
    ("sge", "qsub", "echo 777.1-3:1", "777"),
])
def test_cluster_launch_previews_the_dry_run_then_shows_the_job_id(tmp_path, page, servers, scheduler, command,
                                                                     reply, job_id):
    tf = taskfile(tmp_path)
    bin_dir = fake_scheduler(tmp_path / "bin", command, reply)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    server = servers(tf, env=env)
    open_page(page, server, "actions")
    page.select_option("#sub-scheduler", scheduler)
    page.fill("#sub-workers", "3")
    page.fill("#sub-time", "1h")
    page.click("#sub-preview")
    page.wait_for_selector("#sub-preview-box:not([hidden])")
    script = page.locator("#sub-script").inner_text()
    shown_command = page.locator("#sub-command").inner_text()
    assert shown_command.startswith(f"taskflow submit {tf} --store ") and "--dry-run" in shown_command
    # Exactly what `taskflow submit --dry-run` prints, but for the script's random name.
    dry = run_cli("submit", tf, "-n", "3", "--scheduler", scheduler, "--time", "1h", "--dry-run", env=env, check=0)
    script_path = page.locator("#sub-script-path").inner_text()
    assert dry.stdout.split("# taskflow submit --dry-run")[0] == script + "\n" or \
        dry.stdout.split("# taskflow submit --dry-run")[0].rstrip("\n") == script.rstrip("\n")
    submit_command = page.locator("#sub-submit-command").inner_text()
    assert re.sub(r"\S+\.(sbatch|sge)$", "SCRIPT", submit_command) == \
        re.sub(r"\S+\.(sbatch|sge)$", "SCRIPT", dry.stdout.strip().splitlines()[-1])
    assert not (bin_dir / "calls.log").exists()  # nothing submitted by a preview
    page.click("#sub-submit")
    eventually(lambda: job_id in page.locator("#sub-result").inner_text(), what="the job id shown")
    calls = (bin_dir / "calls.log").read_text().splitlines()
    assert len(calls) == 1 and calls[0].endswith(script_path)
    record = json.loads((tmp_path / "tf.taskflow" / "jobs" / f"{scheduler}-{job_id}.json").read_text())
    assert record["workers"] == 3 and record["script"] == script_path
    eventually(lambda: f"{scheduler} job {job_id}: 0 of 3 workers active" in page.locator("#jobs").inner_text(),
               what="the job on the overview")


TWO_CLASSES = """
from taskflow import TaskGenerator

@TaskGenerator(resources={"mem": "2G"})
def small(i):
    return i

@TaskGenerator(resources={"mem": "8G", "cpus": 2})
def big(i):
    return i

smalls = [small(i) for i in range(6)]
bigs = [big(i) for i in range(2)]
"""


def test_cluster_launch_submits_one_array_per_resource_class_as_taskflow_submit_does(tmp_path, page, servers):
    tf = write_taskfile(tmp_path, TWO_CLASSES, "tf.py")
    # Each call answers its own job id: 4201, 4202...
    bin_dir = fake_scheduler(tmp_path / "bin", "sbatch", f"echo $((4200 + $(wc -l < {tmp_path / 'bin' / 'calls.log'})))")
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    server = servers(tf, env=env)
    open_page(page, server, "actions")
    page.select_option("#sub-scheduler", "slurm")
    page.fill("#sub-workers", "4")
    page.click("#sub-preview")
    page.wait_for_selector("#sub-preview-box:not([hidden])")
    script = page.locator("#sub-script").inner_text()
    dry = run_cli("submit", tf, "-n", "4", "--scheduler", "slurm", "--dry-run", env=env, check=0)
    heads = [line for line in dry.stdout.splitlines() if "resource class" in line]
    assert len(heads) == 2 and all(head in script for head in heads), (heads, script)
    assert page.locator("#sub-submit-command").inner_text().count("sbatch --parsable") == 2
    page.click("#sub-submit")
    eventually(lambda: "jobs 4201, 4202 submitted" in page.locator("#sub-result").inner_text(),
               what="both job ids shown")
    calls = (bin_dir / "calls.log").read_text().splitlines()
    assert len(calls) == 2
    records = [json.loads((tmp_path / "tf.taskflow" / "jobs" / f"slurm-{j}.json").read_text()) for j in (4201, 4202)]
    assert sorted(r["workers"] for r in records) == [1, 3], "4 workers shared out by the classes' work"


def test_a_scheduler_error_is_shown_as_it_is_and_nothing_is_recorded(tmp_path, page, servers):
    tf = taskfile(tmp_path)
    bin_dir = fake_scheduler(tmp_path / "bin", "sbatch",
                             "echo 'sbatch: error: Invalid partition name specified' >&2; exit 1")
    server = servers(tf, env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    open_page(page, server, "actions")
    page.select_option("#sub-scheduler", "slurm")
    page.fill("#sub-queue", "nosuch")
    page.click("#sub-preview")
    page.wait_for_selector("#sub-preview-box:not([hidden])")
    page.click("#sub-submit")
    eventually(lambda: "Invalid partition name specified" in page.locator("#sub-result").inner_text(),
               what="the scheduler's message")
    assert "sbatch rejected the job (exit 1)" in page.locator("#sub-result").inner_text()
    assert not list((tmp_path / "tf.taskflow" / "jobs").glob("*.json"))
    assert not list((tmp_path / "tf.taskflow" / "jobs").glob("*.sbatch"))


def test_stop_creates_the_stop_file_and_undo_removes_it(tmp_path, page, servers):
    tf = taskfile(tmp_path)
    server = servers(tf)
    stop = tmp_path / "tf.taskflow" / "STOP"
    open_page(page, server, "actions")
    page.click("#stop-on")
    eventually(stop.exists, what="STOP created")
    eventually(lambda: "STOP is set" in page.locator("#warnings").inner_text(), what="the STOP warning")
    # Workers started now take no task.
    run_cli("execute", tf, "-q", check=3)
    assert counts(page, "Total")["finished"] == 0
    page.click("#stop-off")
    eventually(lambda: not stop.exists(), what="STOP removed")
    eventually(lambda: "STOP is set" not in page.locator("#warnings").inner_text(), what="no STOP warning")


def test_retry_removes_failure_records_of_all_or_the_selected(tmp_path, page, servers):
    tf = write_taskfile(tmp_path, """
        from taskflow import Task

        def bad(i):
            raise RuntimeError(f"bad {i}")

        xs = [Task(bad, i) for i in range(3)]
    """, "tf.py")
    run_cli("execute", tf, "--keep-going", "-q", check=1)
    server = servers(tf)
    open_page(page, server, "failures")
    assert page.locator("#failures-list .failure").count() == 3
    hashes = [page.locator("#failures-list .failure").nth(i).get_attribute("data-hash") for i in range(3)]
    page.locator(f'input.select[data-hash="{hashes[0]}"]').check()
    page.click("#retry-selected")
    eventually(lambda: page.locator("#failures-list .failure").count() == 2, what="2 failures left")
    assert not (tmp_path / "tf.taskflow" / "failed" / f"{hashes[0]}.json").exists()
    assert counts(page, "tf.bad") == {"waiting": 0, "ready": 1, "running": 0, "finished": 0, "failed": 2}
    page.click("#retry-all")
    eventually(lambda: counts(page, "tf.bad")["ready"] == 3, what="all 3 ready again")
    assert "no task failed" in page.locator("#failures-list").inner_text()


def test_invalidate_previews_the_counts_then_removes(tmp_path, page, servers):
    tf = taskfile(tmp_path)
    run_cli("execute", tf, "-q", check=0)
    server = servers(tf)
    open_page(page, server, "actions")
    page.fill("#inv-target", "work")
    page.click("#inv-preview")
    page.wait_for_selector("#inv-preview-box:not([hidden])")
    preview = page.locator("#inv-counts").inner_text()
    assert "would remove 6 tf.work result(s)" in preview and "would remove 1 tf.total result(s)" in preview
    assert page.locator("#inv-command").inner_text().endswith("invalidate --target work --dry-run") or \
        "--target work --dry-run" in page.locator("#inv-command").inner_text()
    dry = run_cli("invalidate", tf, "--target", "work", "--dry-run", check=0).stdout
    assert preview.strip() == dry.strip()
    assert counts(page, "Total")["finished"] == 7  # the preview removed nothing
    page.click("#inv-apply")
    eventually(lambda: counts(page, "Total")["finished"] == 0, what="results removed")
    assert counts(page, "tf.work")["ready"] == 6


def _get(url: str, cookie: str | None = None) -> tuple[int, bytes, dict]:
    req = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def _post(url: str, body: dict, cookie: str | None, csrf: str | None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if cookie:
        headers["Cookie"] = cookie
    if csrf:
        headers["X-Taskflow-CSRF"] = csrf
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _csrf(html: bytes) -> str:
    config = re.search(rb'<script type="application/json" id="taskflow-config">(.*?)</script>', html, re.S)
    return json.loads(config.group(1))["csrf"]


def test_403_without_the_token_and_on_a_post_without_the_csrf_value(tmp_path, page, servers):
    tf = taskfile(tmp_path)
    server = servers(tf)
    for path in ("/", "/api/status", "/api/overview", "/assets/app.js", "/?token=wrong"):
        assert _get(server.base + path)[0] == 403, path
    status, html, headers = _get(server.url)
    assert status == 200
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
    assert _get(server.base + "/api/status", cookie)[0] == 200  # the cookie alone is enough afterwards
    assert _post(server.base + "/api/stop", {"on": True}, None, _csrf(html))[0] == 403
    assert _post(server.base + "/api/stop", {"on": True}, cookie, None)[0] == 403
    assert _post(server.base + "/api/stop", {"on": True}, cookie, "wrong")[0] == 403
    assert not (tmp_path / "tf.taskflow" / "STOP").exists()
    assert _post(server.base + "/api/stop", {"on": True}, cookie, _csrf(html))[0] == 200
    assert (tmp_path / "tf.taskflow" / "STOP").exists()
    # In the browser: the page's own fetch without the header is refused too.
    open_page(page, server)
    code = page.evaluate("fetch('/api/stop', {method: 'POST', body: '{\"on\": false}'}).then(r => r.status)")
    assert code == 403 and (tmp_path / "tf.taskflow" / "STOP").exists()
    fresh = page.context.browser.new_context()
    try:
        assert fresh.new_page().goto(server.base + "/").status == 403
    finally:
        fresh.close()


def test_read_only_shows_no_buttons_and_refuses_posts(tmp_path, page, servers):
    tf = taskfile(tmp_path, fail_unless=str(tmp_path / "fixed"))
    run_cli("execute", tf, "--keep-going", "-q", check=1)
    server = servers(tf, "--read-only")
    open_page(page, server, "failures")
    assert page.locator("button").count() == 0
    assert page.locator('a[data-view="actions"]').count() == 0
    assert page.locator("input.select").count() == 0
    assert page.locator("#failures-list .failure").count() == 1
    status, html, headers = _get(server.url)
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    for path, body in (("/api/stop", {"on": True}), ("/api/launch", {"jobs": 1}), ("/api/retry", {}),
                       ("/api/cleanup", {}), ("/api/invalidate", {"target": "work"})):
        code, answer = _post(server.base + path, body, cookie, _csrf(html))
        assert code == 403 and "read-only" in answer["error"], path
    assert not (tmp_path / "tf.taskflow" / "STOP").exists()
    assert json.loads(_get(server.base + "/api/status", cookie)[1])["total"]["failed"] == 1


def test_api_status_is_exactly_what_status_json_prints(tmp_path, servers):
    tf = taskfile(tmp_path, fail_unless=str(tmp_path / "fixed"))
    run_cli("execute", tf, "--keep-going", "-q", check=1)
    server = servers(tf)
    status, _, headers = _get(server.url)
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    assert _get(server.base + "/api/status", cookie)[1].decode() == run_cli("status", tf, "--json", check=0).stdout
    failed = json.loads(_get(server.base + "/api/failed", cookie)[1])
    assert failed["total"] == 1 and failed["failed"][0]["type"] == "ValueError"
    running = json.loads(_get(server.base + "/api/running", cookie)[1])
    assert running == {"running": [], "stale": []}
    report = json.loads(_get(server.base + "/api/report", cookie)[1])
    cli_report = json.loads(run_cli("report", tf, "--json", check=0).stdout)
    assert {k: report[k] for k in cli_report} == cli_report
    assert sum(report["histograms"]["tf.work"]["seconds"]["counts"]) == 5


def test_report_html_is_one_self_contained_file(tmp_path, page):
    tf = taskfile(tmp_path, fail_unless=str(tmp_path / "fixed"))
    run_cli("execute", tf, "--keep-going", "-q", check=1)
    out = tmp_path / "run.html"
    assert run_cli("report", tf, "--html", out, check=0).stdout.strip() == f"wrote {out}"
    text = out.read_text()
    assert not re.search(r'(src|href)="(https?:|/)', text)  # nothing to fetch
    page.route("**/*", lambda route: route.abort() if not route.request.url.startswith("file:") else route.continue_())
    page.goto(out.as_uri())
    assert counts(page, "tf.work") == {"waiting": 0, "ready": 0, "running": 0, "finished": 5, "failed": 1}
    assert page.locator("button").count() == 0
    page.click('a[data-view="failures"]')
    assert "ValueError: task 2 cannot work" in page.locator("#failures-list").inner_text()
    page.click('a[data-view="report"]')
    assert page.locator('#report-table tr[data-name="tf.work"]').locator("td").nth(1).inner_text() == "5"


def test_graph_view_draws_the_graph_or_says_why_not(tmp_path, page, servers):
    import shutil

    tf = taskfile(tmp_path)
    server = servers(tf)
    open_page(page, server, "graph")
    if shutil.which("dot"):
        page.wait_for_selector("#graph-svg svg")
        assert "tf.work" in page.locator("#graph-svg").inner_text()
    else:
        eventually(lambda: "Graphviz" in page.locator("#graph-note").inner_text(), what="the note")


def test_a_chosen_token_from_the_variable_or_a_file(tmp_path, servers):
    tf = taskfile(tmp_path)
    server = servers(tf, env={"TASKFLOW_WEB_TOKEN": "sesame-123"})
    assert server.token == "sesame-123"
    assert _get(server.base + "/api/status?token=sesame-123")[0] == 200
    token_file = tmp_path / "token"
    token_file.write_text("from-a-file\n")
    server = servers(tf, "--token-file", str(token_file))
    assert server.token == "from-a-file"
    assert _get(server.base + "/api/status?token=from-a-file")[0] == 200
    assert _get(server.base + "/api/status?token=sesame-123")[0] == 403


def test_a_remote_host_needs_a_chosen_token_or_allow_remote(tmp_path, servers):
    tf = taskfile(tmp_path)
    proc = run_cli("web", tf, "--host", "0.0.0.0", check=2)
    assert proc.stdout == ""
    assert proc.stderr.startswith("taskflow: error: --host 0.0.0.0 is reachable from other machines")
    assert "Traceback" not in proc.stderr
    server = servers(tf, "--host", "0.0.0.0", "--allow-remote")
    assert server.url.startswith("http://0.0.0.0:")
    assert "can launch jobs as you" in _stderr_line(server)
    proc = run_cli("web", tf, "--token-file", str(tmp_path / "missing"), check=2)
    assert "--token-file" in proc.stderr and "No such file" in proc.stderr


def _stderr_line(server) -> str:
    return server.proc.stderr.readline()


def test_a_broken_taskfile_is_one_line_and_exit_2(tmp_path):
    tf = write_taskfile(tmp_path, "raise RuntimeError('broken on purpose')\n", "tf.py")
    proc = run_cli("web", tf, check=2)
    assert proc.stdout == "" and "broken on purpose" in proc.stderr and "Traceback" not in proc.stderr


def test_the_code_changed_warning_shows_when_status_gives_it(tmp_path, page, servers):
    tf = taskfile(tmp_path)
    run_cli("execute", tf, "-q", check=0)
    tf.write_text(tf.read_text().replace("return i * i", "return i * i + 0"))
    assert "code changed: 6 finished tf.work result(s)" in run_cli("status", tf, check=0).stdout
    server = servers(tf)
    open_page(page, server)
    warning = page.locator("#warnings .code-changed")
    assert "code changed: 6 finished tf.work result(s)" in warning.inner_text()
    assert "invalidate" in warning.inner_text() and "--changed" in warning.inner_text()


def test_workers_launched_from_the_page_keep_going_after_ctrl_c(tmp_path, page, servers):
    gate = tmp_path / "gate"
    tf = taskfile(tmp_path, gate=str(gate))
    server = servers(tf)
    open_page(page, server, "actions")
    page.fill("#local-jobs", "2")
    page.click("#launch-local")
    page.click('a[data-view="overview"]')
    eventually(lambda: counts(page, "tf.work")["running"] == 2, what="2 tasks running")
    assert server.stop() == 130
    gate.touch()  # only now can the workers finish
    eventually(lambda: run_cli("check", tf).returncode == 0, timeout=120, what="the launched workers finish")
