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
server, a little later and without retrying: a call that fails is gone. The fakes' shared
:class:`~exchanger_sandbox.outbound.Outbox` sends here. Fault knobs (``POST /_admin/events {"drop": n,
"duplicate": n, "delay_s": s, "delay_count": n}``): the next calls are not sent, sent twice, or late.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from exchanger_sandbox.outbound import Message, Outbox

TASK_EVENTS = ("ONTASKADD", "ONTASKUPDATE", "ONTASKDELETE")
OAUTH_SERVER = "https://oauth.bitrix.info/rest/"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass
class Outbound:
    """The portal's bound handlers, and the :class:`~exchanger_sandbox.outbound.Outbox` that calls them."""

    domain: str
    application_token: str
    member_id: str
    handlers: list[dict[str, Any]] = field(default_factory=list)
    outbox: Outbox = field(default_factory=lambda: Outbox("bitrix24-events"))
    _next_id: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

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
        """A call to every handler of ``event``, sent a moment later and never retried."""
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
            self.outbox.send(Message(event, handler["handler"], urlencode(form).encode(), dict(FORM)))

    def reset(self) -> None:
        with self._lock:
            self.handlers.clear()
        self.outbox.reset()

    def stats(self) -> dict[str, Any]:
        """Handlers bound and the calls so far: ``sent`` (answered or not), ``dropped`` by a fault."""
        deliveries = self.outbox.snapshot()["deliveries"]
        with self._lock:
            handlers = len(self.handlers)
        return {"handlers": handlers, "sent": sum(1 for d in deliveries if d["response_code"] != 0),
                "dropped": sum(1 for d in deliveries if d["response_code"] == 0),
                "failed": sum(1 for d in deliveries if d["response_code"] == -1)}
