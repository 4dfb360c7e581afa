"""Outgoing webhooks of the fake OpenProject, as OpenProject's ``webhooks`` module sends them.

An administrator configures them (Administration → API and webhooks → Webhooks; there is no API for
it): a payload URL, an optional signature secret, the events (``work_package:created``,
``work_package:updated``, ...), all projects or selected ones, enabled or not. The fake takes the same
configuration as :class:`Webhook` (``start(webhooks=...)``, the CLI's ``--webhook-*`` options, or the
fake-only ``PUT /_admin/webhooks``).

What OpenProject does, and so the fake (``modules/webhooks`` of opf/openproject):

- a change of a work package writes a journal; once the journal is *aggregated* (the setting "User
  actions aggregated within", ``journal_aggregation_time_minutes``, 5 minutes by default; a further
  change within it extends the same journal) the event fires: ``work_package:created`` for the first
  journal, ``work_package:updated`` for any later one (a comment too);
- one job per enabled webhook subscribed to the event whose projects include the work package's;
- the job POSTs ``{"action": "<event>", "work_package": <the API v3 work package, links embedded>}``
  rendered *when it runs* (so the current state), ``Content-Type: application/json``, and, if the
  webhook has a secret, ``X-OP-Signature: sha1=<hex HMAC-SHA1 of the exact body with the secret>``;
- the answer is logged and not looked at: a 4xx/5xx is not retried. A timeout is retried (3 attempts
  in all, ``polynomially_longer`` waits: about 3 s, then 18 s), so a slow receiver can get an event
  twice.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from exchanger_sandbox.outbound import Message, Outbox

WORK_PACKAGE_EVENTS = ("work_package:created", "work_package:updated")
RETRY_WAITS_S = (3.0, 18.0)  # ActiveJob polynomially_longer for attempts 2 and 3 (executions**4 + 2)
USER_AGENT = "Faraday v2.12.2"  # what OpenProject's HTTP client announces
_RAILS_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


@dataclass(frozen=True)
class Webhook:
    """One webhook of Administration → Webhooks."""

    url: str
    secret: str = ""
    events: tuple[str, ...] = WORK_PACKAGE_EVENTS
    projects: tuple[int, ...] | None = None  # None: all projects
    enabled: bool = True
    name: str = "exchanger"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Webhook:
        projects = data.get("projects")
        return cls(url=str(data["url"]), secret=str(data.get("secret") or ""),
                   events=tuple(data.get("events") or WORK_PACKAGE_EVENTS),
                   projects=None if projects is None else tuple(int(p) for p in projects),
                   enabled=bool(data.get("enabled", True)), name=str(data.get("name") or "exchanger"))

    def wants(self, event: str, project_id: int) -> bool:
        return self.enabled and event in self.events and (self.projects is None or project_id in self.projects)


def rails_json(payload: Any) -> bytes:
    """``payload.to_json`` as Rails writes it: compact, UTF-8, ``<``, ``>``, ``&`` escaped. A receiver
    must check the signature over these bytes, never over its own re-serialisation."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in _RAILS_ESCAPES.items():
        text = text.replace(char, escaped)
    return text.encode("utf-8")


def signature(secret: str, body: bytes) -> str:
    """The ``X-OP-Signature`` value: ``sha1=`` and the hex HMAC-SHA1 of ``body`` keyed with ``secret``."""
    return "sha1=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha1).hexdigest()


class WebhookSender:
    """Turns work package journals into webhook calls through an :class:`Outbox`.

    ``render(wp_id)`` returns ``(project_id, API v3 work package)`` for the current state, or None when
    the work package is gone by the time the job runs (OpenProject's job then fails and sends nothing).
    """

    def __init__(self, render: Callable[[int], tuple[int, dict[str, Any]] | None], *,
                 webhooks: tuple[Webhook, ...] = (), aggregation_s: float = 0.0) -> None:
        self.render = render
        self.configured = (webhooks, aggregation_s)  # as given at start: what a reset goes back to
        self.webhooks = webhooks
        self.aggregation_s = aggregation_s
        self.outbox = Outbox("openproject-webhooks")
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[float, str]] = {}  # wp id → (when its journal is aggregated, event)

    def journal(self, wp_id: int, *, initial: bool) -> None:
        """A journal of ``wp_id`` was written (created, updated, commented)."""
        if not self.webhooks:
            return
        event = WORK_PACKAGE_EVENTS[0 if initial else 1]
        if self.aggregation_s <= 0:  # aggregation off: every journal is its own event
            self.outbox.call_later(0.0, functools.partial(self._fire, wp_id, event))
            return
        with self._lock:
            earlier = self._pending.get(wp_id)
            self._pending[wp_id] = (time.monotonic() + self.aggregation_s, earlier[1] if earlier else event)
        self.outbox.call_later(self.aggregation_s, functools.partial(self._aggregated, wp_id))

    def configure(self, webhooks: tuple[Webhook, ...], aggregation_s: float | None = None) -> None:
        self.webhooks = webhooks
        if aggregation_s is not None:
            self.aggregation_s = aggregation_s

    def reset(self) -> None:
        with self._lock:
            self._pending.clear()
        self.webhooks, self.aggregation_s = self.configured
        self.outbox.reset()

    def snapshot(self) -> dict[str, Any]:
        return {"webhooks": [asdict(w) for w in self.webhooks], "aggregation_s": self.aggregation_s,
                **self.outbox.snapshot()}

    def close(self) -> None:
        self.outbox.close()

    def _aggregated(self, wp_id: int) -> None:
        """Fire the journal's event, unless a later change extended the aggregation (a later timer fires)."""
        with self._lock:
            pending = self._pending.get(wp_id)
            if pending is None or pending[0] > time.monotonic():
                return
            del self._pending[wp_id]
        self._fire(wp_id, pending[1])

    def _fire(self, wp_id: int, event: str) -> None:
        """One job per webhook that wants ``event`` in the work package's project, rendered now."""
        rendered = self.render(wp_id)
        if rendered is None:
            return
        project_id, work_package = rendered
        for webhook in self.webhooks:
            if not webhook.wants(event, project_id):
                continue
            body = rails_json({"action": event, "work_package": work_package})
            headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": USER_AGENT}
            if webhook.secret:
                headers["X-OP-Signature"] = signature(webhook.secret, body)
            self.outbox.send(Message(event, webhook.url, body, headers), retry_waits=RETRY_WAITS_S)
