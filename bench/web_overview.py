"""How long the `taskflow web` overview takes to render on a large graph, in headless chromium.

    python3 bench/web_overview.py                      # 100,000 tasks, half of them finished
    python3 bench/web_overview.py --tasks 20000 --workdir /dev/shm/tfweb

Builds a taskfile of N tasks (N-N/1000 `double` and N/1000 `total` tasks, each total over
1000 doubles), runs real workers until half are finished (kept in --workdir for the next
run), starts `taskflow web` and measures, each a median of --repeat runs:

  page      from the start of the navigation to the overview drawn, as the page itself
            measures it (performance.now()): the HTML, the script, one store scan (the
            refresh period has passed), the JSON, and the browser drawing the table
  wall      the same, timed from this script through Playwright (adds its round trips)
  api       GET /api/overview alone, after the refresh period: the scan and the JSON
  cached    GET /api/overview within the refresh period: what each further browser costs

Needs Playwright and a chromium (Debian's: /usr/bin/chromium).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

TASKFILE = """
from taskflow import TaskGenerator

@TaskGenerator
def double(x):
    return 2 * x

@TaskGenerator
def total(xs):
    return sum(xs)

doubles = [double(i) for i in range({doubles})]
totals = [total(doubles[i:i + 999]) for i in range(0, len(doubles), 999)]
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "taskflow-web-bench"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    os.makedirs(args.workdir, exist_ok=True)
    doubles = args.tasks - args.tasks // 1000
    tf = os.path.join(args.workdir, f"web{args.tasks}.py")
    source = TASKFILE.format(doubles=doubles)
    if not os.path.exists(tf) or open(tf).read() != source:
        with open(tf, "w") as f:
            f.write(source)
    taskflow = [sys.executable, "-m", "taskflow"]
    st = json.loads(subprocess.run([*taskflow, "status", tf, "--json"], capture_output=True, text=True,
                                   check=True).stdout)
    tasks = sum(st["total"].values())
    todo = tasks // 2 - st["total"]["finished"]
    if todo > 0:
        print(f"running {todo} tasks so that half of the {tasks} are finished ...", file=sys.stderr)
        subprocess.run([*taskflow, "execute", tf, "-q", "--jobs", "2", "--max-tasks", str(todo // 2 + 1)],
                       check=False)
    refresh = 0.5
    server = subprocess.Popen([*taskflow, "web", tf, "--refresh", str(refresh)], stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        base = url.split("?")[0].rstrip("/")
        page_times, wall_times, api_times, cached_times = [], [], [], []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, headless=True)
            page = browser.new_page()
            page.goto(url)  # sets the cookie; not measured
            page.wait_for_selector('#overview-table tr[data-name="Total"]', state="attached")
            cookie = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())
            for _ in range(args.repeat):
                time.sleep(refresh + 0.2)
                t0 = time.perf_counter()
                page.goto(base + "/")
                page.wait_for_function("window.taskflowFirstRender !== undefined")
                wall_times.append(time.perf_counter() - t0)
                page_times.append(page.evaluate("window.taskflowFirstRender") / 1000.0)
            for _ in range(args.repeat):
                time.sleep(refresh + 0.2)
                req = urllib.request.Request(base + "/api/overview", headers={"Cookie": cookie})
                t0 = time.perf_counter()
                body = urllib.request.urlopen(req).read()
                api_times.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                urllib.request.urlopen(req).read()
                cached_times.append(time.perf_counter() - t0)
            finished = json.loads(body)["total"]["finished"]
            browser.close()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
    print(f"{tasks} tasks ({finished} finished) in {args.workdir}")
    for label, values in (("page", page_times), ("wall", wall_times), ("api", api_times), ("cached", cached_times)):
        print(f"  {label:<7} median {statistics.median(values):.3f}s  (min {min(values):.3f}s, "
              f"max {max(values):.3f}s, n={len(values)})")


if __name__ == "__main__":
    main()
