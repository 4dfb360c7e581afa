"""One pooled HTTP client to TicketDesk (the shared HttpClient: retries, timeouts, typed errors)."""

from __future__ import annotations

from typing import Any

from exchanger.http_client import HttpClient
from ticketdesk.settings import TicketDeskSettings


def connect(settings: TicketDeskSettings) -> HttpClient:
    return HttpClient.for_system(settings.base_url, settings, system="ticketdesk")


def ticket(http: HttpClient, ticket_id: str) -> dict[str, Any]:
    return http.request("GET", f"/tickets/{ticket_id}").json()


def find(http: HttpClient, task_id: str) -> list[dict[str, Any]]:
    """The tickets opened for a Camunda task (the idempotency key)."""
    return http.request("GET", "/tickets", params={"external_id": task_id}).json()


def probe(settings: TicketDeskSettings) -> str:
    """``exchanger config check``'s read of TicketDesk."""
    http = connect(settings)
    try:
        return http.probe("/tickets")
    finally:
        http.close()
