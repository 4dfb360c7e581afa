"""A fake TicketDesk on loopback: tickets in memory, ``POST /tickets/{id}/close`` plays the person."""

from __future__ import annotations

import argparse
import itertools
import json
from typing import Any

from exchanger_sandbox.http import (
    App,
    Request,
    Response,
    SandboxServer,
    empty_response,
    json_response,
    serve_until_signal,
)


class TicketDeskApp(App):
    def __init__(self) -> None:
        super().__init__("ticketdesk", on_reset=self._clear)
        self.tickets: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self.add_route("POST", "/tickets", self._open)
        self.add_route("GET", "/tickets", self._find)
        self.add_route("GET", "/tickets/{id}", self._get)
        self.add_route("POST", "/tickets/{id}/close", self._close)
        self.add_route("DELETE", "/tickets/{id}", self._delete)

    def _clear(self) -> None:
        self.tickets.clear()

    def _open(self, request: Request) -> Response:
        ticket = {**request.json(), "id": str(next(self._ids)), "status": "open", "resolution": None}
        self.tickets[ticket["id"]] = ticket
        return json_response(201, ticket)

    def _find(self, request: Request) -> Response:
        wanted = request.arg("external_id")
        return json_response(200, [t for t in self.tickets.values() if t["external_id"] == wanted])

    def _get(self, request: Request) -> Response:
        ticket = self.tickets.get(request.params["id"])
        return json_response(200, ticket) if ticket else json_response(404, {"error": "no such ticket"})

    def _close(self, request: Request) -> Response:
        ticket = self.tickets[request.params["id"]]
        ticket.update(status="closed", resolution=(request.json() or {}).get("resolution", "done"))
        return json_response(200, ticket)


    def _delete(self, request: Request) -> Response:
        return empty_response(204) if self.tickets.pop(request.params["id"], None) else json_response(404, {})


def start(port: int = 0) -> SandboxServer:
    return SandboxServer(TicketDeskApp(), port=port).start()


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m exchanger_sandbox ticketdesk")
    parser.add_argument("--port", type=int, default=0)
    server = start(parser.parse_args(argv).port)
    return serve_until_signal(server, json.dumps({"TICKETDESK_BASE_URL": server.url}))
