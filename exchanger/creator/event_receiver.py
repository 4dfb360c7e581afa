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
(:mod:`exchanger.creator.item_events`). A hostile or broken caller gets an answer and costs little: a
body above ``CREATOR_EVENTS_MAX_BYTES`` is 413 unread, a Content-Length that is no length 400, a call the
tracker cannot read 400 (never a dropped connection), and a caller silent for :data:`DEFAULT_READ_TIMEOUT_S`
mid-request is cut off (each connection has its own thread; none blocks another or :meth:`EventReceiver.stop`).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from loguru import logger
from pika.exceptions import AMQPError
from prometheus_client import CollectorRegistry, Counter

from exchanger.amqp.publisher import Publisher
from exchanger.amqp.topology import Topology
from exchanger.creator.base import BaseTracker, EventRefused
from exchanger.creator.item_events import publish_events
from exchanger.errors import ExchangerError
from exchanger.settings import RabbitMQSettings

PATH_PREFIX = "/events/"
DEFAULT_MAX_BYTES = 64 * 1024  # an OnTaskUpdate call is well under 2 kB
DEFAULT_READ_TIMEOUT_S = 10.0  # a caller silent this long mid-request is cut off (a slow or lying client)
PUBLISH_WAIT_S = 2.0  # a call waits this long for another call's publish (a hung broker): then 503, not a pile-up
SUBSCRIBE_RETRY_S = 60.0  # a system that could not be told where to push is asked again after this long


class EventReceiver:
    """``POST /events/<system>`` for every tracker in ``trackers`` (by system name) that takes events."""

    def __init__(self, trackers: dict[str, BaseTracker], rabbit: RabbitMQSettings, topology: Topology, *,
                 port: int, host: str = "127.0.0.1", max_bytes: int = DEFAULT_MAX_BYTES,
                 read_timeout_s: float = DEFAULT_READ_TIMEOUT_S, registry: CollectorRegistry | None = None) -> None:
        self.trackers = {system: t for system, t in trackers.items() if t.item_events}
        self.max_bytes = max_bytes
        self.publisher = Publisher(rabbit, topology, name="creator:events")
        self._publish_lock = threading.Lock()  # one publisher (one AMQP channel) for the request threads
        self.calls = Counter("exchanger_creator_event_calls", "pushed event calls, by system and answer status",
                             ["system", "status"], registry=registry or CollectorRegistry())
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            timeout = read_timeout_s  # socket timeout: a stalled client holds its own thread this long at most

            def do_POST(self) -> None:
                length = self.headers.get("Content-Length") or "0"
                if not length.isdigit():
                    self._send(400, {"error": "Content-Length is not a length"})
                elif int(length) > receiver.max_bytes:
                    self.close_connection = True  # the body is never read: this connection cannot carry another
                    self._send(*receiver.too_large(self.path))
                else:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    self._send(*receiver.receive(self.path, headers, self.rfile.read(int(length))))

            def _send(self, status: int, body: dict[str, object]) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="events", daemon=True)
        self._stopped = threading.Event()

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def system_of(self, path: str) -> str:
        return path.split("?", 1)[0].removeprefix(PATH_PREFIX).strip("/") if path.startswith(PATH_PREFIX) else ""

    def too_large(self, path: str) -> tuple[int, dict[str, object]]:
        system = self.system_of(path)
        return self._answer(system if system in self.trackers else "?", 413,
                            {"error": f"body above {self.max_bytes} bytes"})

    def receive(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, object]]:
        """(status, JSON body) for one call; see the module docstring."""
        system = self.system_of(path)
        tracker = self.trackers.get(system)
        if tracker is None:
            return self._answer("?", 404, {"error": "no events for this path here"})
        try:
            item_ids = list(dict.fromkeys(tracker.parse_event(headers, body)))
        except EventRefused as exc:
            logger.warning("{}: event call refused ({}): {}", system, exc.status, exc)
            return self._answer(system, exc.status, {"error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - a tracker that fails on odd input must still answer the caller
            logger.warning("{}: event call not understood ({}); answered 400", system, type(exc).__name__)
            return self._answer(system, 400, {"error": "the call could not be read"})
        if item_ids and not self._publish_lock.acquire(timeout=PUBLISH_WAIT_S):
            logger.warning("{}: event for {} not queued: RabbitMQ is slow to confirm another call's events", system,
                           ", ".join(item_ids))
            return self._answer(system, 503, {"error": "RabbitMQ unavailable"})
        try:
            if item_ids:
                publish_events(self.publisher, system, item_ids, "event")
        except (ExchangerError, OSError, AMQPError) as exc:
            logger.warning("{}: event for {} not queued ({}); the sweep or the next check finds it", system,
                           ", ".join(item_ids), exc)
            return self._answer(system, 503, {"error": "RabbitMQ unavailable"})
        finally:
            if item_ids:
                self._publish_lock.release()
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
