"""Shared by the `taskflow web` tests: the server as a real process, and a headless chromium.

The browser is Debian's chromium driven by Playwright (no browser download). Without
Playwright or chromium the browser tests skip, saying why; TASKFLOW_REQUIRE_BROWSER=1
(as in CI) makes that a failure.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

REQUIRE_BROWSER = os.environ.get("TASKFLOW_REQUIRE_BROWSER") == "1"
CHROMIUM = os.environ.get("TASKFLOW_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def no_browser(reason: str) -> None:
    if REQUIRE_BROWSER:
        pytest.fail(f"{reason}; TASKFLOW_REQUIRE_BROWSER=1 says the browser tests must run, not skip")
    pytest.skip(reason)


class WebServer:
    """`taskflow web FILE ARGS` in its own process; stopped with Ctrl-C (SIGINT) by pid."""

    def __init__(self, taskfile: Path, *args: str, env: dict | None = None):
        full = {k: v for k, v in os.environ.items() if not k.startswith("TASKFLOW_")
                or k in ("TASKFLOW_REQUIRE_SCHEDULERS", "TASKFLOW_REQUIRE_BROWSER")}
        full.update(env or {})
        self.proc = subprocess.Popen([sys.executable, "-m", "taskflow", "web", str(taskfile), "--refresh", "0.3",
                                      *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=full, cwd=taskfile.parent)
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.proc.wait(10)
            raise AssertionError(f"taskflow web printed {self.url!r}; stderr: {self.proc.stderr.read()}")
        self.base = self.url.split("?", 1)[0].rstrip("/")
        self.token = self.url.split("token=", 1)[1]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


def eventually(check: Callable[[], object], timeout: float = 60, what: str = "") -> object:
    """Until check() gives something true; its last value (or error) in the assertion otherwise."""
    end = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = check()
            if last:
                return last
        except AssertionError as e:
            last = e
        if time.monotonic() > end:
            raise AssertionError(f"not so after {timeout:.0f}s: {what} (last: {last!r})")
        time.sleep(0.2)


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        no_browser("Playwright is not installed (pip install playwright)")
    if not CHROMIUM:
        no_browser("no chromium on PATH (apt-get install chromium)")
    with sync_playwright() as pw:
        try:
            b = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        except Error as e:
            no_browser(f"chromium at {CHROMIUM} does not start under Playwright: {str(e).splitlines()[0]}")
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    yield p
    context.close()
    assert not errors, f"the page's script failed: {errors}"


@pytest.fixture
def servers():
    started: list[WebServer] = []

    def start(taskfile: Path, *args: str, env: dict | None = None) -> WebServer:
        s = WebServer(taskfile, *args, env=env)
        started.append(s)
        return s
    yield start
    for s in started:
        assert s.stop() == 130, s.proc.stderr.read()


def counts(page, name: str) -> dict[str, int]:
    """The overview row of task name `name` (or "Total") as shown."""
    row = page.locator(f'#overview-table tr[data-name="{name}"]')
    return {s: int(row.locator(f'[data-state="{s}"]').text_content())
            for s in ("waiting", "ready", "running", "finished", "failed")}
