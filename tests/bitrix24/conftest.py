"""A fake Bitrix24 portal per test (real HTTP on loopback) and a client pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from b24_helpers import TOKEN, client_for

from exchanger.systems.bitrix24.client import Bitrix24Client
from exchanger_sandbox.bitrix24.server import PortalServer, start


@pytest.fixture(scope="session")
def shared_portal() -> Iterator[PortalServer]:
    """One server for the session (stopping one takes half a second); see ``portal``."""
    server = start(0, token=TOKEN, rate_per_s=1000, burst=1000)
    yield server
    server.stop()


@pytest.fixture
def portal(shared_portal: PortalServer) -> PortalServer:
    """A freshly reset portal whose rate limit never gets in the way (the limit has tests of its own)."""
    requests.post(shared_portal.url + "/_admin/reset", timeout=5).raise_for_status()
    return shared_portal


@pytest.fixture
def client(portal: PortalServer) -> Iterator[Bitrix24Client]:
    b24 = client_for(portal)
    yield b24
    b24.close()
