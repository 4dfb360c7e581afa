"""Liveness, readiness and Prometheus metrics over HTTP, the same for every daemon.

``/healthz`` answers 200 while the process runs; ``/readyz`` 200 only when every readiness check
passes (else 503 with the failing checks named); ``/metrics`` is the Prometheus text format of the
process's registry. Port 0 disables the endpoint.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from loguru import logger
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

ReadinessCheck = Callable[[], tuple[bool, str]]  # (ok, detail)


class HealthServer:
    def __init__(self, port: int, registry: CollectorRegistry, checks: dict[str, ReadinessCheck],
                 host: str = "127.0.0.1") -> None:
        self.registry = registry
        self.checks = checks
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/healthz":
                    self._send(200, "application/json", b'{"status": "alive"}')
                elif self.path == "/readyz":
                    status, body = server.readiness()
                    self._send(status, "application/json", json.dumps(body).encode())
                elif self.path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(server.registry))
                else:
                    self._send(404, "text/plain", b"try /healthz, /readyz or /metrics")

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="health", daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def readiness(self) -> tuple[int, dict[str, object]]:
        results = {}
        for name, check in self.checks.items():
            try:
                ok, detail = check()
            except Exception as exc:  # noqa: BLE001 - a failing check means not ready, with the reason
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            results[name] = {"ok": ok, "detail": detail}
        ready = all(r["ok"] for r in results.values())
        return (200 if ready else 503), {"ready": ready, "checks": results}

    def start(self) -> HealthServer:
        self._thread.start()
        logger.info("health and metrics on http://127.0.0.1:{}/ (healthz, readyz, metrics)", self.port)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
