"""Liveness, readiness and Prometheus metrics over HTTP, the same for every daemon.

``/healthz`` answers 200 while the process runs and every liveness check passes (a daemon's vital
threads are alive; else 503 naming them, so that a supervisor restarts a process that only looks
alive); ``/readyz`` 200 only when every readiness check
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

from exchanger.errors import ConfigError
from exchanger.instances import PORT_STEP

ReadinessCheck = Callable[[], tuple[bool, str]]  # (ok, detail)


class HealthServer:
    def __init__(self, port: int, registry: CollectorRegistry, checks: dict[str, ReadinessCheck],
                 host: str = "127.0.0.1", liveness: dict[str, ReadinessCheck] | None = None,
                 setting: str = "the health port setting") -> None:
        """Binds the port at once: one that is taken raises ``ConfigError`` naming ``setting``."""
        self.registry = registry
        self.checks = checks
        self.liveness_checks = liveness or {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/healthz":
                    status, body = server.liveness()
                    self._send(status, "application/json", json.dumps(body).encode())
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

        try:
            self.httpd = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve /healthz on {host}:{port}: {exc.strerror or exc}; another process (another instance "
                f"of this daemon?) listens there: set {setting} to a free port, or give a second instance on this host "
                f"EXCHANGER_INSTANCE=2 (its port is {PORT_STEP} higher)") from None
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="health", daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def liveness(self) -> tuple[int, dict[str, object]]:
        ok, results = self._run(self.liveness_checks)
        if ok:
            return 200, {"status": "alive"}
        return 503, {"status": "dead", "checks": results}

    def readiness(self) -> tuple[int, dict[str, object]]:
        ready, results = self._run(self.checks)
        return (200 if ready else 503), {"ready": ready, "checks": results}

    @staticmethod
    def _run(checks: dict[str, ReadinessCheck]) -> tuple[bool, dict[str, dict[str, object]]]:
        results: dict[str, dict[str, object]] = {}
        for name, check in checks.items():
            try:
                ok, detail = check()
            except Exception as exc:  # noqa: BLE001 - a failing check means not ready, with the reason
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            results[name] = {"ok": ok, "detail": detail}
        return all(r["ok"] for r in results.values()), results

    def start(self) -> HealthServer:
        self._thread.start()
        logger.info("health and metrics on http://127.0.0.1:{}/ (healthz, readyz, metrics)", self.port)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
