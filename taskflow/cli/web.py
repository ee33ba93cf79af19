"""The command `taskflow web`, registered on the `taskflow` group."""
from __future__ import annotations

import ipaddress
import os
import sys
import time

import click

from .base import _common, _configure_logging, _handle_errors, _open_store, main

LOOPBACK = ("localhost",)
TOKEN_VARIABLE = "TASKFLOW_WEB_TOKEN"


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _chosen_token(token: str | None, token_file: str | None) -> str | None:
    from ..errors import UsageError

    if token_file is not None:
        try:
            with open(token_file, encoding="utf-8") as f:
                text = f.read().strip()
        except OSError as e:
            raise UsageError(f"--token-file {token_file}: {e.strerror}") from None
        if not text:
            raise UsageError(f"--token-file {token_file}: the file is empty")
        return text
    if token is not None and not token.strip():
        raise UsageError("--token / TASKFLOW_WEB_TOKEN is empty")
    return token.strip() if token else None


@main.command(epilog="Exit codes: 2 usage error or the taskfile cannot be loaded, 130 stopped with Ctrl-C.")
@_common
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback needs --token or --allow-remote.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port to listen on; 0 picks a free one.")
@click.option("--read-only", is_flag=True, help="Show the run only: no buttons, every POST refused.")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a browser.")
@click.option("--token", envvar=TOKEN_VARIABLE, metavar="TOKEN",
              help="Access token to use instead of a random one [env TASKFLOW_WEB_TOKEN]; "
                   "on the command line it shows in `ps`, prefer the variable or --token-file.")
@click.option("--token-file", metavar="FILE", help="Read the access token from FILE.")
@click.option("--allow-remote", is_flag=True,
              help="Listen on a non-loopback --host with a random token (anyone with the address can "
                   "launch jobs as you).")
@click.option("--refresh", type=click.FloatRange(min=0.2), default=2.0, show_default=True, metavar="SECONDS",
              help="Read the store at most once per SECONDS, whatever the number of browsers.")
@_handle_errors
def web(taskfile: str, args: tuple, store: str | None, host: str, port: int, read_only: bool, open_browser: bool,
        token: str | None, token_file: str | None, allow_remote: bool, refresh: float, verbose: bool,
        debug: bool) -> None:
    """Serve a page that shows the run live and launches workers.

    Prints the page's address with its access token as the first line, then
    serves until Ctrl-C (workers it launched keep going). From another
    machine, use an SSH tunnel rather than --host:
    `ssh -L 8800:127.0.0.1:8800 login-node`, then `taskflow web FILE --port 8800`
    on the login node and open the printed address on your machine.

    \b
    Example:
      taskflow web taskfile.py
      taskflow web taskfile.py --read-only --port 8800
    """
    from ..errors import UsageError
    from ..web.server import WebServer, new_token
    from ..web.snapshot import Snapshots

    _configure_logging(verbose, False)
    chosen = _chosen_token(token, token_file)
    # Read once, then out of this process's environment: the workers it launches and the jobs it
    # submits inherit that environment, and a scheduler keeps a job's (qsub -V: `qstat -j` shows it).
    os.environ.pop(TOKEN_VARIABLE, None)
    if not _is_loopback(host):
        if chosen is None and not allow_remote:
            raise UsageError(f"--host {host} is reachable from other machines: choose a token (--token-file, "
                             "TASKFLOW_WEB_TOKEN) or pass --allow-remote; an SSH tunnel to 127.0.0.1 is safer")
        click.echo(f"taskflow: warning: listening on {host}: whoever has the address with its token can "
                   f"{'see this run' if read_only else 'launch jobs as you'}", err=True)
    s = _open_store(taskfile, store)
    snapshots = Snapshots(taskfile, s, args, refresh=refresh)
    snapshots.loaded()  # a broken taskfile is an error now, not a page of errors
    try:
        server = WebServer((host, port), snapshots, chosen or new_token(), read_only)
    except OSError as e:
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    url = server.url()
    click.echo(url)
    sys.stdout.flush()
    click.echo(f"taskflow: serving {os.path.basename(taskfile)}{' read-only' if read_only else ''}; "
               "Ctrl-C stops the page (workers it launched keep going)", err=True)
    thread = server.serve_in_thread()
    if open_browser:
        import webbrowser
        webbrowser.open(url)
    try:
        while True:
            time.sleep(3600)  # Ctrl-C lands here: a sleep, not a lock, so nothing is left half-released
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
