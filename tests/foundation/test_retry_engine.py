"""The one retry engine of the HTTP client: what is tried again is decided by the call's idempotency.

Against a loopback fake that counts the requests its route really handled, so each test asserts what
the server saw (one create, not two), not only what the client raised.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests

from exchanger.backoff import Backoff
from exchanger.errors import NotConnected, PermanentError, RateLimited, TransientError, Unreachable
from exchanger.http_client import CallHooks, CallRetryPolicy, HttpClient
from exchanger_sandbox.http import App, Fault, SandboxServer, json_response, start

FAST = Backoff(initial_s=0.01, max_s=1.0, jitter=0.0)


@dataclass
class Counting:
    server: SandboxServer
    app: App
    handled: list[str] = field(default_factory=list)

    def client(self, **options: object) -> HttpClient:
        settings: dict = {"system": "fake", "read_timeout_s": 0.3, "attempts": 3, "backoff": FAST,
                          "write_settle_s": 42.0, **options}
        return HttpClient(self.server.url, **settings)

    def fault(self, **spec: object) -> None:
        self.app.inject_fault(Fault(**spec))  # type: ignore[arg-type]


@pytest.fixture
def fake() -> Iterator[Counting]:
    app = App("counting")
    with start(app) as server:
        counting = Counting(server, app)

        def handle(request):  # noqa: ANN001, ANN202 - the sandbox's route signature
            counting.handled.append(request.method)
            return json_response(200, {"ok": True})

        app.add_route("GET", "/item", handle)
        app.add_route("POST", "/item", handle)
        yield counting


def test_an_idempotent_read_is_retried_on_5xx_and_on_a_read_timeout(fake: Counting) -> None:
    fake.fault(status=502, count=1)
    fake.fault(status=None, count=1, delay_s=0.6)  # past the read timeout
    assert fake.client().request("GET", "/item").json() == {"ok": True}
    assert fake.handled[-1] == "GET"


def test_a_post_that_only_reads_says_so_and_is_retried(fake: Counting) -> None:
    fake.fault(status=503, count=2)
    assert fake.client().request("POST", "/item", idempotent=True, json={}).json() == {"ok": True}
    assert fake.handled == ["POST"]


def test_a_write_is_not_repeated_after_a_read_timeout_but_raised_as_ambiguous(fake: Counting) -> None:
    fake.fault(status=None, count=1, delay_s=0.6)
    with pytest.raises(Unreachable, match="may still be processed") as caught:
        fake.client().request("POST", "/item", idempotent=False, json={})
    assert caught.value.retry_after_s == 42.0  # the creator waits this long, then looks the item up
    time.sleep(0.5)  # the server finishes the request the client gave up on
    assert fake.handled == ["POST"]  # once: no second create


def test_a_write_is_not_repeated_after_a_5xx(fake: Counting) -> None:
    fake.fault(status=500, count=2)
    with pytest.raises(TransientError) as caught:
        fake.client().request("POST", "/item", idempotent=False, json={})
    assert caught.value.status == 500 and fake.app.faults_pending() == 1  # one request, no second


def test_a_rate_limit_is_retried_even_for_a_write_honouring_retry_after(fake: Counting) -> None:
    fake.fault(status=429, count=1, headers={"Retry-After": "0.3"})
    started = time.monotonic()
    fake.client().request("POST", "/item", idempotent=False, json={})
    assert time.monotonic() - started >= 0.3  # the server's word, longer than the backoff's 0.01 s
    assert fake.handled == ["POST"]


def test_a_retry_after_beyond_the_cap_goes_to_the_caller_at_once(fake: Counting) -> None:
    """Sleeping 60 s of a 120 s Retry-After and asking again would only be refused again: the caller's
    delay queue honours the whole wait instead."""
    fake.fault(status=429, count=5, headers={"Retry-After": "120"})
    started = time.monotonic()
    with pytest.raises(RateLimited) as caught:
        fake.client().request("GET", "/item")
    assert caught.value.retry_after_s == 120.0 and time.monotonic() - started < 1.0
    assert fake.app.faults_pending() == 4  # one request spent


def test_a_write_that_never_left_is_retried() -> None:
    """A refused connection cannot have created anything: even a create is tried again."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens here
    attempts: list[bool] = []

    class Count(CallHooks):
        def before(self, idempotent: bool) -> None:
            attempts.append(idempotent)

    client = HttpClient(f"http://127.0.0.1:{port}", system="nobody", attempts=2, backoff=FAST, hooks=Count())
    with pytest.raises(NotConnected):
        client.request("POST", "/item", idempotent=False, json={})
    assert attempts == [False, False]


def test_hooks_pace_every_attempt_and_hear_of_refusals(fake: Counting) -> None:
    events: list[str] = []

    class Recorder(CallHooks):
        def before(self, idempotent: bool) -> None:
            events.append(f"before:{'read' if idempotent else 'write'}")

        def answered(self, response: requests.Response) -> None:
            events.append(f"answered:{response.status_code}")

        def refused(self, error: RateLimited) -> None:
            events.append("refused")

    fake.fault(status=429, count=1)
    fake.client(hooks=Recorder()).request("POST", "/item", idempotent=False, json={})
    assert events == ["before:write", "refused", "before:write", "answered:200"]


def test_a_system_may_refuse_to_retry_rate_limits(fake: Counting) -> None:
    fake.fault(status=429, count=2)
    with pytest.raises(RateLimited):
        fake.client(retry_rate_limited=False).request("GET", "/item")
    assert fake.app.faults_pending() == 1  # one request only


def test_a_post_or_patch_must_say_whether_it_is_idempotent(fake: Counting) -> None:
    with pytest.raises(TypeError, match="idempotent"):
        fake.client().request("POST", "/item", json={})
    assert fake.handled == []


def test_the_policy_alone_decides_what_is_retried() -> None:
    policy = CallRetryPolicy(attempts=3, backoff=FAST)
    server_error = TransientError("502", status=502)
    assert policy.retryable(server_error, idempotent=True)
    assert not policy.retryable(server_error, idempotent=False)
    assert not policy.retryable(Unreachable("read timeout"), idempotent=False)
    assert policy.retryable(NotConnected("refused"), idempotent=False)
    assert policy.retryable(RateLimited("slow down"), idempotent=False)
    assert not policy.retryable(PermanentError("400"), idempotent=True)
    assert not CallRetryPolicy(retry_rate_limited=False).retryable(RateLimited("429"), idempotent=True)
    assert policy.wait_s(3, server_error, retryable=True) is None  # attempts used up
    assert policy.wait_s(1, RateLimited("x", retry_after_s=0.5), retryable=True) == 0.5
    assert policy.wait_s(1, RateLimited("x", retry_after_s=5.0), retryable=True) is None  # beyond max_s
