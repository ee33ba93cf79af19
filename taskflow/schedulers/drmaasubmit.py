"""`taskflow submit --via drmaa`: the same array job, submitted through the site's libdrmaa.

DRMAA runs the job script as a program and reads none of its directives, so
the script's directives (`#$ ...`, `#SBATCH ...`, `#PBS ...`) and the extra
scheduler arguments become the job template's native specification, and
`runBulkJobs(1, N, 1)` makes the array. The job id is recorded as the submit
command's would be: its number.

The submission runs in a child process (drmaachild.py) whose environment
names the library (DRMAA_LIBRARY_PATH, found where the scheduler's package
puts it when unset) and, for a libdrmaa linked with libjemalloc (Debian's
gridengine-drmaa1.0), gives glibc room for jemalloc's static TLS
(GLIBC_TUNABLES=glibc.rtld.optional_static_tls=...), without which loading it
fails with "cannot allocate memory in static TLS block". Only that child gets
the tunable; the job's environment is the submitting one's.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence

from ..errors import SchedulerError
from .base import Scheduler

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'taskflow[drmaa]'"
STATIC_TLS = 16384  # bytes; libjemalloc needs more than glibc's default 512 (4096 was measured to do)
TUNABLE = "glibc.rtld.optional_static_tls"
TIMEOUT = 120.0


def find_library(scheduler: Scheduler, environ: Mapping[str, str]) -> str:
    """The libdrmaa to load: DRMAA_LIBRARY_PATH, else where `scheduler`'s DRMAA package installs it."""
    given = environ.get("DRMAA_LIBRARY_PATH")
    if given:
        if not os.path.isfile(given):
            raise SchedulerError(f"DRMAA_LIBRARY_PATH={given}: no such file", scheduler.name)
        return given
    for candidate in scheduler.drmaa_libraries:
        if "$SGE_ROOT" in candidate:
            if not environ.get("SGE_ROOT"):
                continue
            candidate = candidate.replace("$SGE_ROOT", environ["SGE_ROOT"])
        if os.path.isfile(candidate):
            return candidate
    where = ", ".join(scheduler.drmaa_libraries) or "(none known)"
    raise SchedulerError(f"--via drmaa: no libdrmaa for {scheduler.title} found (looked at {where}); set "
                         "DRMAA_LIBRARY_PATH to your site's libdrmaa.so (for Debian's Grid Engine: "
                         "apt-get install gridengine-drmaa1.0)", scheduler.name)


def loading_environment(environ: Mapping[str, str], library: str) -> tuple[dict[str, str], dict[str, str | None]]:
    """The child's environment, and what to set back once the library is loaded (for the job's -V)."""
    env = {**environ, "DRMAA_LIBRARY_PATH": library}
    restore: dict[str, str | None] = {}
    tunables = environ.get("GLIBC_TUNABLES", "")
    if TUNABLE not in tunables and "jemalloc" not in environ.get("LD_PRELOAD", ""):
        env["GLIBC_TUNABLES"] = f"{tunables}:{TUNABLE}={STATIC_TLS}" if tunables else f"{TUNABLE}={STATIC_TLS}"
        restore["GLIBC_TUNABLES"] = tunables or None
    return env, restore


def native_specification(scheduler: Scheduler, script: str, extra: Sequence[str] = ()) -> str:
    return shlex.join([*scheduler.directives(script), *extra])


def describe(scheduler: Scheduler, script_path: str, script: str, workers: int, extra: Sequence[str] = ()) -> list[str]:
    """What a DRMAA submission does, as a command-like list for dry runs and job records."""
    return ["drmaa", f"runBulkJobs(1-{workers})", "--native", native_specification(scheduler, script, extra),
            script_path]


def submit(scheduler: Scheduler, script_path: str, script: str, workers: int, extra: Sequence[str] = (),
           environ: Mapping[str, str] | None = None, python: str = sys.executable) -> list[str]:
    """Submit `script_path` as an array of `workers` through DRMAA; the ids of its tasks."""
    environ = dict(os.environ if environ is None else environ)
    library = find_library(scheduler, environ)
    env, restore = loading_environment(environ, library)
    request = {"command": script_path, "args": [], "cwd": os.getcwd(), "workers": workers,
               "native": native_specification(scheduler, script, extra), "restore": restore}
    log.debug("DRMAA (%s): runBulkJobs 1-%d of %s, native specification %r", library, workers, script_path,
              request["native"])
    try:
        proc = subprocess.run([python, "-m", "taskflow.schedulers.drmaachild"], input=json.dumps(request),
                              capture_output=True, text=True, timeout=TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        raise SchedulerError(f"the DRMAA submission gave no answer within {TIMEOUT:.0f}s; a job may have been "
                             f"submitted anyway: check the {scheduler.title} queue", scheduler.name) from None
    answer = _answer(proc.stdout)
    if "ids" in answer and proc.returncode == 0 and answer["ids"]:
        return [str(i) for i in answer["ids"]]
    raise _error(scheduler, library, answer, proc)


def _answer(stdout: str) -> dict:
    for line in reversed(stdout.splitlines()):
        try:
            found = json.loads(line)
        except ValueError:
            continue
        if isinstance(found, dict):
            return found
    return {}


def _error(scheduler: Scheduler, library: str, answer: dict, proc: subprocess.CompletedProcess) -> SchedulerError:
    message = str(answer.get("error", "")) or (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
    kind = answer.get("kind")
    if kind == "import":
        return SchedulerError(f"--via drmaa needs the drmaa package: {INSTALL_HINT}", scheduler.name)
    if kind == "library":
        return SchedulerError(f"--via drmaa: {message}", scheduler.name)
    if "static TLS" in message:
        preload = re.match(r"([^:]*libjemalloc[^:]*):", message)
        instead = f" (or LD_PRELOAD={preload.group(1)})" if preload else ""
        return SchedulerError(f"--via drmaa: loading {library} failed: {message}; set "
                              f"GLIBC_TUNABLES={TUNABLE}={STATIC_TLS}{instead} where taskflow runs",
                              scheduler.name)
    if kind == "load":
        return SchedulerError(f"--via drmaa: cannot load {library}: {message}", scheduler.name)
    return SchedulerError(f"{scheduler.title} refused the DRMAA submission: {message}", scheduler.name)
