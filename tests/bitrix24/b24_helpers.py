"""Helpers for the Bitrix24 tests: raw REST calls, task creation, fault injection, client factory."""

from __future__ import annotations

from typing import Any

import requests

from exchanger.backoff import Backoff
from exchanger.systems.bitrix24.client import Bitrix24Client
from exchanger.systems.bitrix24.settings import Bitrix24Settings
from exchanger_sandbox.bitrix24.server import PortalServer

FAST_BACKOFF = Backoff(initial_s=0.01, max_s=0.05, jitter=0.0)
TOKEN = "t0ken5ecretabc12"  # webhook code of user 1 in every test portal


def client_for(server: PortalServer, **overrides: Any) -> Bitrix24Client:
    options: dict[str, Any] = {"rate_per_s": 1000, "burst": 1000, "read_timeout_s": 0.5, "attempts": 3}
    options.update(overrides)
    return Bitrix24Client(Bitrix24Settings(webhook_url=server.webhook_url, **options), backoff=FAST_BACKOFF)


def rest(webhook_url: str, method: str, params: Any = None, **kwargs: Any) -> requests.Response:
    """One raw REST call, as a person's browser or script would send it."""
    return requests.post(webhook_url + method, json=params if params is not None else {}, timeout=5, **kwargs)


def new_task(webhook_url: str, **fields: Any) -> dict[str, Any]:
    body = {"TITLE": "Approve the invoice", "RESPONSIBLE_ID": 2, **fields}
    response = rest(webhook_url, "tasks.task.add", {"fields": body})
    assert response.status_code == 200, response.text
    return response.json()["result"]["task"]


def inject(server: PortalServer, **fault: Any) -> None:
    requests.post(server.url + "/_admin/faults", json=fault, timeout=5).raise_for_status()
