"""The StormBPMN limiter (fake clock), and the client against the fake StormBPMN over real HTTP: paging,
auth errors, the vendor's rate-limit headers and 429, upload versioning, the internal endpoints."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import pytest
import requests
from loguru import logger

from exchanger.backoff import Backoff
from exchanger.errors import AuthError, NotFound, RateLimited
from exchanger.sync.ratelimit import StormRateLimiter
from exchanger.sync.settings import StormSettings
from exchanger.sync.storm import StormClient, token_expiry
from exchanger_sandbox.stormbpmn.seed import SEED
from exchanger_sandbox.stormbpmn.server import API_KEY, BEARER_TOKEN, StormServer, start
from exchanger_sandbox.stormbpmn.server import upload as storm_upload

FAST = Backoff(initial_s=0.01, max_s=0.02, jitter=0.0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_limiter_never_lets_more_than_its_limit_into_any_minute() -> None:
    clock = FakeClock()
    limiter = StormRateLimiter(4, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(13):
        limiter.acquire()
        times.append(clock.now)
    for t in times:
        assert len([u for u in times if t <= u < t + 60]) <= 4
    assert times[-1] - times[0] == pytest.approx(180)  # 13 calls at 4 a minute: three full minutes


def test_the_limiter_honours_the_servers_headers_and_429s_and_remembers_them() -> None:
    clock = FakeClock()
    limiter = StormRateLimiter(4, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    limiter.observe({"X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Retry-After-Seconds": "37"})
    start_at = clock.now
    limiter.acquire()
    assert clock.now - start_at == pytest.approx(37)
    limiter.rejected(None)  # a 429 without a header: a minute
    assert limiter.wait_s() == pytest.approx(60)
    restored = StormRateLimiter(4, clock=clock, sleep=clock.sleep)
    restored.restore(limiter.snapshot())  # a restart keeps the memory
    assert restored.wait_s() == pytest.approx(60)
    clock.now += 120
    restored.rejected(5)  # the second 429 in 24 hours: stop until the first is a day old
    clock.now += 10
    with pytest.raises(RateLimited, match="no calls until"):
        restored.wait_s()
    clock.now += 86_400
    assert restored.wait_s() == 0 and restored.budget()["rejections_24h"] == 0


@pytest.fixture
def storm() -> Iterator[StormServer]:
    server = start(0, per_window=5, window_s=1.0)  # the vendor's 5 a minute, in a one-second window
    yield server
    server.stop()


def client_for(server: StormServer, *, per_window: float = 5, window_s: float = 1.0, **settings: object) -> StormClient:
    options = {"base_url": server.url, "api_key": API_KEY, "bearer_token": BEARER_TOKEN, "attempts": 2, **settings}
    return StormClient(StormSettings(**options), StormRateLimiter(per_window, window_s=window_s), backoff=FAST)


def upload(server: StormServer, items: list[dict]) -> dict:
    """A person's script creating or updating diagrams through the public API (not metered here)."""
    server.app.quota.reset()
    answer = storm_upload(server.url, API_KEY, items)
    server.app.quota.reset()
    return answer


def test_upload_creates_then_versions_a_diagram(storm: StormServer) -> None:
    first = upload(storm, [{"id": "ext-1", "name": "Отпуск", "xml": "<a/>"}, {"id": "bad", "name": "", "xml": "<a/>"},
                           {"id": "txt", "name": "Текст", "xml": "not xml"}])
    assert len(first["createdDiagrams"]) == 1 and first["errors"]["emptyName"] == ["bad"]
    assert first["errors"]["notXml"] == ["txt"]
    storm_id = first["createdDiagrams"][0]["stormDiagramId"]
    second = upload(storm, [{"id": "ext-1", "name": "Отпуск 2", "xml": "<b/>"}])
    assert second["updatedDiagrams"] == [{"stormDiagramId": storm_id, "sourceDiagramId": "ext-1"}]
    client = client_for(storm)
    diagram = client.diagram(storm_id)
    assert (diagram["versionNumber"], diagram["name"], diagram["body"]) == (2, "Отпуск 2", "<b/>")


def test_every_page_is_read_within_the_limit(storm: StormServer) -> None:
    for batch in range(3):  # 45 diagrams: three pages of 20
        upload(storm, [{"id": f"d-{batch}-{n}", "name": f"Диаграмма {n}", "xml": "<x/>"} for n in range(15)])
    client = client_for(storm)
    started = time.monotonic()
    for _ in range(3):  # 9 list calls: more than the quota allows in one window
        listing = client.diagrams()
        assert len(listing) == 45 and len({d.id for d in listing}) == 45
    assert storm.app.stats()["overruns"] == 0  # never a 429
    assert time.monotonic() - started >= 1.0  # the limiter waited for the next window


def test_the_servers_headers_stop_a_burst_the_local_limit_would_allow(storm: StormServer) -> None:
    """A limiter set looser than the account (e.g. the key is shared) still never overruns: it obeys
    X-Rate-Limit-Remaining: 0 and X-Rate-Limit-Retry-After-Seconds."""
    upload(storm, [{"id": "one", "name": "Одна", "xml": "<x/>"}])
    client = client_for(storm, per_window=5, window_s=0.2)
    for _ in range(12):
        client.diagrams()
    assert storm.app.stats()["overruns"] == 0


def test_a_429_is_recorded_and_raised_never_retried(storm: StormServer) -> None:
    upload(storm, [{"id": "one", "name": "Одна", "xml": "<x/>"}])
    for _ in range(5):  # someone else used the whole budget of the key
        requests.get(storm.url + "/public-api/v1/get-diagram-list?page=0", headers={"X-Api-Key": API_KEY}, timeout=5)
    client = client_for(storm, per_window=5, window_s=0.01)
    with pytest.raises(RateLimited) as caught:
        client.diagrams()
    assert caught.value.retry_after_s == 1.0
    assert storm.app.stats()["overruns"] == 1  # exactly one 429: not retried
    assert client.limiter.budget()["rejections_24h"] == 1 and client.limiter.wait_s() > 0.5


def test_bad_credentials_unknown_diagrams_and_secrets(storm: StormServer) -> None:
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="DEBUG")
    try:
        with pytest.raises(AuthError) as caught:
            client_for(storm, api_key="wrong-key-123456").diagrams()
        assert caught.value.status == 403
        with pytest.raises(NotFound):
            client_for(storm).diagram("00000000-0000-0000-0000-000000000000")
        with pytest.raises(AuthError):
            client_for(storm, bearer_token="expired-token-1234").assignee_edges("x")
    finally:
        logger.remove(sink)
    assert not any(API_KEY in line or "wrong-key-123456" in line for line in lines)
    assert storm.app.stats()["overruns"] == 0


def test_seeded_diagrams_and_their_assignee_edges() -> None:
    server = start(0, seeded=True, per_window=50, window_s=1.0)
    try:
        client = client_for(server, per_window=50)
        names = sorted(d.name for d in client.diagrams())
        assert names == sorted(name for _, name, _, _ in SEED)
        contract = next(d for d in client.diagrams() if d.name == "Согласование договора")
        edges = client.assignee_edges(contract.id)
        assert edges[0]["assigneeType"] == "HUMAN" and "ЧЕКЛИСТ" in edges[0]["description"]
        assert "bpmn:collaboration" in client.diagram(contract.id)["body"]
    finally:
        server.stop()


def test_the_bearer_tokens_expiry_is_read_from_a_jwt() -> None:
    payload = base64.urlsafe_b64encode(json.dumps({"sub": "analyst", "exp": 1_900_000_000}).encode()).rstrip(b"=")
    assert token_expiry(f"eyJhbGciOiJIUzI1NiJ9.{payload.decode()}.c2lnbmF0dXJl") == 1_900_000_000
    assert token_expiry("opaque-token") is None and token_expiry("a.b.c") is None
