"""What the page's buttons do, each through the library function behind its command.

Every action returns a dict for the page: what was done, and the command that
does the same from a shell (the page shows it, so that people learn it).
"""
from __future__ import annotations

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


PREVIEWS_KEPT = 20


class Actions:
    """The actions on one store; cluster previews are kept so that Submit sends what was previewed."""

    def __init__(self, snapshots: Snapshots):
        self.snapshots = snapshots
        self._previews: dict[str, list[Prepared]] = {}  # preview id -> the arrays its Submit button submits
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
                "--jobs", str(n), "--quiet"]
        if self.snapshots.argv:
            argv += ["--", *self.snapshots.argv]
        with open(self.store.modes.create(log_path), "ab") as out:
            # A session of its own: Ctrl-C on the server does not reach the workers.
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, cwd=os.path.dirname(self.snapshots.taskfile),
                                    env={**os.environ, **self.store.worker_environment()})
        threading.Thread(target=proc.wait, daemon=True).start()  # reaped, no zombie
        shell = self._cli("execute", "--jobs", str(n)) + (" -- " + shlex.join(self.snapshots.argv)
                                                          if self.snapshots.argv else "")
        return self._done({"message": f"started {n} local worker(s), pid {proc.pid}; output in {log_path}",
                           "pid": proc.pid, "log": log_path, "command": shell})

    # -- STOP --------------------------------------------------------------

    def stop(self, on: bool) -> dict:
        self.store.request_stop(on)
        if on:
            return self._done({"message": "STOP created: workers finish their task and take no new one",
                               "command": self._cli("stop")})
        return self._done({"message": "STOP removed: new workers take tasks again",
                           "command": self._cli("stop", "--undo")})

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
        """The job scripts and commands `taskflow submit --dry-run` prints for these settings: one
        array job per resource class of the unfinished tasks, as `taskflow submit` submits them."""
        from ..submit import prepare_classes, resolve_options

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
        with self.snapshots.lock:  # it loads the taskfile, as snapshots do
            classes = prepare_classes(self.snapshots.taskfile, self.store, options,
                                      taskfile_args=self.snapshots.argv)
        key = uuid.uuid4().hex
        with self._lock:
            self._previews[key] = classes
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
        several = len(classes) > 1
        scripts, dry_run = [], ""
        for p in classes:
            head = (f"# taskflow submit --dry-run: resource class {_about(p)}\n" if several else "")
            scripts.append(head + p.script_text)
            dry_run += (head + p.script_text + "# taskflow submit --dry-run: would write the script above to "
                        f"{p.script_path} and run:\n" + p.shell_command() + "\n")
        first = classes[0]
        what = (f"{len(classes)} {first.scheduler.title} array jobs, one per resource class" if several
                else f"a {first.scheduler.title} job")
        return {"message": f"preview of {what}: nothing is submitted until Submit",
                "preview": key, "scheduler": first.scheduler.name, "script": "\n".join(scripts),
                "script_path": ", ".join(p.script_path for p in classes),
                "submit_command": "\n".join(p.shell_command() for p in classes),
                "classes": [{"resources": p.resources.describe(), "workers": p.workers, "tasks": p.tasks,
                             "script": p.script_text, "script_path": p.script_path,
                             "submit_command": p.shell_command()} for p in classes],
                "dry_run": dry_run, "command": cli}

    def submit(self, preview: str) -> dict:
        """Submit exactly what the preview `preview` showed, one array job per resource class; returns
        the job ids."""
        from ..submit import submit

        with self._lock:
            classes = self._previews.pop(str(preview), None)
        if classes is None:
            raise UsageError("that preview is gone (the server restarted, or it was submitted already): "
                             "preview again")
        records = [submit(p) for p in classes]
        lines = [f"submitted {r.describe()} with {r.workers} worker(s)"
                 + (f" for {_about(p)}" if len(classes) > 1 else "") + f"; logs in {r.log_dir}"
                 for r, p in zip(records, classes, strict=True)]
        return self._done({"message": "\n".join(lines), "job_id": ", ".join(r.job_id for r in records),
                           "job_ids": [r.job_id for r in records], "scheduler": records[0].scheduler})


def _about(prepared: Prepared) -> str:
    return (f"{prepared.workers} worker(s) for {prepared.tasks} unfinished task(s) with "
            f"{prepared.resources.describe()}")
