"""Take the screenshots of `taskflow web` in docs/ (PNG): a small run with a failure, tasks
running and a cluster preview (a stand-in `sbatch` on PATH, nothing is submitted).

    python3 scripts/web_screenshots.py            # writes docs/web-*.png

Needs Playwright and Debian's chromium (/usr/bin/chromium); Graphviz for the graph view.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"

TASKFILE = """
import os
import time
from taskflow import TaskGenerator

GATE = {gate!r}

@TaskGenerator
def load(i):
    time.sleep(0.02 * (i % 5))
    return list(range(i))

@TaskGenerator
def clean(xs):
    if len(xs) == 13:
        raise ValueError("row 13 has a negative count")
    while len(xs) > 30 and not os.path.exists(GATE):
        time.sleep(0.1)
    return [x for x in xs if x % 2]

@TaskGenerator
def summarise(parts):
    return sum(len(p) for p in parts)

raw = [load(i) for i in range(40)]
cleaned = [clean(r) for r in raw]
summary = summarise(cleaned)
"""


def main() -> None:
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="taskflow-shots-"))
    gate = work / "gate"
    tf = work / "pipeline.py"
    tf.write_text(textwrap.dedent(TASKFILE.format(gate=str(gate))))
    bin_dir = work / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text("#!/bin/sh\necho 4242\n")
    (bin_dir / "sbatch").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    taskflow = [sys.executable, "-m", "taskflow"]
    subprocess.run([*taskflow, "execute", str(tf), "-q", "--keep-going", "--jobs", "2", "--max-tasks", "20"],
                   env=env, check=False)
    workers = subprocess.Popen([*taskflow, "execute", str(tf), "-q", "--keep-going", "--jobs", "2"], env=env,
                               start_new_session=True)
    server = subprocess.Popen([*taskflow, "web", str(tf), "--refresh", "0.5"], stdout=subprocess.PIPE, text=True,
                              env=env)
    try:
        url = server.stdout.readline().strip()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                         headless=True)
            page = browser.new_page(viewport={"width": 1200, "height": 640})
            page.goto(url)
            time.sleep(4)  # two workers busy on the long tasks; a rate to show
            page.screenshot(path=str(DOCS / "web-overview.png"))
            page.click('a[data-view="running"]')
            page.screenshot(path=str(DOCS / "web-running.png"))
            page.click('a[data-view="failures"]')
            page.locator("#failures-list summary").first.click()
            page.screenshot(path=str(DOCS / "web-failures.png"))
            page.click('a[data-view="actions"]')
            page.select_option("#sub-scheduler", "slurm")
            page.fill("#sub-workers", "20")
            page.fill("#sub-time", "4h")
            page.fill("#sub-mem", "8G")
            page.click("#sub-preview")
            page.wait_for_selector("#sub-preview-box:not([hidden])")
            page.locator("#sub-preview-box").scroll_into_view_if_needed()
            page.screenshot(path=str(DOCS / "web-launch.png"), full_page=True)
            gate.touch()
            workers.wait(120)
            time.sleep(1)
            page.click('a[data-view="report"]')
            page.wait_for_selector('#report-table tr[data-name="pipeline.clean"]')
            page.screenshot(path=str(DOCS / "web-report.png"))
            page.click('a[data-view="graph"]')
            page.wait_for_timeout(1500)
            page.screenshot(path=str(DOCS / "web-graph.png"))
            browser.close()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
        if workers.poll() is None:
            os.killpg(workers.pid, signal.SIGTERM)
        shutil.rmtree(work, ignore_errors=True)
    print("wrote", ", ".join(sorted(p.name for p in DOCS.glob("web-*.png"))))


if __name__ == "__main__":
    main()
