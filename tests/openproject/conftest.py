"""Fixtures: one fake OpenProject per module (reset before each test) and a client configured from it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import requests

from exchanger.backoff import Backoff
from exchanger.settings import load
from exchanger.systems.openproject.client import OpenProjectClient
from exchanger.systems.openproject.settings import OpenProjectSettings
from exchanger_sandbox.openproject import server as fake

FAST = Backoff(initial_s=0.01, max_s=0.05)  # retries in milliseconds, not seconds


@pytest.fixture(scope="module")
def op_server() -> Iterator[fake.OpenProjectServer]:
    server = fake.start()
    yield server
    server.stop()


@pytest.fixture
def op(op_server: fake.OpenProjectServer) -> fake.OpenProjectServer:
    requests.post(f"{op_server.url}/_admin/reset", timeout=5).raise_for_status()
    return op_server


@pytest.fixture
def op_settings(op: fake.OpenProjectServer, monkeypatch: pytest.MonkeyPatch) -> OpenProjectSettings:
    """Settings loaded from the environment the fake prints, as a daemon would get them."""
    for name, value in op.settings_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OPENPROJECT_READ_TIMEOUT_S", "0.5")
    monkeypatch.setenv("OPENPROJECT_ATTEMPTS", "3")
    return load(OpenProjectSettings)


@pytest.fixture
def make_client() -> Iterator[Callable[[OpenProjectSettings], OpenProjectClient]]:
    """Clients with millisecond backoff, closed after the test."""
    made: list[OpenProjectClient] = []

    def make(settings: OpenProjectSettings) -> OpenProjectClient:
        made.append(OpenProjectClient(settings, backoff=FAST))
        return made[-1]

    yield make
    for c in made:
        c.close()


@pytest.fixture
def client(op_settings: OpenProjectSettings, make_client: Callable[..., OpenProjectClient]) -> OpenProjectClient:
    return make_client(op_settings)


@pytest.fixture
def api(op: fake.OpenProjectServer) -> requests.Session:
    """A plain session authenticated like a person's browser script, for acting as a user."""
    session = requests.Session()
    session.auth = ("apikey", op.settings_env["OPENPROJECT_API_KEY"])
    return session


@pytest.fixture
def fault(op: fake.OpenProjectServer) -> Callable[..., None]:
    """Inject a fault through the admin API, e.g. ``fault(status=503, count=2)``."""

    def inject(**spec: object) -> None:
        requests.post(f"{op.url}/_admin/faults", json=spec, timeout=5).raise_for_status()

    return inject
