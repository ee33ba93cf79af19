"""Unprivileged Unix users made for a test, and taskflow run as each of them.

`users` makes a group (tfshare) with two members (tfalice, tfbob) and a third
user outside it (tfeve), with useradd, and removes them again at the end of
the module. `Users.run(name, ...)` runs `python -m taskflow ...` (or any
command) as that user through `setpriv --reuid --regid --init-groups`, with a
Python that user can run: this interpreter if they may read it, else the
system's Python of the same version with taskflow's source folder and a
readable copy of its dependencies on PYTHONPATH.

Tests using it skip, saying why, when not run as root or without useradd,
groupadd or setpriv; with TASKFLOW_REQUIRE_USERS=1 (as in CI) they fail instead.
"""
from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REQUIRE = os.environ.get("TASKFLOW_REQUIRE_USERS") == "1"
GROUP = "tfshare"
MEMBERS = ("tfalice", "tfbob")
OUTSIDER = "tfeve"


def unavailable(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"{reason}; TASKFLOW_REQUIRE_USERS=1 says this test must run, not skip")
    pytest.skip(reason)


def missing_requirement() -> str | None:
    if os.geteuid() != 0:
        return "needs root to make users and run processes as them"
    for tool in ("useradd", "groupadd", "userdel", "groupdel", "setpriv"):
        if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
            return f"{tool} not found"
    return None


def _tool(name: str) -> str:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") or name


class Users:
    def __init__(self, base: Path):
        self.base = base  # a folder every user may enter; each user's HOME is in it
        self.made: list[str] = []
        self.group_made = False
        self.python = sys.executable
        self.pythonpath = ""

    def setup(self) -> None:
        try:
            grp.getgrnam(GROUP)
        except KeyError:
            subprocess.run([_tool("groupadd"), GROUP], check=True, capture_output=True)
            self.group_made = True
        for name in (*MEMBERS, OUTSIDER):
            try:
                pwd.getpwnam(name)
            except KeyError:
                extra = ["--groups", GROUP] if name in MEMBERS else []
                subprocess.run([_tool("useradd"), "--no-create-home", "--shell", "/bin/sh", "--user-group",
                                *extra, name], check=True, capture_output=True)
                self.made.append(name)
            home = self.home(name)
            home.mkdir(exist_ok=True)
            os.chown(home, pwd.getpwnam(name).pw_uid, pwd.getpwnam(name).pw_gid)
        self._find_python()

    def teardown(self) -> None:
        for name in self.made:
            subprocess.run([_tool("userdel"), name], capture_output=True)
            try:  # --user-group made it; userdel removes it on most systems, not all
                grp.getgrnam(name)
                subprocess.run([_tool("groupdel"), name], capture_output=True)
            except KeyError:
                pass
        if self.group_made:
            subprocess.run([_tool("groupdel"), GROUP], capture_output=True)

    def home(self, name: str) -> Path:
        return self.base / f"home-{name}"

    def uid(self, name: str) -> int:
        return pwd.getpwnam(name).pw_uid

    def gid(self) -> int:
        return grp.getgrnam(GROUP).gr_gid

    def run(self, name: str, *args: str, cwd: Path, env: dict | None = None, umask: int = 0o022,
            taskflow: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """`python -m taskflow ARGS` (`python ARGS` without `taskflow`) as user `name`, in `cwd`."""
        full = {k: v for k, v in os.environ.items() if not k.startswith("TASKFLOW_") or k == "TASKFLOW_REQUIRE_USERS"}
        full.update(HOME=str(self.home(name)), PYTHONDONTWRITEBYTECODE="1", USER=name, LOGNAME=name)
        if self.pythonpath:
            full["PYTHONPATH"] = self.pythonpath
        full.update(env or {})
        command = [self.python, *(["-m", "taskflow"] if taskflow else []), *args]
        return subprocess.run([_tool("setpriv"), f"--reuid={name}", f"--regid={name}", "--init-groups", *command],
                              cwd=cwd, env=full, capture_output=True, text=True, timeout=timeout,
                              preexec_fn=lambda: os.umask(umask))

    def _find_python(self) -> None:
        probe = ["-c", "import taskflow, click, cloudpickle"]
        if self.run(MEMBERS[0], *probe, cwd=self.base, taskflow=False).returncode == 0:
            return
        # This interpreter lives where others may not look (a venv in a private temp folder):
        # the system's Python of the same version, with taskflow and copies of its dependencies.
        import click
        import cloudpickle
        import taskflow
        try:
            import xxhash
        except ImportError:
            xxhash = None
        deps = self.base / "deps"
        for module in (click, cloudpickle, xxhash):
            if module is not None:
                package = os.path.dirname(module.__file__)
                shutil.copytree(package, deps / os.path.basename(package))
                for extra in Path(package).parent.glob(os.path.basename(package) + "*.so"):
                    shutil.copy(extra, deps)
        for dirpath, _, files in os.walk(deps):
            os.chmod(dirpath, 0o755)
            for f in files:
                os.chmod(os.path.join(dirpath, f), 0o644)
        self.pythonpath = os.pathsep.join([os.path.dirname(os.path.dirname(taskflow.__file__)), str(deps)])
        version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        self.python = shutil.which(version, path="/usr/local/bin:/usr/bin:/bin") or version
        got = self.run(MEMBERS[0], *probe, cwd=self.base, taskflow=False)
        if got.returncode != 0:
            unavailable(f"user {MEMBERS[0]} can run no {version} that imports taskflow here: {got.stderr.strip()}")


@pytest.fixture(scope="module")
def users():
    reason = missing_requirement()
    if reason:
        unavailable(reason)
    base = Path(tempfile.mkdtemp(prefix="taskflow-users-"))
    base.chmod(0o755)
    made = Users(base)
    try:
        made.setup()
        yield made
    finally:
        made.teardown()
        shutil.rmtree(base, ignore_errors=True)
