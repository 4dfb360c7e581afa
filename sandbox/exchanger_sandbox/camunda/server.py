"""Run the sandbox Camunda 7 engine: in-process (:func:`start`) or as ``python -m exchanger_sandbox camunda``.

CLI: ``--port 8080 [--db PATH] [--user NAME:PASSWORD ...] [--host 127.0.0.1] [--log-level DEBUG]``. Port 0 picks a free
port. The first stdout line is one JSON object with the settings a daemon needs
(``{"CAMUNDA_BASE_URL": "http://127.0.0.1:PORT/engine-rest"}``); the server then runs until
SIGTERM/SIGINT and exits 0. ``--db`` defaults to ``camunda-sandbox.db`` in the working directory;
``--db :memory:`` keeps nothing. Each request is logged at DEBUG level (``--log-level INFO`` silences that,
e.g. for the benchmark).

Test hooks that are not Camunda endpoints: ``POST /engine-rest/_admin/clock`` with ``{"advance_ms": N}``
moves the engine clock (expiring locks and retry timeouts, firing timers); ``POST /_admin/reset``
empties the engine (see :mod:`.rest`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from loguru import logger

from exchanger_sandbox import http
from exchanger_sandbox.camunda.clock import Clock
from exchanger_sandbox.camunda.engine import Engine
from exchanger_sandbox.camunda.rest import ROOT, CamundaApp
from exchanger_sandbox.camunda.store import Store

# Where the CLI keeps its state unless told otherwise.
DEFAULT_DB = "camunda-sandbox.db"


class CamundaSandbox:
    """A running engine: ``url`` is the ``/engine-rest`` root (no trailing slash)."""

    def __init__(self, server: http.SandboxServer, engine: Engine) -> None:
        self.server = server
        self.engine = engine
        self.clock = engine.clock

    @property
    def url(self) -> str:
        return self.server.url + ROOT

    @property
    def port(self) -> int:
        return self.server.port

    def stop(self) -> None:
        self.engine.close()  # pending long polls answer first
        self.server.stop()
        self.engine.store.close()

    def __enter__(self) -> CamundaSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(port: int = 0, db: str = ":memory:", users: dict[str, str] | None = None, clock: Clock | None = None,
          host: str = "127.0.0.1") -> CamundaSandbox:
    """Serve the engine in background threads; ``clock`` lets tests move time."""
    engine = Engine(Store(db), clock or Clock())
    server = http.start(CamundaApp(engine, users), host=host, port=port)
    engine.start_timer_thread()
    return CamundaSandbox(server, engine)


def _user(text: str) -> tuple[str, str]:
    name, separator, password = text.partition(":")
    if not separator or not name:
        raise argparse.ArgumentTypeError("expected NAME:PASSWORD")
    return name, password


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m exchanger_sandbox camunda",
                                     description="Sandbox Camunda-7-compatible engine (/engine-rest).")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--db", default=DEFAULT_DB, help="SQLite file (':memory:' keeps nothing)")
    parser.add_argument("--user", type=_user, action="append", default=[], help="NAME:PASSWORD for basic auth")
    parser.add_argument("--log-level", default="DEBUG", help="loguru level on stderr (requests are DEBUG)")
    args = parser.parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level=args.log_level.upper())
    users = dict(args.user) if args.user else None
    sandbox = start(port=args.port, db=args.db, users=users, host=args.host)
    settings: dict[str, Any] = {"CAMUNDA_BASE_URL": sandbox.url}
    if users:
        name, password = args.user[0]
        settings.update({"CAMUNDA_AUTH_USERNAME": name, "CAMUNDA_AUTH_PASSWORD": password})
    logger.info("camunda sandbox: serving {} (db {})", sandbox.url, args.db)
    # The engine closes first inside stop(), so pending long polls get Camunda's shutdown answer.
    return http.serve_until_signal(sandbox, json.dumps(settings))  # type: ignore[arg-type]
