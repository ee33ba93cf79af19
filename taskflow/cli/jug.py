"""`taskflow import-jug`: finished results of a jug store into the taskflow store."""
from __future__ import annotations

import click

from .base import _common, _configure_logging, _handle_errors, _open_store, log, main


@main.command("import-jug", epilog="Exit codes: 0 done (whatever could be imported), 2 usage error or the "
                                   "taskfile cannot be loaded, 4 the store could not be written.")
@click.argument("jugdir", metavar="JUGDIR")
@_common
@click.option("-n", "--dry-run", is_flag=True,
              help="Say what would be imported; import nothing (loading FILE still runs its CachedFunctions).")
@_handle_errors
def import_jug(jugdir: str, taskfile: str, args: tuple, store: str | None, dry_run: bool, verbose: bool,
               debug: bool) -> None:
    """Copy finished results from jug's JUGDIR (a *.jugdata folder) for the tasks of FILE.

    Only tasks whose jug key can be computed exactly are imported (docs/jug.md
    lists the argument types); the others are listed and left to compute.
    Each result is checked by reading it back from the taskflow store.

    \b
    Example:
      taskflow import-jug jugfile.jugdata jugfile.py --dry-run
      taskflow import-jug jugfile.jugdata jugfile.py
    """
    from ..jugimport import import_jug as run_import

    _configure_logging(verbose, False)
    s = _open_store(taskfile, store)
    log.debug("%s results of %s from %s into %s", "checking" if dry_run else "importing", taskfile, jugdir, s)
    report = run_import(jugdir, taskfile, s, args, dry_run=dry_run)
    if verbose:
        for name, h, key in report.imported:
            click.echo(f"{'would import' if dry_run else 'imported'} {name} ({h[:12]}) from {key}")
        for name, h, key in report.missing:
            click.echo(f"not finished under jug: {name} ({h[:12]}): no result under {key}")
    for name, h, reason in report.not_importable:
        click.echo(f"not importable: {name} ({h[:12]}): {reason}")
    click.echo(report.summary(dry_run))
