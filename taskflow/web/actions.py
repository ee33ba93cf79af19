"""What the page's buttons do, each through the library function behind its command.

Every action returns a dict for the page: what was done, and the command that
does the same from a shell (the page shows it, so that people learn it).
"""
from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .. import jobs
from ..errors import UsageError
from .snapshot import Snapshots

if TYPE_CHECKING:
    from ..submit import Prepared

log = logging.getLogger(__name__)

PREVIEWS_KEPT = 20


class Actions:
    """The actions on one store; cluster previews are kept so that Submit sends what was previewed."""

    def __init__(self, snapshots: Snapshots):
        self.snapshots = snapshots
        self._previews: dict[str, Prepared] = {}  # preview id -> what its Submit button submits
        self._lock = threading.Lock()

    @property
    def store(self):
        return self.snapshots.store

    def _cli(self, *words: str) -> str:
        store = ["--store", self.store.url]
        return shlex.join(["taskflow", words[0], self.snapshots.taskfile, *store, *words[1:]])

    def _done(self, result: dict) -> dict:
        self.snapshots.invalidate_cache()
        return result

    # -- local workers -----------------------------------------------------

    def launch_local(self, n: object) -> dict:
        """Start `taskflow execute FILE --jobs N` detached: it outlives the server, like any worker."""
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 1024:
            raise UsageError("the number of local workers must be between 1 and 1024")
        jobs.prepare_folders(self.store)
        log_path = os.path.join(jobs.logs_dir(self.store),
                                f"local-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}.log")
        argv = [sys.executable, "-m", "taskflow", "execute", self.snapshots.taskfile, "--store", self.store.url,
                "--jobs", str(n), "-q"]
        if self.snapshots.argv:
            argv += ["--", *self.snapshots.argv]
        with open(log_path, "ab") as out:
            # A session of its own: Ctrl-C on the server does not reach the workers.
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, cwd=os.path.dirname(self.snapshots.taskfile))
        threading.Thread(target=proc.wait, daemon=True).start()  # reaped, no zombie
        shell = self._cli("execute", "--jobs", str(n)) + (" -- " + shlex.join(self.snapshots.argv)
                                                          if self.snapshots.argv else "")
        return self._done({"message": f"started {n} local worker(s), pid {proc.pid}; output in {log_path}",
                           "pid": proc.pid, "log": log_path, "command": shell})

    # -- STOP --------------------------------------------------------------

    def stop(self, on: bool) -> dict:
        path = self.store.location("stop")
        self.store.request_stop(on)
        if on:
            return self._done({"message": "STOP created: workers finish their task and take no new one",
                               "command": f"touch {shlex.quote(path)}"})
        return self._done({"message": "STOP removed: new workers take tasks again",
                           "command": f"rm {shlex.quote(path)}"})

    # -- retry, invalidate, clean up ----------------------------------------

    def retry(self, hashes: Sequence[str] | None) -> dict:
        """Remove the failure records of the failed tasks given (all with None), so that they run again."""
        from ..invalidate import invalidate

        if hashes is not None and (not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes)):
            raise UsageError("hashes must be a list of task hashes")
        with self.snapshots.lock:
            loaded = self.snapshots.loaded()
            failed = self.store.failed_hashes()
            wanted = failed if hashes is None else set(hashes) & failed
            roots = [t for t in loaded.tasks if t.hash in wanted]
            done = invalidate(self.store, loaded.tasks, roots)
        n = sum(done.failures.values())
        return self._done({"message": f"removed {n} failure record(s): workers run those tasks again",
                           "removed": dict(done.failures),
                           "command": self._cli("execute", "--retry-failed")})

    def invalidate(self, pattern: str, dry_run: bool) -> dict:
        """Results and failure records removed for `pattern` and everything downstream (dry run: counted)."""
        from ..invalidate import invalidate
        from ..selection import select

        pattern = (pattern or "").strip()
        if not pattern:
            raise UsageError("give a task name, a glob or /REGEX/ to invalidate")
        with self.snapshots.lock:
            loaded = self.snapshots.loaded()
            roots = select(loaded.tasks, [pattern])
            done = invalidate(self.store, loaded.tasks, roots, dry_run=dry_run)
        verb = "would remove" if dry_run else "removed"
        lines = [f"{verb} {n} {name} result(s)" for name, n in done.results.items()]
        lines += [f"{verb} {n} {name} failure record(s)" for name, n in done.failures.items()]
        lines += [f"skipped {t.name} {t.hash[:12]}: a live worker is running it" for t in done.skipped_live]
        result = {"message": "\n".join(lines) or "nothing to remove", "results": dict(done.results),
                  "failures": dict(done.failures), "skipped_live": len(done.skipped_live),
                  "roots": len(roots), "dry_run": dry_run,
                  "command": self._cli("invalidate", "--target", pattern, *(["--dry-run"] if dry_run else []))}
        return result if dry_run else self._done(result)

    def cleanup(self) -> dict:
        """Remove stale claims of dead or frozen workers (`taskflow cleanup --locks`)."""
        from ..cleanup import cleanup

        with self.snapshots.lock:
            removed = cleanup(self.store, [], True, locks_only=True)
        lines = [f"removed stale claim {lock}" for lock in removed.stale_locks] + removed.summary("removed")
        if removed.kept_live:
            lines.append(f"kept {len(removed.kept_live)} live claim(s)")
        return self._done({"message": "\n".join(lines) or "nothing to remove",
                           "removed": len(removed.stale_locks), "command": self._cli("cleanup", "--locks")})

    # -- cluster -------------------------------------------------------------

    def preview_submit(self, form: dict) -> dict:
        """The job script and command `taskflow submit --dry-run` prints for these settings."""
        from ..submit import prepare, resolve_options

        def text(key: str) -> str | None:
            value = form.get(key)
            value = "" if value is None else str(value).strip()
            return value or None

        workers = text("workers")
        try:
            n = int(workers) if workers is not None else None
        except ValueError:
            raise UsageError(f"-n: {workers!r} is not a number of workers") from None
        extra = shlex.split(text("extra") or "")
        options = resolve_options(self.snapshots.taskfile, workers=n, scheduler=text("scheduler"),
                                  time=text("time"), mem=text("mem"), queue=text("queue"), extra=extra)
        prepared = prepare(self.snapshots.taskfile, self.store, options, taskfile_args=self.snapshots.argv)
        key = uuid.uuid4().hex
        with self._lock:
            self._previews[key] = prepared
            while len(self._previews) > PREVIEWS_KEPT:
                self._previews.pop(next(iter(self._previews)))
        words = ["submit"]
        for flag, key_ in (("-n", "workers"), ("--scheduler", "scheduler"), ("--time", "time"),
                           ("--mem", "mem"), ("--queue", "queue")):
            value = text(key_)
            if value:
                words += [flag, value]
        words.append("--dry-run")
        for a in self.snapshots.argv:
            words += ["--arg", a]
        cli = self._cli(*words) + (" -- " + shlex.join(extra) if extra else "")
        dry_run = (prepared.script_text
                   + f"# taskflow submit --dry-run: would write the script above to {prepared.script_path} and run:\n"
                   + prepared.shell_command() + "\n")
        return {"message": f"preview of a {prepared.scheduler.title} job: nothing is submitted until Submit",
                "preview": key, "scheduler": prepared.scheduler.name, "script": prepared.script_text,
                "script_path": prepared.script_path, "submit_command": prepared.shell_command(),
                "dry_run": dry_run, "command": cli}

    def submit(self, preview: str) -> dict:
        """Submit exactly what the preview `preview` showed; returns the job id."""
        from ..submit import submit

        with self._lock:
            prepared = self._previews.pop(str(preview), None)
        if prepared is None:
            raise UsageError("that preview is gone (the server restarted, or it was submitted already): "
                             "preview again")
        record = submit(prepared)
        return self._done({"message": f"submitted {record.describe()} with {record.workers} worker(s); "
                                      f"logs in {record.log_dir}",
                           "job_id": record.job_id, "scheduler": record.scheduler})
