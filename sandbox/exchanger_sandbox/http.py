"""The small HTTP toolkit every sandbox server is built on.

Real HTTP on loopback (stdlib ``ThreadingHTTPServer``, HTTP/1.1 keep-alive), a tiny router, JSON
helpers, and an admin API that injects faults (status codes, delays) and resets state, so that each
fake only has to describe its own endpoints.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from loguru import logger


@dataclass
class Request:
    """One HTTP request as the route functions see it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # from the route pattern

    def json(self) -> Any:
        """The body parsed as JSON (``None`` when empty); raises ``ValueError`` on bad JSON."""
        if not self.body:
            return None
        return json.loads(self.body.decode("utf-8"))

    def arg(self, name: str, default: str | None = None) -> str | None:
        """First value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: Any, content_type: str = "application/json") -> Response:
    """A JSON response; ``payload`` is serialised with UTF-8 kept readable."""
    body = json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")
    return Response(status=status, body=body, content_type=content_type)


def empty_response(status: int = 204) -> Response:
    return Response(status=status, body=b"", content_type="")


RouteFunction = Callable[[Request], Response]


@dataclass
class Fault:
    """An injected fault: answer ``status`` (or stall ``delay_s`` seconds) for the next ``count`` calls."""

    status: int | None
    count: int
    delay_s: float = 0.0
    body: Any = None
    path_contains: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # e.g. Retry-After
    raw: str | None = None  # answered verbatim instead of JSON: an HTML error page, garbage
    content_type: str = "application/json"  # of the answer, e.g. text/html for a proxy's page
    method: str = ""  # only requests of this method (a create POST, not the GET search of the same path)

    def response(self) -> Response:
        """The injected answer (``status`` is set): ``raw`` text as is, else ``body`` as JSON."""
        assert self.status is not None
        if self.raw is not None:
            response = Response(status=self.status, body=self.raw.encode("utf-8"), content_type=self.content_type)
        else:
            body = self.body if self.body is not None else {"error": "injected fault"}
            response = json_response(self.status, body, self.content_type)
        response.headers.update(self.headers)
        return response


class App:
    """Routes plus the fault injector and reset hook shared by every fake server.

    ``charset`` is appended to every ``Content-Type`` (real Bitrix24 and OpenProject send one; Camunda
    sends a bare ``application/json``, and Camunda's JS client accepts only that exact value).

    Admin endpoints (not part of any real API): ``POST /_admin/faults`` with
    ``{"status": 503, "count": 3, "delay_s": 0, "body": {...}, "path_contains": "", "method": "", "headers": {}}``
    (or ``"raw": "<html>…", "content_type": "text/html"`` for an answer that is not JSON: a 200 from a
    proxy's error page, garbage); ``DELETE /_admin/faults``, ``POST /_admin/reset``.
    """

    charset: str | None = "utf-8"

    def __init__(self, name: str, *, on_reset: Callable[[], None] | None = None) -> None:
        self.name = name
        self._routes: list[tuple[str, re.Pattern[str], RouteFunction]] = []
        self._faults: list[Fault] = []
        self._faults_lock = threading.Lock()
        self._on_reset = on_reset
        self.api_calls = 0  # API requests served (not /_admin/): what a benchmark counts per minute
        self.add_route("POST", "/_admin/faults", self._add_fault)
        self.add_route("DELETE", "/_admin/faults", self._clear_faults)
        self.add_route("POST", "/_admin/reset", self._reset)

    def route(self, method: str, pattern: str) -> Callable[[RouteFunction], RouteFunction]:
        """Decorator form of :meth:`add_route`."""

        def register(function: RouteFunction) -> RouteFunction:
            self.add_route(method, pattern, function)
            return function

        return register

    def add_route(self, method: str, pattern: str, function: RouteFunction) -> None:
        """``pattern`` is a path with ``{name}`` placeholders (one path segment each, percent-decoded
        before the route sees it: generated clients send ``invoice%3A1%3Aabc``)."""
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self._routes.append((method.upper(), re.compile(f"^{regex}$"), function))

    def inject_fault(self, fault: Fault) -> None:
        with self._faults_lock:
            self._faults.append(fault)

    def faults_pending(self) -> int:
        """Injected faults not yet used up (a test waits for 0: its slow call has started)."""
        with self._faults_lock:
            return sum(fault.count for fault in self._faults)

    def dispatch(self, request: Request) -> Response:
        if not request.path.startswith("/_admin/"):
            with self._faults_lock:
                self.api_calls += 1
            fault = self._take_fault(request.path, request.method)
            if fault is not None:
                if fault.delay_s:
                    time.sleep(fault.delay_s)
                if fault.status is not None:
                    return fault.response()
        allowed: list[str] = []
        for method, regex, function in self._routes:
            match = regex.match(request.path)
            if match is None:
                continue
            if method != request.method:
                allowed.append(method)
                continue
            request.params = {name: unquote(value) for name, value in match.groupdict().items()}
            return function(request)
        if allowed:
            return json_response(405, {"error": f"method {request.method} not allowed"})
        return self.not_found(request)

    def not_found(self, request: Request) -> Response:
        """Overridable answer for an unknown path."""
        return json_response(404, {"error": f"no such path: {request.path}"})

    def _take_fault(self, path: str, method: str) -> Fault | None:
        paths = (path, unquote(path))  # a fault names a path as written (Document_Заявка) or as sent (%D0%97…)
        with self._faults_lock:
            for fault in self._faults:
                if fault.count > 0 and any(fault.path_contains in p for p in paths) and fault.method in ("", method):
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _add_fault(self, request: Request) -> Response:
        spec = request.json() or {}
        self.inject_fault(
            Fault(
                status=spec.get("status"),
                count=int(spec.get("count", 1)),
                delay_s=float(spec.get("delay_s", 0.0)),
                body=spec.get("body"),
                path_contains=str(spec.get("path_contains", "")),
                headers={str(k): str(v) for k, v in (spec.get("headers") or {}).items()},
                raw=None if spec.get("raw") is None else str(spec["raw"]),
                content_type=str(spec.get("content_type") or "application/json"),
                method=str(spec.get("method") or "").upper(),
            )
        )
        return empty_response(204)

    def _clear_faults(self, request: Request) -> Response:
        with self._faults_lock:
            self._faults.clear()
        return empty_response(204)

    def _reset(self, request: Request) -> Response:
        self._clear_faults(request)
        if self._on_reset is not None:
            self._on_reset()
        return empty_response(204)


class _Headers(dict[str, str]):
    """Request headers keyed by lower-cased name; ``get`` ignores case like ``email.message.Message``."""

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)


# Limits of the request head, as in http.server / http.client.
_MAX_LINE = 65536
_MAX_HEADERS = 100


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler, tuned for throughput: a plain header parser instead of the email
    package, and each response written with a single send (head and body together)."""

    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    disable_nagle_algorithm = True  # small responses go out at once (no delayed-ACK stalls)
    app: App  # set on the per-server subclass

    def parse_request(self) -> bool:
        line: bytes = self.raw_requestline  # type: ignore[attr-defined]  # set by handle_one_request
        words = str(line, "iso-8859-1").rstrip("\r\n").split()
        if len(words) != 3 or words[2] not in ("HTTP/1.1", "HTTP/1.0"):
            return super().parse_request()  # the stdlib answers malformed or unusual requests
        self.command, self.path, self.request_version = words
        self.requestline = " ".join(words)
        if self.path.startswith("//"):
            self.path = "/" + self.path.lstrip("/")
        headers = _Headers()
        while True:
            line = self.rfile.readline(_MAX_LINE + 1)
            if len(line) > _MAX_LINE:
                self.send_error(431, "Line too long")
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = str(line, "iso-8859-1").partition(":")
            headers[name.strip().lower()] = value.strip()
            if len(headers) > _MAX_HEADERS:
                self.send_error(431, "Too many headers")
                return False
        self.headers = headers  # type: ignore[assignment]
        connection = headers.get("connection", "").lower()
        if self.request_version == "HTTP/1.1":
            self.close_connection = connection == "close"
        else:
            self.close_connection = connection != "keep-alive"
        if headers.get("expect", "").lower() == "100-continue" and self.request_version == "HTTP/1.1":
            return self.handle_expect_100()
        return True

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        try:
            response = self.app.dispatch(request)
        except Exception as exc:  # a bug in a fake must still answer, like a real server's 500
            logger.exception("{} sandbox: unhandled error on {} {}", self.app.name, self.command, self.path)
            response = json_response(500, {"error": f"{type(exc).__name__}: {exc}"})
        self._send(response)

    def _send(self, response: Response) -> None:
        phrase = self.responses.get(response.status, ("",))[0]
        lines = [f"{self.protocol_version} {response.status} {phrase}", f"Server: {self.version_string()}",
                 f"Date: {self.date_time_string()}"]
        if response.content_type:
            charset = self.app.charset
            lines.append(f"Content-Type: {response.content_type}" + (f"; charset={charset}" if charset else ""))
        for name, value in response.headers.items():
            lines.append(f"{name}: {value}")
            if name.lower() == "connection" and value.lower() == "close":
                self.close_connection = True
        lines.append(f"Content-Length: {len(response.body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.log_request(response.status)
        self.wfile.write(head + response.body if self.command != "HEAD" else head)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("{} sandbox: {}", self.app.name, format % args)


class _TrackingHTTPServer(ThreadingHTTPServer):
    """Remembers open connections, so that stopping closes keep-alive ones too, as a dying server does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self.connections_lock:
            open_connections, self.connections = list(self.connections), set()
        for connection in open_connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the peer


class SandboxServer:
    """A running fake server on loopback; use :func:`start` to create one."""

    def __init__(self, app: App, host: str = "127.0.0.1", port: int = 0) -> None:
        handler = type(f"{app.name}Handler", (_Handler,), {"app": app})
        self.app = app
        self.httpd = _TrackingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SandboxServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{self.app.name}-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(app: App, host: str = "127.0.0.1", port: int = 0) -> SandboxServer:
    """Serve ``app`` in a background thread (port 0 = a free port) and return the running server."""
    return SandboxServer(app, host, port).start()


def serve_until_signal(server: SandboxServer, banner: str) -> int:
    """Run a started server in the foreground until SIGTERM/SIGINT; print ``banner`` first."""
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    print(banner, flush=True)
    stopped.wait()
    server.stop()
    return 0
