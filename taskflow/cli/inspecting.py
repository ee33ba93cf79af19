"""Looking at a run: `taskflow status`, `check`, `report`, `show` and `graph`."""
from __future__ import annotations

import json
import sys

import click

from .base import (ExitCode, _common, _configure_logging, _diagnostic_options, _handle_errors, _open_store,
                   _store_option, main)


@main.command(epilog="Exit codes: 0 shown, 2 usage error or the taskfile cannot be loaded.")
@_common
@click.option("--json", "as_json", is_flag=True, help="Print counts as JSON.")
@click.option("--failed", "show_failed", is_flag=True, help="List failed tasks with their errors.")
@click.option("--running", "show_running", is_flag=True,
              help="List running tasks with their owner (host, pid, worker) and for how long.")
@click.option("--watch", "watch_every", is_flag=False, flag_value=2.0, type=float, default=None, metavar="[SECONDS]",
              help="Redraw every SECONDS (default 2) with progress bars, rate and time left, until all finish.")
@_handle_errors
def status(taskfile: str, args: tuple, store: str | None, as_json: bool, show_failed: bool,
           show_running: bool, watch_every: float | None, verbose: bool, debug: bool) -> None:
    """Count the tasks of each name: waiting, ready, running, finished, failed.

    \b
    Example:
      taskflow status taskfile.py --running
      taskflow status taskfile.py --watch 5
    """
    from ..statusreport import compute, dumps, running_lines, watch
    from ..taskfile import load

    _configure_logging(verbose, False)
    s = _open_store(taskfile, store)
    if watch_every is not None:
        watch(taskfile, s, args, max(watch_every, 0.2), sys.stdout, clear=sys.stdout.isatty())
        return
    loaded = load(taskfile, s, args)
    report = compute(loaded.tasks, s, loaded.complete, details=show_failed)
    if as_json:
        click.echo(dumps(report))
        return
    click.echo(report.table())
    from ..jobs import status_lines
    for line in status_lines(s, report):
        click.echo(line)
    from ..workerstatus import status_lines as worker_status_lines
    for line in worker_status_lines(s, loaded.tasks, report.ready_hashes):
        click.echo(line)
    if show_running:
        lines = running_lines(report)
        click.echo("\n".join(lines) if lines else "no task is running")
    if show_failed:
        for task, record in report.failed:
            tries = f" (after {record['attempts']} attempts)" if record.get("earlier") else ""
            click.echo(f"{task.name} {task.hash[:12]}: {record.get('type', '?')}: {record.get('message', '')}{tries}"
                       f"\n    on {record.get('host', '?')}; traceback in {s.location('failure', task.hash)}")
        if not report.failed:
            click.echo("no task failed")


@main.command(epilog="Exit codes: 0 all finished, 1 not all finished (or a damaged result with --verify), "
                     "2 usage error.")
@_common
@click.option("--verify", is_flag=True,
              help="Also read every finished result and check its checksum; move damaged ones to "
                   "STORE/damaged/ (the next execute computes them again) and list them on stderr.")
@_handle_errors
def check(taskfile: str, args: tuple, store: str | None, verify: bool, verbose: bool, debug: bool) -> None:
    """Exit 0 when every task is finished, 1 otherwise (silent unless -v or results were found damaged).

    Results this node's listing lacks but that a finished run, a journal or a
    dependent's result says exist are opened to be sure (a shared filesystem's
    caches can hide new files from a listing for a while).

    \b
    Example:
      taskflow check taskfile.py && echo done
      taskflow check taskfile.py --verify
    """
    from ..statusreport import confirmed, damage_hint

    _configure_logging(verbose, not verbose)
    s = _open_store(taskfile, store)
    loaded, report = confirmed(taskfile, s, args)
    if verbose:
        click.echo(report.table())
    elif report.damaged:
        click.echo(f"taskflow: {report.damaged} result(s) found damaged count as not finished: "
                   f"{damage_hint(s)} to compute them again", err=True)
    damaged = []
    if verify:
        from ..damage import mark, move_aside

        by_hash = {t.hash: t for t in loaded.tasks}
        for h, reason in s.damaged(t.hash for t in loaded.tasks if t.hash in report.finished_hashes):
            try:
                moved = move_aside(s, h)
            except OSError as e:
                # A read-only view: leave it in place, marked if the store takes that much.
                next_step = (f"marked for recomputation: {damage_hint(s)}" if mark(s, h, by_hash[h].name, reason)
                             else f"run `taskflow execute {s.taskfile} --verify` where the store can be written")
                click.echo(f"taskflow: damaged: {reason}; cannot move it to {s.location('damaged')} "
                           f"({e.strerror or e}); {next_step}", err=True)
                damaged.append(h)
                continue
            if moved is None:
                continue  # intact from a fresh open: this client's cache was stale
            damaged.append(h)
            click.echo(f"taskflow: damaged: {reason}; moved to {moved}; {damage_hint(s)} to compute "
                       f"{by_hash[h].name} again", err=True)
    sys.exit(ExitCode.OK if report.all_finished and not damaged else ExitCode.FAILED)


@main.command(epilog="Exit codes: 0 done, 2 usage error or the taskfile cannot be loaded.")
@_common
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--slowest", default=10, show_default=True, help="How many of the slowest tasks to list.")
@click.option("--html", "html_out", metavar="OUT.html",
              help="Write the overview, failures and report as one self-contained HTML file (no server needed).")
@click.option("--suggest", is_flag=True,
              help="Runtime and peak memory p50/p90/max per task name, a suggested resources= and submit "
                   "--time/--mem with a margin, and per array job what was asked against what was used.")
@_handle_errors
def report(taskfile: str, args: tuple, store: str | None, as_json: bool, slowest: int, html_out: str | None,
           suggest: bool, verbose: bool, debug: bool) -> None:
    """Per task name: how many finished, run times, peak memory, hosts; the slowest tasks.

    \b
    Example:
      taskflow report taskfile.py --slowest 5
      taskflow report taskfile.py --html run.html
      taskflow report taskfile.py --suggest
    """
    from ..report import report as make_report
    from ..taskfile import load

    _configure_logging(verbose, False)
    s = _open_store(taskfile, store)
    if html_out is not None:
        from ..web.static import write_report

        click.echo(f"wrote {write_report(taskfile, s, args, html_out, slowest)}")
        return
    loaded = load(taskfile, s, args)
    rep = make_report(loaded.tasks, s, slowest)
    if suggest:
        from ..suggest import suggest as make_suggestions

        found = make_suggestions(rep, s)
        click.echo(json.dumps(found.to_json(), indent=1) if as_json else found.table())
        return
    click.echo(json.dumps(rep.to_json(), indent=1) if as_json else rep.table())


@main.command(epilog="Exit codes: 0 shown, 2 no such task, usage error or the taskfile cannot be loaded.")
@click.argument("taskfile", metavar="FILE")
@click.argument("target")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@_store_option
@_diagnostic_options
@_handle_errors
def show(taskfile: str, target: str, args: tuple, store: str | None, verbose: bool, debug: bool) -> None:
    """Everything known about a task: arguments, dependencies, state, metadata, traceback.

    TARGET is a pattern (every task it matches: a name, the part after the
    last dot, a shell glob or /REGEX/, as for --target), PATTERN[i] (the i-th
    task it matches, in declaration order) or a hash prefix.

    \b
    Example:
      taskflow show taskfile.py 'countwords[3]'
    """
    from ..report import describe, find
    from ..taskfile import load

    _configure_logging(verbose, False)
    s = _open_store(taskfile, store)
    loaded = load(taskfile, s, args)
    click.echo("\n\n".join(describe(t, loaded.tasks, s) for t in find(loaded.tasks, target)))


@main.command(epilog="Exit codes: 0 written, 2 usage error, no Graphviz for .svg/.png (the .dot is written), "
                     "or the taskfile cannot be loaded.")
@_common
@click.option("-o", "--output", required=True, metavar="FILE", help="graph.svg, graph.png or graph.dot.")
@click.option("--full", is_flag=True, help="One node per task instead of per task name (small graphs only).")
@_handle_errors
def graph(taskfile: str, args: tuple, store: str | None, output: str, full: bool, verbose: bool,
          debug: bool) -> None:
    """Draw the task graph, coloured by state (SVG/PNG need Graphviz: apt-get install graphviz).

    \b
    Example:
      taskflow graph taskfile.py -o graph.svg
    """
    from ..graph import collapsed_dot, full_dot, write
    from ..statusreport import compute, task_states
    from ..taskfile import load

    _configure_logging(verbose, False)
    s = _open_store(taskfile, store)
    loaded = load(taskfile, s, args)
    if full:
        source = full_dot(loaded.tasks, task_states(loaded.tasks, s)[0])
    else:
        source = collapsed_dot(loaded.tasks, compute(loaded.tasks, s, loaded.complete))
    click.echo(f"wrote {write(source, output)}")
