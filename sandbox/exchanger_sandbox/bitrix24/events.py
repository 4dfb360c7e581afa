"""The fake portal's outbound events: ``event.bind`` handlers and the calls the portal makes to them.

As a real portal: ``event.bind`` (``event``, ``handler``, ``auth_type``, ``event_type`` online|offline)
registers a handler URL for an event name (stored upper-case: ``ONTASKUPDATE``), a second bind of the
same pair is refused ("Handler already binded"), ``event.get`` lists them, ``event.unbind`` removes the
matching ones and answers ``{"count": n}``. When a task is added, updated (any field, its status, a
result) or deleted, every handler bound to ``OnTaskAdd`` / ``OnTaskUpdate`` / ``OnTaskDelete`` gets a
``POST`` with ``Content-Type: application/x-www-form-urlencoded``::

    event=ONTASKUPDATE&event_handler_id=3&data[FIELDS_BEFORE][ID]=42&data[FIELDS_AFTER][ID]=42
    &data[IS_ACCESSIBLE_BEFORE]=undefined&data[IS_ACCESSIBLE_AFTER]=undefined&ts=1732921200
    &auth[domain]=...&auth[client_endpoint]=https://.../rest/&auth[server_endpoint]=https://oauth.bitrix.info/rest/
    &auth[member_id]=...&auth[application_token]=...

The data carries only the ID (the receiver must read the task), and the portal sends through its queue
server, a little later and without retrying: a call that fails is gone. A sender thread does that here,
in order. Fault knobs (``POST /_admin/events {"drop": n, "duplicate": n, "delay_s": s}``): the next ``n``
calls are not sent, or sent twice; every call waits ``delay_s`` first.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import requests
from loguru import logger

TASK_EVENTS = ("ONTASKADD", "ONTASKUPDATE", "ONTASKDELETE")
OAUTH_SERVER = "https://oauth.bitrix.info/rest/"


@dataclass
class EventFaults:
    """What happens to the next outbound calls (admin knobs, not part of the portal)."""

    drop: int = 0
    duplicate: int = 0
    delay_s: float = 0.0


@dataclass
class Outbound:
    """The portal's bound handlers and the thread that calls them."""

    domain: str
    application_token: str
    member_id: str
    handlers: list[dict[str, Any]] = field(default_factory=list)
    faults: EventFaults = field(default_factory=EventFaults)
    sent: int = 0
    dropped: int = 0
    failed: int = 0
    _next_id: int = 0
    _queue: queue.Queue[tuple[str, dict[str, str]] | None] = field(default_factory=queue.Queue)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    # --- event.bind / event.get / event.unbind -------------------------------------------------------

    def bind(self, event: str, handler: str, auth_type: int, offline: bool) -> None:
        with self._lock:
            if any(h["event"] == event and h["handler"] == handler for h in self.handlers):
                raise ValueError("Handler already binded")
            self._next_id += 1
            self.handlers.append({"id": self._next_id, "event": event, "handler": handler,
                                  "auth_type": str(auth_type), "offline": 1 if offline else 0})

    def listed(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{k: v for k, v in h.items() if k != "id"} for h in self.handlers]

    def unbind(self, event: str, handler: str | None, auth_type: str | None) -> int:
        with self._lock:
            keep = [h for h in self.handlers if not (
                h["event"] == event and handler in (None, "", h["handler"])
                and auth_type in (None, "", h["auth_type"]))]
            count, self.handlers = len(self.handlers) - len(keep), keep
            return count

    # --- the calls ----------------------------------------------------------------------------------

    def task_changed(self, event: str, task_id: int) -> None:
        """Queue a call to every handler of ``event`` (called with the portal's lock held)."""
        with self._lock:
            targets = [h for h in self.handlers if h["event"] == event and not h["offline"]]
        for handler in targets:
            form = {
                "event": event, "event_handler_id": str(handler["id"]),
                "data[FIELDS_BEFORE][ID]": str(task_id), "data[FIELDS_AFTER][ID]": str(task_id),
                "data[IS_ACCESSIBLE_BEFORE]": "undefined", "data[IS_ACCESSIBLE_AFTER]": "undefined",
                "ts": str(int(time.time())),
                "auth[domain]": self.domain, "auth[client_endpoint]": f"https://{self.domain}/rest/",
                "auth[server_endpoint]": OAUTH_SERVER, "auth[member_id]": self.member_id,
                "auth[application_token]": self.application_token,
            }  # fmt: skip
            if event == "ONTASKADD":
                del form["data[FIELDS_BEFORE][ID]"]
            self._ensure_sender()
            self._queue.put((handler["handler"], form))

    def _ensure_sender(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._send_loop, name="b24-events", daemon=True)
            self._thread.start()

    def _send_loop(self) -> None:
        session = requests.Session()
        while (job := self._queue.get()) is not None:
            url, form = job
            with self._lock:
                faults = self.faults
                copies = 1
                if faults.drop > 0:
                    faults.drop -= 1
                    copies = 0
                    self.dropped += 1
                elif faults.duplicate > 0:
                    faults.duplicate -= 1
                    copies = 2
                delay_s = faults.delay_s
            if copies and delay_s:
                time.sleep(delay_s)
            for _ in range(copies):
                try:
                    session.post(url, data=urlencode(form), timeout=10,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
                    self.sent += 1
                except requests.RequestException as exc:  # the portal does not retry
                    self.failed += 1
                    logger.debug("event {} to {} failed: {}", form["event"], url, exc)

    def set_faults(self, drop: int = 0, duplicate: int = 0, delay_s: float = 0.0) -> None:
        with self._lock:
            self.faults = EventFaults(drop, duplicate, delay_s)

    def reset(self) -> None:
        with self._lock:
            self.handlers.clear()
            self.faults = EventFaults()
            self.sent = self.dropped = self.failed = 0

    def pending(self) -> int:
        return self._queue.qsize()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"handlers": len(self.handlers), "sent": self.sent, "dropped": self.dropped,
                    "failed": self.failed, "queued": self._queue.qsize()}
