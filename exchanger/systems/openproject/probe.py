"""``exchanger config check``'s read of OpenProject: the API root, through the client's auth and TLS."""

from __future__ import annotations

from exchanger.systems.openproject.client import API, OpenProjectClient
from exchanger.systems.openproject.settings import OpenProjectSettings


def reach(settings: OpenProjectSettings) -> str:
    client = OpenProjectClient(settings)
    try:
        return client.http.probe(API)
    finally:
        client.close()
