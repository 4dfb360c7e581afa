"""The task-creator's event endpoint: ``POST /events/<system>``, the calls a system pushes when an item changes.

One small stdlib HTTP server (``CREATOR_EVENTS_PORT``, ``CREATOR_EVENTS_HOST``), apart from the health
endpoint on purpose: this one faces the external system (through a reverse proxy with TLS), the other
the supervisor. For each call:

1. the system's tracker reads and authenticates it (``parse_event(headers, body)``: Bitrix24 compares
   ``auth[application_token]`` with ``BITRIX_EVENTS_TOKEN``) and answers the item ids it is about;
   :class:`~exchanger.creator.base.EventRefused` becomes its status (403 forged, 404 events off, 400);
2. each id becomes an :class:`~exchanger.contracts.ItemEvent` in ``<system>.events.queue``, confirmed by
   the broker, and only then the answer is 200 (a broker that is away: 503, the system may call again;
   if it does not, the sweep and the tracking record find the item later).

At start the receiver asks each tracker to subscribe (``subscribe_events``: Bitrix24 binds ``OnTaskUpdate``
to ``BITRIX_EVENTS_URL``), in a thread that tries again every :data:`SUBSCRIBE_RETRY_S` until it worked.

Nothing else happens in the request: whichever task-creator consumes the events queue looks at the item
(:mod:`exchanger.creator.item_events`). Bodies above ``CREATOR_EVENTS_MAX_BYTES`` are refused with 413.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from loguru import logger
from prometheus_client import CollectorRegistry, Counter

from exchanger.amqp.publisher import Publisher
from exchanger.amqp.topology import Topology
from exchanger.creator.base import BaseTracker, EventRefused
from exchanger.creator.item_events import publish_events
from exchanger.errors import ExchangerError
from exchanger.settings import RabbitMQSettings

PATH_PREFIX = "/events/"
DEFAULT_MAX_BYTES = 64 * 1024  # an OnTaskUpdate call is well under 2 kB
SUBSCRIBE_RETRY_S = 60.0  # a system that could not be told where to push is asked again after this long


class EventReceiver:
    """``POST /events/<system>`` for every tracker in ``trackers`` (by system name) that takes events."""

    def __init__(self, trackers: dict[str, BaseTracker], rabbit: RabbitMQSettings, topology: Topology, *,
                 port: int, host: str = "127.0.0.1", max_bytes: int = DEFAULT_MAX_BYTES,
                 registry: CollectorRegistry | None = None) -> None:
        self.trackers = {system: t for system, t in trackers.items() if t.item_events}
        self.max_bytes = max_bytes
        self.publisher = Publisher(rabbit, topology, name="creator:events")
        self._publish_lock = threading.Lock()  # one publisher (one AMQP channel) for the request threads
        self.calls = Counter("exchanger_creator_event_calls", "pushed event calls, by system and answer status",
                             ["system", "status"], registry=registry or CollectorRegistry())
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                status, body = receiver.receive(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                self._body())
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _body(self) -> bytes | None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > receiver.max_bytes:
                    return None
                return self.rfile.read(length) if length > 0 else b""

            def log_message(self, format: str, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="events", daemon=True)
        self._stopped = threading.Event()

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def receive(self, path: str, headers: dict[str, str], body: bytes | None) -> tuple[int, dict[str, object]]:
        """(status, JSON body) for one call; see the module docstring."""
        system = path.split("?", 1)[0].removeprefix(PATH_PREFIX).strip("/") if path.startswith(PATH_PREFIX) else ""
        tracker = self.trackers.get(system)
        if tracker is None:
            return self._answer(system or "?", 404, {"error": f"no events for {system or path!r} here"})
        if body is None:
            return self._answer(system, 413, {"error": f"body above {self.max_bytes} bytes"})
        try:
            item_ids = list(dict.fromkeys(tracker.parse_event(headers, body)))
        except EventRefused as exc:
            logger.warning("{}: event call refused ({}): {}", system, exc.status, exc)
            return self._answer(system, exc.status, {"error": str(exc)})
        try:
            if item_ids:
                with self._publish_lock:
                    publish_events(self.publisher, system, item_ids, "event")
        except (ExchangerError, OSError) as exc:
            logger.warning("{}: event for {} not queued ({}); the sweep or the next check finds it", system,
                           ", ".join(item_ids), exc)
            return self._answer(system, 503, {"error": "RabbitMQ unavailable"})
        logger.debug("{}: event for item(s) {} queued", system, ", ".join(item_ids) or "none")
        return self._answer(system, 200, {"accepted": item_ids})

    def _answer(self, system: str, status: int, body: dict[str, object]) -> tuple[int, dict[str, object]]:
        self.calls.labels(system, str(status)).inc()
        return status, body

    def subscribe(self) -> None:
        """``subscribe_events`` of every tracker, each until it worked (logged), or until :meth:`stop`."""
        pending = dict(self.trackers)
        while pending and not self._stopped.is_set():
            for system, tracker in list(pending.items()):
                try:
                    done = tracker.subscribe_events()
                except Exception as exc:  # noqa: BLE001 - the sweep and the checks work meanwhile
                    logger.warning("{}: could not subscribe to its events ({}: {}); trying again in {:g} s", system,
                                   type(exc).__name__, exc, SUBSCRIBE_RETRY_S)
                    continue
                if done:
                    logger.info("{}: {}", system, done)
                del pending[system]
            self._stopped.wait(SUBSCRIBE_RETRY_S)

    def start(self) -> EventReceiver:
        self._thread.start()
        threading.Thread(target=self.subscribe, name="events-subscribe", daemon=True).start()
        logger.info("events on http://{}:{}{}<system> for {}", self.httpd.server_address[0], self.port, PATH_PREFIX,
                    ", ".join(self.trackers) or "no system")
        return self

    def stop(self) -> None:
        self._stopped.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        with self._publish_lock:
            self.publisher.close()
