"""Fixtures: one fake 1C infobase per module (reset before each test) and a client configured from it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import requests

from exchanger.backoff import Backoff
from exchanger.settings import load
from exchanger.systems.onec.client import OneCClient
from exchanger.systems.onec.settings import OneCSettings
from exchanger_sandbox.onec import server as fake

FAST = Backoff(initial_s=0.01, max_s=0.05)  # retries in milliseconds, not seconds


@pytest.fixture(scope="module")
def onec_server() -> Iterator[fake.OneCServer]:
    server = fake.start()
    yield server
    server.stop()


@pytest.fixture
def onec(onec_server: fake.OneCServer) -> fake.OneCServer:
    requests.post(f"{onec_server.url}/_admin/reset", timeout=5).raise_for_status()
    return onec_server


@pytest.fixture
def onec_settings(onec: fake.OneCServer, monkeypatch: pytest.MonkeyPatch) -> OneCSettings:
    """Settings loaded from the environment the fake prints, as a daemon would get them."""
    for name, value in onec.settings_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ONEC_READ_TIMEOUT_S", "0.5")
    monkeypatch.setenv("ONEC_ATTEMPTS", "3")
    return load(OneCSettings)


@pytest.fixture
def make_client() -> Iterator[Callable[[OneCSettings], OneCClient]]:
    """Clients with millisecond backoff, closed after the test."""
    made: list[OneCClient] = []

    def make(settings: OneCSettings) -> OneCClient:
        made.append(OneCClient(settings, backoff=FAST))
        return made[-1]

    yield make
    for c in made:
        c.close()


@pytest.fixture
def client(onec_settings: OneCSettings, make_client: Callable[[OneCSettings], OneCClient]) -> OneCClient:
    return make_client(onec_settings)


@pytest.fixture
def odata(onec: fake.OneCServer) -> Callable[..., requests.Response]:
    """Raw calls as a person's script makes them: ``odata("GET", "Catalog_X", params=...)``."""
    session = requests.Session()
    session.auth = (onec.settings_env["ONEC_USERNAME"].encode(), onec.settings_env["ONEC_PASSWORD"].encode())

    def call(method: str, resource: str, **kwargs: object) -> requests.Response:
        params = {"$format": "json", **(kwargs.pop("params", None) or {})}  # type: ignore[dict-item]
        return session.request(method, f"{onec.base_url}/{resource}", params=params, **kwargs)  # type: ignore[arg-type]

    return call


@pytest.fixture
def admin(onec: fake.OneCServer) -> Callable[..., None]:
    """Admin API: ``admin("faults", status=503, count=2)``, ``admin("posting_failure", message=...)``."""

    def post(what: str, **spec: object) -> None:
        requests.post(f"{onec.url}/_admin/{what}", json=spec, timeout=5).raise_for_status()

    return post
