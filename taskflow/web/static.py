"""The page's assets (package data, no CDN: it works offline), and the page as one file.

`page()` is what the server sends; `standalone()` is what `taskflow report --html`
writes: the same page with its CSS, script and data inlined, no server needed.
"""
from __future__ import annotations

import html
import json
from importlib import resources

TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".svg": "image/svg+xml", ".png": "image/png"}


def _read(name: str) -> bytes:
    return resources.files("taskflow.web").joinpath("assets").joinpath(name).read_bytes()


def asset(name: str) -> tuple[bytes, str] | None:
    """(content, content type) of an asset; None for a name that is not one."""
    if "/" in name or "\\" in name or name.startswith("."):
        return None
    ext = name[name.rfind("."):] if "." in name else ""
    if ext not in TYPES:
        return None
    try:
        return _read(name), TYPES[ext]
    except (FileNotFoundError, IsADirectoryError):
        return None


def _json_in_html(data) -> str:
    # Inside <script>, "</" could end the element: escape it (and < >, & for good measure).
    return (json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def page(csrf: str, read_only: bool, title: str = "taskflow") -> str:
    config = {"csrf": csrf, "readOnly": read_only, "static": False}
    head = ('<link rel="stylesheet" href="/assets/app.css">', '<script src="/assets/app.js" defer></script>')
    return _fill(config, head, title)


def standalone(overview: dict, report: dict, title: str) -> str:
    """One self-contained HTML file: overview, failures and report of a run."""
    config = {"csrf": "", "readOnly": True, "static": True, "overview": overview, "report": report}
    css = _read("app.css").decode()
    js = _read("app.js").decode().replace("</script", "<\\/script")
    return _fill(config, (f"<style>\n{css}</style>", f"<script>\n{js}</script>"), title)


def _fill(config: dict, head: tuple[str, str], title: str) -> str:
    template = _read("index.html").decode()
    return (template.replace("{{title}}", html.escape(title))
            .replace("{{styles}}", head[0])
            .replace("{{config}}", _json_in_html(config))
            .replace("{{script}}", head[1]))


def write_report(taskfile: str, store, argv, output: str, slowest: int = 10) -> str:
    """`taskflow report --html OUT`: the page of a run as one file; returns its path."""
    import os

    from ..errors import UsageError
    from .snapshot import Snapshots

    snapshots = Snapshots(taskfile, store, argv, slowest=slowest)
    text = standalone(snapshots.overview(), snapshots.report(), f"taskflow report: {os.path.basename(taskfile)}")
    tmp = f"{output}.tmp.{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, output)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise UsageError(f"cannot write {output}: {e.strerror}") from None
    return output
