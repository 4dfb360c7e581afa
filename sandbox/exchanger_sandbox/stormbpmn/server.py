"""The fake StormBPMN server: the public API with ``X-Api-Key`` and the vendor's rate limit, and the old
internal endpoints with a Bearer token.

``python -m exchanger_sandbox stormbpmn --port 8084 [--seed]`` prints ``{"STORMBPMN_BASE_URL": ...,
"STORMBPMN_API_KEY": ..., "STORMBPMN_BEARER_TOKEN": ...}`` as its first line and serves until SIGTERM;
it starts empty unless ``--seed`` loads a few realistic diagrams. A person or script creates and
updates diagrams with ``POST /public-api/v1/upload-diagrams`` as on the real service.

Public answers carry ``X-Rate-Limit-Remaining`` and ``X-Rate-Limit-Retry-After-Seconds``; over quota
the answer is the vendor's 429 body; more than three overruns in 24 hours block the key (403). Admin
only: ``GET /_admin/stats`` (requests, overruns, blocked), ``PUT /_admin/assignees/{diagramId}`` (the
assignee edges of a diagram, as analysts draw them), the toolkit's ``/_admin/faults`` and ``/_admin/reset``.
"""

from __future__ import annotations

import argparse
import hmac
import json
import math
import time
from collections.abc import Callable
from typing import Any

import requests

from exchanger_sandbox.http import App, Request, Response, SandboxServer, json_response, serve_until_signal
from exchanger_sandbox.stormbpmn.seed import seed
from exchanger_sandbox.stormbpmn.state import PAGE_SIZE, QUOTA_PER_WINDOW, WINDOW_S, Quota, Team

DEFAULT_PORT = 8084
API_KEY = "storm-sandbox-api-key-0001"
BEARER_TOKEN = "storm-sandbox-bearer-token-0001"
MAX_UPLOAD = 20  # diagrams per upload request

Route = Callable[[Request], Response]


def spring_error(status: int, error: str, message: str, path: str) -> Response:
    timestamp = time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime())
    return json_response(status, {"timestamp": timestamp, "status": status, "error": error, "message": message,
                                  "path": path})


class StormApp(App):
    def __init__(self, team: Team, quota: Quota, api_key: str = API_KEY, bearer_token: str = BEARER_TOKEN) -> None:
        super().__init__("stormbpmn", on_reset=self._on_reset)
        self.team = team
        self.quota = quota
        self.api_key = api_key
        self.bearer_token = bearer_token
        self.add_route("GET", "/public-api/v1/get-diagram-list", self._public(self.diagram_list))
        self.add_route("GET", "/public-api/v1/get-diagram-by-id", self._public(self.diagram_by_id))
        self.add_route("POST", "/public-api/v1/upload-diagrams", self._public(self.upload))
        self.add_route("GET", "/api/v1/diagram/filter", self._internal(self.filter))
        self.add_route("GET", "/api/v1/diagram/{diagram_id}", self._internal(self.internal_diagram))
        self.add_route("GET", "/api/v1/assignee/assigneeedges/{diagram_id}", self._internal(self.edges))
        self.add_route("GET", "/_admin/stats", lambda request: json_response(200, self.stats()))
        self.add_route("PUT", "/_admin/assignees/{diagram_id}", self.set_edges)

    def _on_reset(self) -> None:
        self.team.reset()
        self.quota.reset()

    def stats(self) -> dict[str, Any]:
        with self.team.lock:
            return {"diagrams": len(self.team.diagrams), "requests": self.team.requests,
                    "overruns": len(self.quota.overruns), "blocked": self.quota.blocked}

    # --- auth and the quota ---------------------------------------------------------------------------

    def _public(self, route: Route) -> Route:
        def guarded(request: Request) -> Response:
            with self.team.lock:
                self.team.requests += 1
                key = request.headers.get("x-api-key", "")
                if not key:
                    return spring_error(401, "Unauthorized", "X-Api-Key header is missing", request.path)
                if not hmac.compare_digest(key.encode(), self.api_key.encode()):
                    return spring_error(403, "Forbidden", "Invalid API key", request.path)
                if self.quota.blocked:
                    return spring_error(403, "Forbidden", "Account blocked for exceeding the API quota; contact "
                                                          "support", request.path)
                allowed, remaining, retry = self.quota.take()
                headers = {"X-Rate-Limit-Remaining": str(remaining),
                           "X-Rate-Limit-Retry-After-Seconds": str(math.ceil(retry))}
                if not allowed:
                    response = spring_error(429, "Too Many Requests", "You have exhausted your API Request Quota",
                                            request.path)
                else:
                    response = route(request)
            response.headers.update(headers)
            return response

        return guarded

    def _internal(self, route: Route) -> Route:
        def guarded(request: Request) -> Response:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), self.bearer_token.encode()):
                return spring_error(401, "Unauthorized", "Full authentication is required", request.path)
            with self.team.lock:
                self.team.requests += 1
                return route(request)

        return guarded

    # --- public API ---------------------------------------------------------------------------------------

    def diagram_list(self, request: Request) -> Response:
        page_text = request.arg("page")
        if page_text is None or not page_text.isdigit():
            return spring_error(400, "Bad Request", "Required parameter 'page' is not present", request.path)
        page = int(page_text)
        diagrams = self.team.ordered()
        rows = [d.row() for d in diagrams[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]]
        return json_response(200, {"totalElements": len(diagrams), "page": page, "size": PAGE_SIZE,
                                   "returnDiagrams": rows})

    def diagram_by_id(self, request: Request) -> Response:
        diagram = self.team.diagrams.get(request.arg("diagramId") or "")
        if diagram is None:
            return spring_error(404, "Not Found", "Diagram not found", request.path)
        return json_response(200, {**diagram.row(), "body": diagram.body})

    def upload(self, request: Request) -> Response:
        try:
            items = request.json()
        except ValueError:
            return spring_error(400, "Bad Request", "JSON parse error", request.path)
        if not isinstance(items, list) or len(items) > MAX_UPLOAD:
            return spring_error(400, "Bad Request", f"expected a list of at most {MAX_UPLOAD} diagrams", request.path)
        errors: dict[str, list[str]] = {"emptyName": [], "emptyDefinition": [], "notXml": []}
        created: list[dict[str, str]] = []
        updated: list[dict[str, str]] = []
        for item in items:
            source_id = str(item.get("id") or "")
            if not str(item.get("name") or "").strip():
                errors["emptyName"].append(source_id)
            elif not str(item.get("xml") or "").strip():
                errors["emptyDefinition"].append(source_id)
            elif not str(item["xml"]).lstrip().startswith("<"):
                errors["notXml"].append(source_id)
            else:
                storm_id, new = self.team.upload(item)
                (created if new else updated).append({"stormDiagramId": storm_id, "sourceDiagramId": source_id})
        return json_response(200, {"errors": errors, "createdDiagrams": created, "updatedDiagrams": updated})

    # --- internal endpoints of the old tool -------------------------------------------------------------

    def filter(self, request: Request) -> Response:
        size = int(request.arg("size") or PAGE_SIZE)
        page = int(request.arg("page") or 0)
        diagrams = self.team.ordered()
        content = [{"id": d.id, "name": d.name, "status": d.status, "authorUsername": d.updated_by,
                    "updatedOn": d.updated_on, "type": d.type} for d in diagrams[page * size:(page + 1) * size]]
        return json_response(200, {"content": content, "totalElements": len(diagrams),
                                   "totalPages": max(1, math.ceil(len(diagrams) / size)), "size": size,
                                   "number": page, "first": page == 0, "empty": not content})

    def internal_diagram(self, request: Request) -> Response:
        diagram = self.team.diagrams.get(request.params["diagram_id"])
        if diagram is None:
            return spring_error(404, "Not Found", "Diagram not found", request.path)
        data = {**diagram.row(), "body": diagram.body, "updateBy": diagram.updated_by, "processType": "BPMN",
                "description": "", "tags": []}
        return json_response(200, {"permission": "EDIT", "diagram": data})

    def edges(self, request: Request) -> Response:
        diagram = self.team.diagrams.get(request.params["diagram_id"])
        if diagram is None:
            return spring_error(404, "Not Found", "Diagram not found", request.path)
        return json_response(200, diagram.edges)

    def set_edges(self, request: Request) -> Response:
        with self.team.lock:
            diagram = self.team.diagrams.get(request.params["diagram_id"])
            if diagram is None:
                return json_response(404, {"error": "no such diagram"})
            diagram.edges = list(request.json() or [])
        return json_response(200, {"edges": len(diagram.edges)})


class StormServer(SandboxServer):
    app: StormApp

    @property
    def team(self) -> Team:
        return self.app.team

    @property
    def settings_env(self) -> dict[str, str]:
        return {"STORMBPMN_BASE_URL": self.url, "STORMBPMN_API_KEY": self.app.api_key,
                "STORMBPMN_BEARER_TOKEN": self.app.bearer_token}


def upload(base_url: str, api_key: str, items: list[dict[str, str]]) -> dict[str, Any]:
    """Create or update diagrams the standard way (``{"id", "name", "xml"}`` each), as a person's script does."""
    response = requests.post(base_url + "/public-api/v1/upload-diagrams", json=items, headers={"X-Api-Key": api_key},
                             timeout=10)
    response.raise_for_status()
    return dict(response.json())


def start(port: int = 0, *, host: str = "127.0.0.1", seeded: bool = False, per_window: int = QUOTA_PER_WINDOW,
          window_s: float = WINDOW_S, api_key: str = API_KEY, bearer_token: str = BEARER_TOKEN) -> StormServer:
    """Serve a fake StormBPMN team in a background thread (port 0 = a free port)."""
    team = Team()
    if seeded:
        seed(team)
    server = StormServer(StormApp(team, Quota(per_window, window_s), api_key, bearer_token), host, port)
    server.start()
    return server


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m exchanger_sandbox stormbpmn", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--seed", action="store_true", help="start with a few realistic diagrams")
    parser.add_argument("--per-window", type=int, default=QUOTA_PER_WINDOW, help="requests per window (5)")
    parser.add_argument("--window-s", type=float, default=WINDOW_S, help="quota window in seconds (60)")
    args = parser.parse_args(argv)
    server = start(args.port, host=args.host, seeded=args.seed, per_window=args.per_window, window_s=args.window_s)
    return serve_until_signal(server, json.dumps(server.settings_env))
