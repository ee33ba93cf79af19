"""The HTTP server of `taskflow web`: the standard library's ThreadingHTTPServer.

Access: every request needs the token, once as `?token=` (the server then
sets a cookie) and afterwards from that cookie; anything else gets 403. A
POST also needs the CSRF value the page was given (header X-Taskflow-CSRF),
so another site the browser visits cannot make it press a button. With
`read_only` no POST is served at all. Requests are logged (`-v`) with the
token's value in their address replaced by ***.
"""
from __future__ import annotations

import hmac
import http.cookies
import json
import logging
import re
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import TaskflowError
from .actions import Actions
from .snapshot import Snapshots
from .static import asset, page

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20
# The token's value in a request's address (`?token=...`, as the browser sends it, maybe %-encoded).
_TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&#\s\"]*")


def new_token() -> str:
    return secrets.token_urlsafe(24)


def without_token(text: str) -> str:
    """`text` (a request line or path) with the token's value in its address replaced by ***: the
    token is printed once, to the terminal that started the page, and never written to a log."""
    return _TOKEN_IN_QUERY.sub(r"\1***", text)


class WebServer(ThreadingHTTPServer):
    daemon_threads = True  # a browser keeping a connection open does not hold up Ctrl-C

    def __init__(self, address: tuple[str, int], snapshots: Snapshots, token: str, read_only: bool):
        super().__init__(address, _Handler)
        self.snapshots = snapshots
        self.actions = Actions(snapshots)
        self.token = token
        self.csrf = secrets.token_urlsafe(24)
        self.read_only = read_only
        self.cookie_name = f"taskflow_token_{self.server_address[1]!s}"  # cookies ignore ports: one per server

    def url(self, host: str | None = None) -> str:
        shown = host or str(self.server_address[0])
        if ":" in shown:
            shown = f"[{shown}]"
        return f"http://{shown}:{self.server_address[1]}/?token={self.token}"

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="taskflow-web", daemon=True)
        thread.start()
        return thread


class _Handler(BaseHTTPRequestHandler):
    server: WebServer
    server_version = "taskflow-web"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), without_token(format % args))

    # -- access ------------------------------------------------------------

    def _authorised(self, query: dict) -> tuple[bool, bool]:
        """(token right, came in the query: set the cookie)."""
        token = self.server.token
        given = query.get("token", [None])[0]
        if given is not None and hmac.compare_digest(given.encode(), token.encode()):
            return True, True
        cookies = http.cookies.SimpleCookie()
        try:
            cookies.load(self.headers.get("Cookie", ""))
        except http.cookies.CookieError:
            return False, False
        morsel = cookies.get(self.server.cookie_name)
        return morsel is not None and hmac.compare_digest(morsel.value.encode(), token.encode()), False

    def _send(self, status: int, body: bytes, content_type: str, set_cookie: bool = False,
              extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")  # the token in the address stays here
        if set_cookie:
            self.send_header("Set-Cookie", f"{self.server.cookie_name}={self.server.token}; Path=/; HttpOnly; "
                                           "SameSite=Strict")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any, set_cookie: bool = False) -> None:
        self._send(status, json.dumps(data).encode(), "application/json", set_cookie)

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    # -- GET ---------------------------------------------------------------

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        ok, from_query = self._authorised(query)
        if not ok:
            self._send(HTTPStatus.FORBIDDEN, b"403: this page needs its access token: open the address "
                                             b"`taskflow web` printed\n", "text/plain; charset=utf-8")
            return
        snaps = self.server.snapshots
        try:
            path = url.path
            if path in ("/", "/index.html") or path.startswith("/task/"):
                body = page(csrf=self.server.csrf, read_only=self.server.read_only).encode()
                self._send(HTTPStatus.OK, body, "text/html; charset=utf-8", set_cookie=from_query)
            elif path.startswith("/assets/"):
                found = asset(path[len("/assets/"):])
                if found is None:
                    self._error(HTTPStatus.NOT_FOUND, f"no such asset {path}")
                else:
                    self._send(HTTPStatus.OK, found[0], found[1], set_cookie=from_query)
            elif path == "/api/status":
                self._send(HTTPStatus.OK, snaps.status_json_text().encode(), "application/json", from_query)
            elif path == "/api/overview":
                data = dict(snaps.overview(), read_only=self.server.read_only)
                self._json(HTTPStatus.OK, data, from_query)
            elif path == "/api/running":
                o = snaps.overview()
                self._json(HTTPStatus.OK, {"running": o["running"], "stale": o["stale"]}, from_query)
            elif path == "/api/failed":
                o = snaps.overview()
                self._json(HTTPStatus.OK, {"failed": o["failed"], "total": o["failed_total"]}, from_query)
            elif path == "/api/report":
                self._json(HTTPStatus.OK, snaps.report(), from_query)
            elif path == "/api/graph":
                self._json(HTTPStatus.OK, snaps.graph(), from_query)
            elif path == "/api/show":
                target = query.get("target", [""])[0]
                self._json(HTTPStatus.OK, {"target": target, "text": snaps.show(target)}, from_query)
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no such page {path}")
        except TaskflowError as e:
            self._error(HTTPStatus.BAD_REQUEST, str(e))
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # a bug must not take the server down: say it, keep serving
            log.exception("error serving %s", without_token(self.path))
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(e).__name__}: {e}")

    do_HEAD = do_GET

    # -- POST --------------------------------------------------------------

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        ok, _ = self._authorised({})  # a POST never takes the token from its address
        if not ok:
            self._error(HTTPStatus.FORBIDDEN, "this page needs its access token")
            return
        given = self.headers.get("X-Taskflow-CSRF", "")
        if not hmac.compare_digest(given.encode(), self.server.csrf.encode()):
            self._error(HTTPStatus.FORBIDDEN, "missing or wrong CSRF value: reload the page")
            return
        if self.server.read_only:
            self._error(HTTPStatus.FORBIDDEN, "this page is read-only (taskflow web --read-only)")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._error(HTTPStatus.BAD_REQUEST, "bad request body length")
            return
        try:
            form = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(form, dict):
                raise ValueError("not an object")
        except ValueError:
            self._error(HTTPStatus.BAD_REQUEST, "the request body must be a JSON object")
            return
        actions = self.server.actions
        routes = {
            "/api/launch": lambda: actions.launch_local(form.get("jobs")),
            "/api/stop": lambda: actions.stop(bool(form.get("on", True))),
            "/api/retry": lambda: actions.retry(form.get("hashes")),
            "/api/invalidate": lambda: actions.invalidate(str(form.get("target", "")), bool(form.get("dry_run"))),
            "/api/cleanup": actions.cleanup,
            "/api/submit/preview": lambda: actions.preview_submit(form),
            "/api/submit": lambda: actions.submit(form.get("preview", "")),
        }
        route = routes.get(url.path)
        if route is None:
            self._error(HTTPStatus.NOT_FOUND, f"no such action {url.path}")
            return
        try:
            self._json(HTTPStatus.OK, route())
        except TaskflowError as e:
            self._error(HTTPStatus.BAD_REQUEST, str(e))
        except OSError as e:
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{e.filename or 'the store'}: {e.strerror}")
        except Exception as e:
            log.exception("error in %s", url.path)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(e).__name__}: {e}")
