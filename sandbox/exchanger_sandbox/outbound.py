"""Calls a fake makes on its own to a receiver: webhooks, outbound event handlers.

A real system sends them from background workers, some time after the change, without waiting for
the receiver, and a receiver must cope with an event that never comes, comes twice or comes late.
:class:`Outbox` does the sending for a fake (a scheduler thread, a few sender threads, a log of every
delivery as an admin page would list it) and has the knobs a test needs to make each of these happen:
``drop``, ``duplicate`` and ``delay_s`` for the next ``count`` events (:class:`OutboundFaults`).
"""

from __future__ import annotations

import functools
import heapq
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from loguru import logger

MAX_LOG = 1000  # deliveries kept for /_admin (a real admin page shows the recent ones too)


@dataclass
class OutboundFaults:
    """What happens to the next events: ``drop`` never sent, ``duplicate`` sent twice, and ``delay_s``
    added to each of the next ``delay_count`` ones."""

    drop: int = 0
    duplicate: int = 0
    delay_s: float = 0.0
    delay_count: int = 0

    @classmethod
    def from_json(cls, spec: dict[str, Any]) -> OutboundFaults:
        """The body of a fake's admin request: ``{"drop": n, "duplicate": n, "delay_s": s, "delay_count": n}``."""
        return cls(drop=int(spec.get("drop", 0)), duplicate=int(spec.get("duplicate", 0)),
                   delay_s=float(spec.get("delay_s", 0.0)), delay_count=int(spec.get("delay_count", 0)))


@dataclass
class Delivery:
    """One POST (or one dropped event), as the system's delivery log lists it."""

    event: str
    url: str
    response_code: int  # -1: no answer (refused, timed out); 0: dropped by a fault, never sent
    attempt: int = 1
    note: str = ""
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))


@dataclass(frozen=True)
class Message:
    """A rendered event: the exact bytes and headers to POST."""

    event: str
    url: str
    body: bytes
    headers: dict[str, str]


class Outbox:
    """Sends :class:`Message` s on background threads; :meth:`close` stops it."""

    def __init__(self, name: str, *, senders: int = 4, timeout_s: float = 10.0) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self.faults = OutboundFaults()
        self.log: list[Delivery] = []
        self._lock = threading.Condition()
        self._timeline: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._busy = 0  # sends under way or scheduled
        self._closed = False
        self._pool = ThreadPoolExecutor(max_workers=senders, thread_name_prefix=f"{name}-outbound")
        self._session = requests.Session()
        self._thread = threading.Thread(target=self._run, name=f"{name}-outbox", daemon=True)
        self._thread.start()

    # --- what a fake calls ----------------------------------------------------------------------

    def call_later(self, delay_s: float, function: Callable[[], None]) -> None:
        """Run ``function`` on a sender thread after ``delay_s`` (a fake's own timers: aggregation)."""
        with self._lock:
            self._busy += 1
            heapq.heappush(self._timeline, (time.monotonic() + max(0.0, delay_s), next(self._seq), function))
            self._lock.notify()

    def send(self, message: Message, *, retry_waits: tuple[float, ...] = ()) -> None:
        """Deliver ``message`` now, after the faults had their say. ``retry_waits``: how long to wait before
        each further attempt after a timeout (a non-2xx answer is never retried: it is logged)."""
        with self._lock:
            if self.faults.drop > 0:
                self.faults.drop -= 1
                self._record(Delivery(message.event, message.url, 0, note="dropped (fault)"))
                return
            copies = 1
            if self.faults.duplicate > 0:
                self.faults.duplicate -= 1
                copies = 2
            delay_s = 0.0
            if self.faults.delay_count > 0:
                self.faults.delay_count -= 1
                delay_s = self.faults.delay_s
        for copy in range(copies):
            note = "duplicate (fault)" if copy else ""
            self.call_later(delay_s, functools.partial(self._post, message, 1, retry_waits, note))

    def add_faults(self, faults: OutboundFaults) -> None:
        """Counts add up (a test queues "drop one, then duplicate one"); a ``delay_s`` replaces the last."""
        with self._lock:
            self.faults.drop += faults.drop
            self.faults.duplicate += faults.duplicate
            self.faults.delay_count += faults.delay_count
            if faults.delay_count:
                self.faults.delay_s = faults.delay_s

    def reset(self) -> None:
        """Forget faults and the log (events already scheduled still go out)."""
        with self._lock:
            self.faults = OutboundFaults()
            self.log.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"deliveries": [asdict(d) for d in self.log], "pending": self._busy,
                    "faults": asdict(self.faults)}

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._session.close()

    # --- inside ---------------------------------------------------------------------------------

    def _record(self, delivery: Delivery) -> None:
        self.log.append(delivery)
        del self.log[:-MAX_LOG]

    def _run(self) -> None:
        """The scheduler: hand each due function to a sender thread."""
        while True:
            with self._lock:
                while not self._closed and (not self._timeline or self._timeline[0][0] > time.monotonic()):
                    self._lock.wait(self._timeline[0][0] - time.monotonic() if self._timeline else None)
                if self._closed:
                    return
                _, _, function = heapq.heappop(self._timeline)
            self._pool.submit(self._call, function)

    def _call(self, function: Callable[[], None]) -> None:
        try:
            function()
        except Exception:  # noqa: BLE001 - a fake's sender must not die of one bad event
            logger.opt(exception=True).warning("{}: an outbound event failed", self.name)
        finally:
            with self._lock:
                self._busy -= 1
                self._lock.notify_all()

    def _post(self, message: Message, attempt: int, retry_waits: tuple[float, ...], note: str) -> None:
        try:
            response = self._session.post(message.url, data=message.body, headers=message.headers,
                                          timeout=self.timeout_s)
            code = response.status_code
        except requests.Timeout:
            code = -1
            if attempt <= len(retry_waits):
                wait = retry_waits[attempt - 1]
                note = f"{note} timed out; retried in {wait:g} s".strip()
                self.call_later(wait, lambda: self._post(message, attempt + 1, retry_waits, "retry after a timeout"))
        except requests.RequestException as exc:
            code, note = -1, f"{note} {type(exc).__name__}".strip()
        with self._lock:
            self._record(Delivery(message.event, message.url, code, attempt, note))
