"""Keeping a store in order: `taskflow cleanup`, `pack`, `invalidate` and `doctor`."""
from __future__ import annotations

import json
import os
import sys

import click

from .base import (TARGET_HELP, ExitCode, _common, _configure_logging, _diagnostic_options, _duration, _handle_errors,
                   _open_store, _store_option, main)


@main.command(name="pack", epilog="Exit codes: 0 done, 2 usage error, 4 the store cannot be written.")
@_common
@_handle_errors
def pack_command(taskfile: str, args: tuple, store: str | None, verbose: bool, debug: bool) -> None:
    """Keep the small results of FILE's store together in few files, while workers run.

    Small result files and the packs of workers that stopped are merged into
    one new pack; results stay readable throughout. Large results stay one
    file each. A store that keeps results as keys (redis://) needs nothing.

    \b
    Example:
      taskflow pack taskfile.py
    """
    from ..pack import pack, summary

    _configure_logging(verbose, False)
    s = _open_store(taskfile, store)
    click.echo(summary(pack(s)))


@main.group(name="store")
def store_group() -> None:
    """Settings of a store as a whole."""


@store_group.command(name="share", epilog="Exit codes: 0 done, 2 usage error, 4 the store cannot be changed.")
@click.argument("taskfile", metavar="FILE")
@_store_option
@click.option("--group", required=True, metavar="NAME", help="The group whose members may write in the store.")
@_diagnostic_options
@_handle_errors
def store_share_command(taskfile: str, store: str | None, group: str, verbose: bool, debug: bool) -> None:
    """Let the members of group NAME work in FILE's store: its folders become
    setgid and group-writable, its files group-readable, and what is made in it
    later stays so, whatever anyone's umask. Others get no access.

    Run it as the store's owner, best while no worker runs: files that running
    workers make keep a private store's modes until they stop (running it
    again then fixes them). Files owned by other users are left as they are.

    \b
    Example:
      taskflow store share taskfile.py --group myproject
    """
    _configure_logging(verbose, False)
    s = _open_store(taskfile, store)
    counts = s.share_with_group(group)
    if counts["claims"]:
        click.echo(f"taskflow: warning: {counts['claims']} claims in the store: workers may be running, and what "
                   "they make until they stop keeps a private store's modes; run this again once they stopped",
                   err=True)
    others = f"; {counts['others']} owned by other users left as they are" if counts["others"] else ""
    click.echo(f"{s}: shared with group {group}: {counts['folders']} folders and {counts['files']} files "
               f"set{others}")


@store_group.command(name="new-key", epilog="Exit codes: 0 done, 2 usage error (the file exists).")
@click.argument("path", metavar="PATH")
@_diagnostic_options
@_handle_errors
def store_new_key_command(path: str, verbose: bool, debug: bool) -> None:
    """Make a signing key: a new file PATH, readable by you alone, holding 32
    random bytes. Never written over an existing file.

    \b
    Example:
      taskflow store new-key ~/.config/taskflow/project.key
    """
    from ..signing import new_key

    _configure_logging(verbose, False)
    key = new_key(path)
    click.echo(f"{key.path}: new key {key.id}; sign a store with it by --key-file {key.path} or "
               "TASKFLOW_KEY_FILE")


@store_group.command(name="sign", epilog="Exit codes: 0 done, 1 results left unsigned, 2 usage error, "
                                         "4 the store cannot be written.")
@click.argument("taskfile", metavar="FILE")
@_store_option
@click.option("--key-file", metavar="PATH", envvar="TASKFLOW_KEY_FILE", required=True,
              help="The key to sign with from now on [env TASKFLOW_KEY_FILE].")
@click.option("--old-key-file", metavar="PATH", help="The key the store was signed with until now.")
@click.option("--unsigned", is_flag=True, help="Also sign what no key signed (a store made before it had a key): "
                                               "you vouch for everything in it.")
@_diagnostic_options
@_handle_errors
def store_sign_command(taskfile: str, store: str | None, key_file: str, old_key_file: str | None, unsigned: bool,
                       verbose: bool, debug: bool) -> None:
    """Sign FILE's store with a new key: every result and failure record the old
    key signed (with --unsigned, also those no key signed) is signed again with
    the key of --key-file. Nothing is unpickled; a result neither key signed
    is left as it is, named, and the command ends with exit code 1.

    \b
    Example:
      taskflow store sign taskfile.py --key-file new.key --old-key-file old.key
    """
    from ..resign import sign_store
    from ..signing import read_key

    _configure_logging(verbose, False)
    s = _open_store(taskfile, store)
    key = read_key(key_file)
    s.use_key(key)
    done = sign_store(s, None if old_key_file is None else read_key(old_key_file), unsigned)
    for why in done.refused:
        click.echo(f"taskflow: left unsigned: {why}", err=True)
    click.echo(f"{s}: signed with key {key.id}: {done.results} results and {done.failures} failure records "
               f"signed again, {done.already} signed already, {len(done.refused)} left as they were")
    if done.refused:
        sys.exit(ExitCode.FAILED)


@main.command(epilog="Exit codes: 0 done, 2 usage error or the taskfile cannot be loaded, "
                     "4 the store cannot be written.")
@_common
@click.option("--locks", "locks_only", is_flag=True,
              help="Remove only stale claims of dead or frozen workers, and what their takeovers and releases "
                   "left in locks/.")
@click.option("-n", "--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@_handle_errors
def cleanup(taskfile: str, args: tuple, store: str | None, locks_only: bool, dry_run: bool,
            verbose: bool, debug: bool) -> None:
    """Remove stale claims, leftover temp files, and results no task of FILE produces.

    Never removes a live claim. Prints what it removed, then one line per kind
    with its count.

    \b
    Example:
      taskflow cleanup taskfile.py --dry-run
    """
    from ..cleanup import cleanup as run_cleanup
    from ..taskfile import load

    _configure_logging(verbose, False)
    s = _open_store(taskfile, store)
    if locks_only:
        tasks, complete = [], True
    else:
        loaded = load(taskfile, s, args)
        tasks, complete = loaded.tasks, loaded.complete
    removed = run_cleanup(s, tasks, complete, dry_run=dry_run, locks_only=locks_only)
    verb = "would remove" if dry_run else "removed"
    for label, items in (("stale claim", removed.stale_locks), ("result", removed.results),
                         ("failure record", removed.failures), ("suspect mark", removed.suspects),
                         ("completion record", removed.records), ("leftover lock file", removed.leftovers),
                         ("temp file", removed.tmp), ("doctor's scratch folder", removed.doctor),
                         ("record of worker", removed.workers)):
        for item in items:
            click.echo(f"{verb} {label} {item}")
    for line in removed.summary(verb):
        click.echo(line)
    if removed.kept_live:
        click.echo(f"kept {len(removed.kept_live)} live claim(s)")
    if not removed.count():
        click.echo("nothing to remove")


@main.command(epilog="Exit codes: 0 done, 2 usage error or the taskfile cannot be loaded, "
                     "4 the store cannot be written.")
@_common
@click.option("--target", "targets", multiple=True, metavar="PATTERN",
              help=f"Tasks matching PATTERN; {TARGET_HELP}. Repeatable.")
@click.option("--changed", is_flag=True, help="Results produced by other code or another version= of their function.")
@click.option("-n", "--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@_handle_errors
def invalidate(taskfile: str, args: tuple, store: str | None, targets: tuple, changed: bool, dry_run: bool,
               verbose: bool, debug: bool) -> None:
    """Remove results of matching tasks and of everything downstream of them.

    The next `execute` computes them again. Tasks a live worker is running are
    skipped and reported.

    \b
    Example:
      taskflow invalidate taskfile.py --target countwords --dry-run
      taskflow invalidate taskfile.py --changed
    """
    from ..errors import NoTaskMatchesError, UsageError
    from ..invalidate import changed as changed_tasks
    from ..invalidate import invalidate as run_invalidate
    from ..selection import select
    from ..taskfile import load

    _configure_logging(verbose, False)
    if not targets and not changed:
        raise UsageError("say what to invalidate: --target PATTERN, or --changed")
    s = _open_store(taskfile, store)
    loaded = load(taskfile, s, args)
    try:
        roots = select(loaded.tasks, targets) if targets else []
    except NoTaskMatchesError as e:
        if loaded.complete:
            raise
        raise NoTaskMatchesError(f"{e} (the taskfile stops at the barrier at {loaded.barrier_at}: "
                                 "tasks below it are not declared yet)", pattern=e.pattern) from None
    if changed:
        for group in changed_tasks(loaded.tasks, s).values():
            roots.extend(group)
    done = run_invalidate(s, loaded.tasks, roots, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for name, n in done.results.items():
        click.echo(f"{verb} {n} {name} result(s)")
    for name, n in done.failures.items():
        click.echo(f"{verb} {n} {name} failure record(s)")
    for t in done.skipped_live:
        click.echo(f"skipped {t.name} {t.hash[:12]}: a live worker is running it")
    if not done.results and not done.failures:
        click.echo("nothing to remove")
    if not loaded.complete:
        click.echo("note: the taskfile stops at a barrier; tasks below it were not examined", err=True)


DOCTOR_EPILOG = """\b
Exit codes:
  0    the filesystem gives what taskflow needs, and the lease is long enough
  1    something unsafe was found (see the lines marked unsafe)
  2    usage error
  4    the store could not be written
  130  interrupted with Ctrl-C or SIGTERM (scratch files removed)"""


@main.command(epilog=DOCTOR_EPILOG)
@click.argument("taskfile", metavar="[FILE]", required=False)
@_store_option
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.option("--lease", metavar="SECONDS", envvar="TASKFLOW_LEASE", callback=_duration("--lease"),
              default="300", show_default=True, help="The lease workers will use [env TASKFLOW_LEASE].")
@click.option("--peer", is_flag=True,
              help="Measure cache lag with another `taskflow doctor --peer` on this store, run on another node "
                   "at the same time (or as an array job of two).")
@click.option("--peer-path", metavar="DIR",
              help="Another path to the store's folder, as a second client sees it (another mount); measures "
                   "cache lag and races exclusive creates through both.")
@click.option("--peer-wait", metavar="DURATION", callback=_duration("--peer-wait"), default="5m",
              show_default=True, help="How long to wait for the other doctor of --peer.")
@_diagnostic_options
@_handle_errors
def doctor(taskfile: str | None, store: str | None, as_json: bool, lease: float, peer: bool,
           peer_path: str | None, peer_wait: float, verbose: bool, debug: bool) -> None:
    """Check that the store's filesystem gives what taskflow relies on, and measure it.

    Races exclusive creates, renames over a file being read, links onto an
    existing name, tries O_TMPFILE, measures time-stamp granularity, the
    filesystem's clock offset and (with --peer or --peer-path) how late
    another client sees a change; recommends a minimum lease and records it
    in STORE/doctor.json, which `execute` reads to warn about a short lease.
    Takes a few seconds (up to about half a minute on network filesystems).

    \b
    Example:
      taskflow doctor taskfile.py
      taskflow doctor --store /scratch/me/run1 --peer     # on two nodes at once
    """
    import signal

    from ..doctor import diagnose
    from ..errors import UsageError

    _configure_logging(verbose, False)
    if taskfile is None and store is None:
        raise UsageError("say which store to check: FILE, --store DIR or TASKFLOW_STORE")
    if peer and peer_path:
        raise UsageError("--peer and --peer-path both name the other client: give one")
    if peer_path is not None and not os.path.isdir(os.path.dirname(os.path.abspath(peer_path))):
        raise UsageError(f"--peer-path {peer_path}: no such folder, nor its parent")
    s = _open_store(taskfile or ".", store)

    def interrupt(signum, frame):
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, interrupt)  # so that scratch files go on SIGTERM too
    try:
        diagnosis = diagnose(s, lease, peer=peer, peer_path=peer_path, peer_wait=peer_wait)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if as_json:
        click.echo(json.dumps(diagnosis.to_json(), indent=1))
    else:
        click.echo("\n".join(diagnosis.lines()))
    if diagnosis.unsafe:
        sys.exit(ExitCode.FAILED)
