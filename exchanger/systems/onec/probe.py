"""``exchanger config check``'s read of 1C: the OData service root, through the client's auth and TLS."""

from __future__ import annotations

from exchanger.systems.onec.client import OneCClient
from exchanger.systems.onec.settings import OneCSettings


def reach(settings: OneCSettings) -> str:
    client = OneCClient(settings)
    try:
        return client.http.probe("")
    finally:
        client.close()
