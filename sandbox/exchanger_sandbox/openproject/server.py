"""The fake OpenProject server: API v3 routes, API-key auth, admin stats, ``start`` and ``cli``.

People act on it through the standard API, as on a real instance: closing a work package is a
``PATCH /api/v3/work_packages/{id}`` of ``_links.status`` with the current ``lockVersion``. The
admin API (``/_admin/...``) only injects faults, resets state and reports duplicates.
"""

from __future__ import annotations

import argparse
import base64
import copy
import functools
import hmac
import json
import operator
from collections.abc import Callable
from typing import Any

from exchanger_sandbox.http import App, Request, Response, SandboxServer, empty_response, json_response
from exchanger_sandbox.http import serve_until_signal as _serve_until_signal
from exchanger_sandbox.openproject import filters, hal
from exchanger_sandbox.openproject.state import (
    API_KEY,
    DEFAULT_PROJECT,
    EXTERNAL_ID_FIELD,
    OpenProjectState,
    WorkPackage,
    now_iso,
)
from exchanger_sandbox.openproject.webhooks import WORK_PACKAGE_EVENTS, Webhook, WebhookSender
from exchanger_sandbox.openproject.writes import apply_body
from exchanger_sandbox.outbound import OutboundFaults

DEFAULT_PORT = 8082  # a fixed port to run it by hand (tests and the demo ask for a free one)
DEFAULT_PAGE_SIZE = 20  # OpenProject's default page size
MAX_PAGE_SIZE = 1000  # Setting.apiv3_max_page_size default
DEFAULT_WP_FILTERS = '[{"status":{"operator":"o","values":[]}}]'  # open only, unless filters are sent
WP_DATE_FILTERS = frozenset({"createdAt", "updatedAt"})
SORTABLE = {"id": "id", "createdAt": "created_at", "updatedAt": "updated_at", "subject": "subject"}
API = hal.API
CONFLICT_MESSAGE = (
    "Your changes could not be saved, because the work package was changed since you've seen it the last time."
)

Handler = Callable[[Request], Response]


class OpenProjectApp(App):
    """Routes of the fake; every ``/api/v3`` route checks the API key first."""

    def __init__(self, state: OpenProjectState, api_key: str = API_KEY, *, webhooks: tuple[Webhook, ...] = (),
                 aggregation_s: float = 0.0) -> None:
        super().__init__("openproject", on_reset=self._reset_all)
        self.state = state
        self.api_key = api_key
        self.webhooks = WebhookSender(self._render, webhooks=webhooks, aggregation_s=aggregation_s)
        self.add_route("GET", "/_admin/stats", lambda request: json_response(200, state.stats()))
        self.add_route("GET", "/_admin/webhooks", lambda request: json_response(200, self.webhooks.snapshot()))
        self.add_route("PUT", "/_admin/webhooks", self._configure_webhooks)
        self.add_route("POST", "/_admin/webhooks/faults", self._webhook_faults)
        api = self._api_route
        api("GET", API, self.root)
        api("GET", f"{API}/users/me", lambda r: self._one(r, "users", str(state.api_user_id)))
        for collection in ("statuses", "types", "priorities", "users", "projects"):
            api("GET", f"{API}/{collection}", functools.partial(self.list_simple, collection=collection))
            api("GET", f"{API}/{collection}/{{id}}", functools.partial(self._one_by_id, collection=collection))
        api("GET", f"{API}/projects/{{id}}/types", lambda r: self.list_simple(r, "types"))
        api("GET", f"{API}/work_packages/schemas/{{id}}", self.schema)
        api("GET", f"{API}/work_packages", self.list_work_packages)
        api("POST", f"{API}/work_packages", self.create_work_package)
        api("GET", f"{API}/projects/{{project}}/work_packages", self.list_work_packages)
        api("POST", f"{API}/projects/{{project}}/work_packages", self.create_work_package)
        api("GET", f"{API}/work_packages/{{id}}", self.get_work_package)
        api("PATCH", f"{API}/work_packages/{{id}}", self.update_work_package)
        api("DELETE", f"{API}/work_packages/{{id}}", self.delete_work_package)
        api("GET", f"{API}/work_packages/{{id}}/activities", self.list_activities)
        api("POST", f"{API}/work_packages/{{id}}/activities", self.add_comment)

    # --- plumbing ---------------------------------------------------------------------------------

    def _reset_all(self) -> None:
        self.state.reset()
        self.webhooks.reset()

    def _render(self, wp_id: int) -> tuple[int, dict[str, Any]] | None:
        """A webhook job's view of a work package: its project and its current API v3 representation."""
        with self.state.lock:
            wp = self.state.work_packages.get(wp_id)
            return (wp.project_id, hal.work_package(self.state, wp)) if wp else None

    def _configure_webhooks(self, request: Request) -> Response:
        """Fake-only: ``{"webhooks": [{"url", "secret", "events", "projects", "enabled"}], "aggregation_s": 0}``
        (what an administrator enters in Administration → Webhooks, and the aggregation setting)."""
        spec = request.json() or {}
        hooks = tuple(Webhook.from_json(item) for item in spec.get("webhooks") or [])
        aggregation = spec.get("aggregation_s")
        self.webhooks.configure(hooks, None if aggregation is None else float(aggregation))
        return json_response(200, self.webhooks.snapshot())

    def _webhook_faults(self, request: Request) -> Response:
        """Fake-only: ``{"drop": n, "duplicate": n, "delay_s": s, "delay_count": n}`` for the next events."""
        self.webhooks.outbox.add_faults(OutboundFaults.from_json(request.json() or {}))
        return empty_response(204)

    def not_found(self, request: Request) -> Response:
        return hal.error(404, "NotFound", "The requested resource could not be found.")

    def _api_route(self, method: str, pattern: str, function: Handler) -> None:
        self.add_route(method, pattern, lambda request: self._guarded(request, function))

    def _guarded(self, request: Request, function: Handler) -> Response:
        if not self._authenticated(request.headers.get("authorization", "")):
            response = hal.error(401, "Unauthenticated", "You need to be authenticated to access this resource.")
            response.headers["WWW-Authenticate"] = 'Basic realm="OpenProject API"'
            return response
        if request.method in ("POST", "PATCH") and request.body:
            content_type = request.headers.get("content-type", "")
            if not content_type:
                return Response(406, b"Missing content-type header", "text/plain")
            if not content_type.startswith(("application/json", hal.HAL_JSON)):
                message = f"Expected CONTENT-TYPE to be application/json got {content_type}."
                return hal.error(415, "TypeNotSupported", message)
        with self.state.lock:
            return function(request)

    def _authenticated(self, header: str) -> bool:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer":
            return hmac.compare_digest(credentials.strip().encode(), self.api_key.encode())
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(credentials.strip()).decode("utf-8").partition(":")
        except ValueError:
            return False
        return user == "apikey" and hmac.compare_digest(password.encode(), self.api_key.encode())

    def _body(self, request: Request) -> tuple[Any, Response | None]:
        try:
            return request.json(), None
        except ValueError:
            return None, hal.error(400, "InvalidRequestBody", "The request body was not a single JSON object.")

    def _filters(self, request: Request, known: set[str], default: str = "[]",
                 dates: frozenset[str] = frozenset()) -> list[filters.Filter] | Response:
        try:
            return filters.parse(request.arg("filters") or default, known, dates)
        except filters.FilterError as exc:
            return hal.error(400, "InvalidQuery", str(exc))

    # --- reference data ---------------------------------------------------------------------------

    def root(self, request: Request) -> Response:
        return hal.hal(200, {
            "_type": "Root",
            "instanceName": "OpenProject sandbox",
            "coreVersion": "15.0.0",
            "_links": {
                "self": {"href": API},
                "user": hal.link("users", self.state.api_user_id),
                "workPackages": {"href": f"{API}/work_packages"},
                "statuses": {"href": f"{API}/statuses"},
                "types": {"href": f"{API}/types"},
                "priorities": {"href": f"{API}/priorities"},
                "projects": {"href": f"{API}/projects"},
            },
        })

    def _render_table(self, collection: str) -> dict[int, dict[str, Any]]:
        s = self.state
        if collection == "statuses":
            return {k: hal.status(v) for k, v in s.statuses.items()}
        if collection == "types":
            return {k: hal.type_(v) for k, v in s.types.items()}
        if collection == "priorities":
            return {k: hal.priority(v) for k, v in s.priorities.items()}
        if collection == "users":
            return {k: hal.user(v) for k, v in s.users.items()}
        return {k: hal.project(v) for k, v in s.projects.items() if v.visible}

    def list_simple(self, request: Request, collection: str) -> Response:
        """Statuses, types, priorities, users, projects; users and projects accept name filters."""
        names = {"id", "name", "login", "identifier"}
        parsed = self._filters(request, names)
        if isinstance(parsed, Response):
            return parsed
        elements = [
            element for element in self._render_table(collection).values()
            if filters.matches({k: str(element[k]) if k in element else None for k in names}, parsed)
        ]
        return hal.hal(200, hal.collection(elements, f"{API}/{collection}"))

    def _one_by_id(self, request: Request, collection: str) -> Response:
        return self._one(request, collection, request.params["id"])

    def _one(self, request: Request, collection: str, key: str) -> Response:
        if collection == "projects":
            project = self.state.project(key)
            if project is None:
                return hal.error(404, "NotFound", "The specified project does not exist.")
            return hal.hal(200, hal.project(project))
        element = self._render_table(collection).get(int(key)) if key.isdigit() else None
        if element is None:
            return hal.error(404, "NotFound", "The requested resource could not be found.")
        return hal.hal(200, element)

    def schema(self, request: Request) -> Response:
        project_id, _, type_id = request.params["id"].partition("-")
        if not (project_id.isdigit() and type_id.isdigit()):
            return hal.error(404, "NotFound", "The requested resource could not be found.")
        return hal.hal(200, hal.schema(self.state, int(project_id), int(type_id)))

    # --- work packages ----------------------------------------------------------------------------

    def _filter_fields(self, wp: WorkPackage) -> dict[str, str | None]:
        fields: dict[str, str | None] = {
            "id": str(wp.id),
            "project": str(wp.project_id),
            "type": str(wp.type_id),
            "status": str(wp.status_id),
            "priority": str(wp.priority_id),
            "assignee": str(wp.assignee_id) if wp.assignee_id else None,
            "responsible": str(wp.responsible_id) if wp.responsible_id else None,
            "parent": str(wp.parent_id) if wp.parent_id else None,
            "subject": wp.subject,
            "createdAt": wp.created_at,
            "updatedAt": wp.updated_at,
        }
        for key in self.state.custom_fields:
            value = wp.custom_values.get(key)
            fields[key] = None if value in (None, "") else str(value)
        return fields

    def list_work_packages(self, request: Request) -> Response:
        """Work packages, open ones only unless ``filters`` is sent (``[]`` or status ``*``: all)."""
        project_id = None
        if "project" in request.params:
            project = self.state.project(request.params["project"])
            if project is None:
                return hal.error(404, "NotFound", "The specified project does not exist.")
            project_id = project.id
        known = {"id", "project", "type", "status", "priority", "assignee", "responsible", "parent", "subject"}
        parsed = self._filters(request, known | set(self.state.custom_fields), DEFAULT_WP_FILTERS, WP_DATE_FILTERS)
        if isinstance(parsed, Response):
            return parsed
        order = _sort_order(request.arg("sortBy"))
        if isinstance(order, Response):
            return order
        try:
            page = max(1, int(request.arg("offset") or 1))
            size = int(request.arg("pageSize") or DEFAULT_PAGE_SIZE)
        except ValueError:
            return hal.error(400, "InvalidQuery", "offset and pageSize must be integers.")
        size = MAX_PAGE_SIZE if size < 0 or size > MAX_PAGE_SIZE else size
        found = [
            wp for wp in self.state.work_packages.values()
            if (project_id is None or wp.project_id == project_id)
            and filters.matches(self._filter_fields(wp), parsed, closed=self.state.statuses[wp.status_id].is_closed)
        ]
        for attribute, descending in reversed(order):  # stable sorts, the last key first
            found.sort(key=operator.attrgetter(attribute), reverse=descending)
        shown = found[(page - 1) * size: page * size]
        elements = [hal.work_package(self.state, wp) for wp in shown]
        body = hal.collection(elements, request.path, pageSize=size, offset=page)
        body["total"] = len(found)
        return hal.hal(200, body)

    def create_work_package(self, request: Request) -> Response:
        body, problem = self._body(request)
        if problem:
            return problem
        if not isinstance(body, dict):
            return hal.error(400, "InvalidRequestBody", "The request body was not a single JSON object.")
        body = copy.deepcopy(body)
        links = body.setdefault("_links", {})
        if not isinstance(links, dict):
            return hal.error(400, "InvalidRequestBody", "_links must be an object.")
        if "project" in request.params:
            project = self.state.project(request.params["project"])
            if project is None:
                return hal.error(404, "NotFound", "The specified project does not exist.")
            links["project"] = hal.link("projects", project.id)
        elif not (links.get("project") or {}).get("href"):
            return hal.error(422, "PropertyConstraintViolation", "Project can't be blank.", "project")
        s = self.state
        now = now_iso()
        wp = WorkPackage(
            id=s.next_id,
            project_id=0,
            type_id=s.default(s.types).id,
            status_id=s.default(s.statuses).id,
            priority_id=s.default(s.priorities).id,
            author_id=s.api_user_id,
            subject="",
            created_at=now,
            updated_at=now,
        )
        problem = apply_body(s, wp, body)
        if problem:
            return problem
        if not wp.subject.strip():
            return hal.error(422, "PropertyConstraintViolation", "Subject can't be blank.", "subject")
        if not s.projects[wp.project_id].can_add_work_packages:
            return hal.error(403, "MissingPermission", "You are not authorized to access this resource.")
        s.work_packages[wp.id] = wp
        s.next_id += 1
        self.webhooks.journal(wp.id, initial=True)
        response = hal.hal(201, hal.work_package(s, wp))
        response.headers["Location"] = f"{API}/work_packages/{wp.id}"
        return response

    def _find(self, request: Request) -> WorkPackage | None:
        key = request.params["id"]
        return self.state.work_packages.get(int(key)) if key.isdigit() else None

    def _wp_not_found(self) -> Response:
        return hal.error(404, "NotFound", "The specified work package does not exist.")

    def get_work_package(self, request: Request) -> Response:
        wp = self._find(request)
        return hal.hal(200, hal.work_package(self.state, wp)) if wp else self._wp_not_found()

    def update_work_package(self, request: Request) -> Response:
        """PATCH with the ``lockVersion`` of the last read; stale or missing → 409 UpdateConflict."""
        wp = self._find(request)
        if wp is None:
            return self._wp_not_found()
        body, problem = self._body(request)
        if problem:
            return problem
        if isinstance(body, dict) and body.get("lockVersion") != wp.lock_version:
            return hal.error(409, "UpdateConflict", CONFLICT_MESSAGE)
        changed = copy.deepcopy(wp)
        problem = apply_body(self.state, changed, {k: v for k, v in body.items() if k != "lockVersion"}
                             if isinstance(body, dict) else body)
        if problem:
            return problem
        changed.lock_version += 1
        changed.updated_at = now_iso()
        self.state.work_packages[wp.id] = changed
        self.webhooks.journal(wp.id, initial=False)
        return hal.hal(200, hal.work_package(self.state, changed))

    def delete_work_package(self, request: Request) -> Response:
        wp = self._find(request)
        if wp is None:
            return self._wp_not_found()
        del self.state.work_packages[wp.id]
        return empty_response(204)

    def _activity(self, wp: WorkPackage, index: int, comment: dict[str, Any]) -> dict[str, Any]:
        return {
            "_type": "Activity::Comment",
            "id": wp.id * 1000 + index,
            "comment": hal.formattable(comment["raw"]),
            "createdAt": comment["createdAt"],
            "_links": {
                "workPackage": hal.link("work_packages", wp.id, wp.subject),
                "user": hal.link("users", comment["userId"]),
            },
        }

    def list_activities(self, request: Request) -> Response:
        wp = self._find(request)
        if wp is None:
            return self._wp_not_found()
        elements = [self._activity(wp, i, c) for i, c in enumerate(wp.comments, start=1)]
        return hal.hal(200, hal.collection(elements, request.path))

    def add_comment(self, request: Request) -> Response:
        wp = self._find(request)
        if wp is None:
            return self._wp_not_found()
        body, problem = self._body(request)
        if problem:
            return problem
        raw = ((body or {}).get("comment") or {}).get("raw") if isinstance(body, dict) else None
        if not isinstance(raw, str) or not raw.strip():
            return hal.error(422, "PropertyConstraintViolation", "Comment can't be blank.", "comment")
        wp.comments.append({"raw": raw, "createdAt": now_iso(), "userId": self.state.api_user_id})
        self.webhooks.journal(wp.id, initial=False)
        return hal.hal(201, self._activity(wp, len(wp.comments), wp.comments[-1]))


def _sort_order(raw: str | None) -> list[tuple[str, bool]] | Response:
    """``sortBy=[["updatedAt","asc"],["id","asc"]]`` → (attribute, descending) pairs; the default and the
    tie-breaker is ``id`` ascending, as API v3 documents for work packages."""
    try:
        pairs = json.loads(raw) if raw else []
        order = [(SORTABLE[name], {"asc": False, "desc": True}[direction]) for name, direction in pairs]
    except (ValueError, TypeError, KeyError):
        return hal.error(400, "InvalidQuery", f"sortBy {raw} is not supported.")
    return [*order, ("id", False)]


class OpenProjectServer(SandboxServer):
    """The running fake; ``state`` for tests, ``settings_env`` for a daemon's environment."""

    app: OpenProjectApp

    @property
    def state(self) -> OpenProjectState:
        return self.app.state

    @property
    def settings_env(self) -> dict[str, str]:
        return {
            "OPENPROJECT_BASE_URL": self.url,
            "OPENPROJECT_API_KEY": self.app.api_key,
            "OPENPROJECT_EXTERNAL_ID_FIELD": EXTERNAL_ID_FIELD,
            "OPENPROJECT_DEFAULT_PROJECT": DEFAULT_PROJECT,
        }

    def stop(self) -> None:
        super().stop()
        self.app.webhooks.close()


def start(port: int = 0, *, host: str = "127.0.0.1", api_key: str = API_KEY, webhooks: tuple[Webhook, ...] = (),
          aggregation_s: float = 0.0) -> OpenProjectServer:
    """Serve a fresh fake in a background thread (port 0 = a free port); ``webhooks`` as an administrator
    configured them, ``aggregation_s`` the journal aggregation time before a webhook fires (real default 300)."""
    app = OpenProjectApp(OpenProjectState(), api_key, webhooks=webhooks, aggregation_s=aggregation_s)
    server = OpenProjectServer(app, host, port)
    server.start()
    return server


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m exchanger_sandbox openproject", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--api-key", default=API_KEY, help="the token the fake accepts")
    parser.add_argument("--webhook-url", default="", help="payload URL of a webhook (Administration → Webhooks)")
    parser.add_argument("--webhook-secret", default="", help="its signature secret (X-OP-Signature)")
    parser.add_argument("--webhook-events", default=",".join(WORK_PACKAGE_EVENTS), help="comma-separated events")
    parser.add_argument("--webhook-projects", default="", help="comma-separated project ids (default: all)")
    parser.add_argument("--aggregation-s", type=float, default=0.0,
                        help="journal aggregation time before a webhook fires (OpenProject's default: 300)")
    args = parser.parse_args(argv)
    hooks = () if not args.webhook_url else (Webhook(
        url=args.webhook_url, secret=args.webhook_secret, events=tuple(args.webhook_events.split(",")),
        projects=tuple(int(p) for p in args.webhook_projects.split(",")) if args.webhook_projects else None),)
    server = start(args.port, host=args.host, api_key=args.api_key, webhooks=hooks, aggregation_s=args.aggregation_s)
    return _serve_until_signal(server, json.dumps(server.settings_env))
