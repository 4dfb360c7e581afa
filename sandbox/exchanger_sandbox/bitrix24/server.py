"""The fake Bitrix24 portal as an HTTP server: webhook auth, the leaky bucket, envelopes, admin API.

``python -m exchanger_sandbox bitrix24 --port 8081`` prints ``{"BITRIX_WEBHOOK_URL": ...,
"BITRIX_EVENTS_TOKEN": ...}`` as its first line and serves until SIGTERM. Beyond REST (admin only):
``GET /_admin/stats`` (tasks per external-task id, duplicates, requests, refusals, event calls),
``POST /_admin/webhooks {"user_id": 3}`` (a webhook to act as that person), ``POST /_admin/events
{"drop": n, "duplicate": n, "delay_s": s, "delay_count": n}`` (faults of the next event calls, see
:mod:`~exchanger_sandbox.bitrix24.events`), plus the toolkit's ``/_admin/faults`` and ``/_admin/reset``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any
from urllib.parse import urlencode

from loguru import logger

from exchanger.secrets import mask, register_secret
from exchanger.systems.bitrix24.ratelimit import DEFAULT_BURST, DEFAULT_RATE_PER_S, LeakyBucket
from exchanger_sandbox.bitrix24.methods import Call, invoke, time_block
from exchanger_sandbox.bitrix24.params import parse_php_query
from exchanger_sandbox.bitrix24.state import ADMIN_ID, Portal, PortalError
from exchanger_sandbox.http import App, Request, Response, SandboxServer, json_response, serve_until_signal
from exchanger_sandbox.outbound import OutboundFaults


class PortalApp(App):
    """Routes ``/rest/<user id>/<code>/<method>[.json]`` to :mod:`methods` under the portal's rules."""

    def __init__(self, portal: Portal, bucket: LeakyBucket, ui_users: frozenset[int] = frozenset()) -> None:
        super().__init__("bitrix24", on_reset=self._on_reset)
        self.portal = portal
        self.bucket = bucket
        self.ui_users = ui_users  # people clicking in the web interface: not metered like REST apps
        for verb in ("GET", "POST"):
            self.add_route(verb, "/rest/{user_id}/{token}/{method}", self._rest)
        self.add_route("GET", "/_admin/stats", lambda request: json_response(200, portal.stats()))
        self.add_route("POST", "/_admin/webhooks", self._webhook)
        self.add_route("POST", "/_admin/events", self._event_faults)

    def _on_reset(self) -> None:
        self.portal.reset()
        self.bucket.reset()

    def _rest(self, request: Request) -> Response:
        started = time.time()
        with self.portal.lock:
            self.portal.requests += 1
        if not self._is_ui_user(request) and self.bucket.try_take() > 0:
            with self.portal.lock:
                self.portal.rejected += 1
            return error_response(PortalError(503, "QUERY_LIMIT_EXCEEDED", "Too many requests"))
        try:
            user_id = self.portal.authenticate(request.params["user_id"], request.params["token"])
            name = request.params["method"]
            if name.lower().endswith(".xml"):
                raise PortalError(400, "INVALID_REQUEST", "The fake portal answers JSON only")
            params = read_params(request)
            with self.portal.lock:
                answer = invoke(name, Call(self.portal, params, user_id))
        except PortalError as exc:
            return error_response(exc)
        envelope: dict[str, Any] = {"result": answer.result}
        if answer.next is not None:
            envelope["next"] = answer.next
        if answer.total is not None:
            envelope["total"] = answer.total
        envelope["time"] = time_block(started)
        return json_response(200, envelope)

    def _is_ui_user(self, request: Request) -> bool:
        user_id = request.params.get("user_id", "")
        return user_id.isdigit() and int(user_id) in self.ui_users

    def _event_faults(self, request: Request) -> Response:
        """``{"drop": n, "duplicate": n, "delay_s": s, "delay_count": n}``: what happens to the next event calls."""
        self.portal.outbound.outbox.add_faults(OutboundFaults.from_json(request.json() or {}))
        return json_response(200, self.portal.outbound.stats())

    def _webhook(self, request: Request) -> Response:
        user_id = int((request.json() or {}).get("user_id", ADMIN_ID))
        try:
            token = self.portal.webhook_token(user_id)
        except KeyError as exc:
            return json_response(404, {"error": str(exc)})
        return json_response(200, {"user_id": user_id, "token": token, "path": f"/rest/{user_id}/{token}/"})


def error_response(exc: PortalError) -> Response:
    return json_response(exc.status, {"error": exc.code, "error_description": exc.description})


def read_params(request: Request) -> Any:
    """Query string, then a JSON or form body on top; a JSON list is kept (older positional methods)."""
    pairs = [(key, value) for key, values in request.query.items() for value in values]
    params: dict[str, Any] = parse_php_query(urlencode(pairs))
    if not request.body:
        return params
    content_type = request.headers.get("content-type", "")
    if "json" in content_type or request.body.lstrip()[:1] in (b"{", b"["):
        try:
            body = json.loads(request.body.decode("utf-8"))
        except ValueError:
            raise PortalError(400, "INVALID_REQUEST", "Invalid JSON in the request body") from None
        return body if isinstance(body, list) else {**params, **(body or {})}
    if "multipart" in content_type:
        raise PortalError(400, "INVALID_REQUEST", "The fake portal does not read multipart bodies")
    return {**params, **parse_php_query(request.body.decode("utf-8"))}


class PortalServer(SandboxServer):
    """A running fake portal; ``portal`` is its state, ``webhook_url`` the admin's inbound webhook."""

    def __init__(self, app: PortalApp, host: str, port: int) -> None:
        super().__init__(app, host, port)
        self.portal = app.portal
        self.bucket = app.bucket

    @property
    def webhook_url(self) -> str:
        return self.webhook_url_for(ADMIN_ID)

    def stop(self) -> None:
        super().stop()
        self.portal.outbound.outbox.close()

    @property
    def application_token(self) -> str:
        """What the portal sends as ``auth[application_token]`` with every event call (BITRIX_EVENTS_TOKEN)."""
        return self.portal.outbound.application_token

    def webhook_url_for(self, user_id: int) -> str:
        """The inbound webhook of another seeded user, to act as that person."""
        return f"{self.url}/rest/{user_id}/{self.portal.webhook_token(user_id)}/"


def start(
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    token: str | None = None,
    rate_per_s: float = DEFAULT_RATE_PER_S,
    burst: int = DEFAULT_BURST,
    with_user_fields: bool = True,
    external_id_field: str = "",
    ui_users: frozenset[int] = frozenset(),
    application_token: str | None = None,
) -> PortalServer:
    """Start a fake portal in a background thread (port 0 = any free port).

    ``with_user_fields=False`` starts without Exchanger's task user fields (to test the start check);
    ``external_id_field`` names the field ``/_admin/stats`` counts duplicates by; requests of
    ``ui_users`` stand for people working in the web interface and are not metered by the bucket.
    """
    portal = Portal(token=token, with_user_fields=with_user_fields, stats_field=external_id_field,
                    application_token=application_token)
    bucket = LeakyBucket(rate_per_s=rate_per_s, burst=burst)
    server = PortalServer(PortalApp(portal, bucket, ui_users), host, port)
    server.start()
    portal.outbound.domain = server.url.split("://", 1)[1]
    return server


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m exchanger_sandbox bitrix24", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default=None, help="webhook code of user 1 (default: random)")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE_PER_S, help="leaky-bucket drain, requests/s")
    parser.add_argument("--burst", type=int, default=DEFAULT_BURST, help="leaky-bucket size, requests")
    parser.add_argument("--no-user-fields", action="store_true", help="start without Exchanger's task user fields")
    parser.add_argument("--external-id-field", default="", help="user field /_admin/stats counts duplicates by")
    parser.add_argument("--application-token", default=None,
                        help="auth[application_token] of its event calls (default: random; printed)")
    parser.add_argument("--ui-user", type=int, action="append", default=[],
                        help="user whose webhook acts like a person in the web UI (not rate-limited); repeatable")
    args = parser.parse_args(argv)
    server = start(
        args.port,
        host=args.host,
        token=args.token,
        rate_per_s=args.rate,
        burst=args.burst,
        with_user_fields=not args.no_user_fields,
        external_id_field=args.external_id_field,
        ui_users=frozenset(args.ui_user),
        application_token=args.application_token,
    )
    # the request log quotes webhook paths; the demo keeps this process's output, so the code is masked there
    register_secret(server.portal.webhooks[ADMIN_ID])
    logger.configure(patcher=lambda record: record.update(message=mask(record["message"])))  # type: ignore[call-arg]
    register_secret(server.application_token)
    return serve_until_signal(server, json.dumps({"BITRIX_WEBHOOK_URL": server.webhook_url,
                                                  "BITRIX_EVENTS_TOKEN": server.application_token}))
