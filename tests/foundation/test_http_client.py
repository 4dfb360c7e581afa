"""The shared HTTP client's timeout rule: an unanswered write carries the settle wait, a read does not."""

from __future__ import annotations

import pytest

from exchanger.errors import NotFound, Unreachable
from exchanger.http_client import HttpClient
from exchanger_sandbox.http import App, Fault, json_response, start


@pytest.fixture
def slow_server():
    app = App("slow")
    app.add_route("GET", "/item", lambda request: json_response(200, {}))
    app.add_route("POST", "/item", lambda request: json_response(201, {}))
    with start(app) as server:
        app.inject_fault(Fault(status=None, count=10, delay_s=0.6))
        yield server


def test_a_timed_out_write_says_how_long_to_wait_before_looking_it_up(slow_server) -> None:
    client = HttpClient(slow_server.url, system="slow", read_timeout_s=0.2, attempts=1, write_settle_s=42.0)
    with pytest.raises(Unreachable, match="may still be processed") as caught:
        client.request("POST", "/item", json={}, idempotent=False)
    assert caught.value.retry_after_s == 42.0


def test_a_timed_out_read_is_retried_without_the_settle_wait(slow_server) -> None:
    client = HttpClient(slow_server.url, system="slow", read_timeout_s=0.2, attempts=1, write_settle_s=42.0)
    with pytest.raises(Unreachable) as caught:
        client.request("GET", "/item")
    assert caught.value.retry_after_s is None
    with pytest.raises(Unreachable) as caught:  # a POST that only reads (Bitrix24 style) says so
        client.request("POST", "/item", json={}, idempotent=True)
    assert caught.value.retry_after_s is None


@pytest.mark.parametrize("lean", [False, True])
def test_the_lean_path_sends_and_answers_like_the_session(lean: bool) -> None:
    """Camunda's hot calls go through urllib3 straight: same headers, auth, body, errors and timeout rule."""
    seen: list[tuple[dict[str, str], object]] = []
    app = App("echo")

    def record(request):  # noqa: ANN001, ANN202 - the sandbox's route signature
        seen.append((dict(request.headers), request.json()))
        return json_response(200, {"ok": True}) if request.json().get("n") != 2 else json_response(404, {"gone": 1})

    app.add_route("POST", "/item", record)
    with start(app) as server:
        client = HttpClient(server.url, system="echo", auth=("user", "secret"), headers={"Accept": "application/json"},
                            read_timeout_s=0.2, attempts=1, write_settle_s=42.0)
        answer = client.request("POST", "/item", json={"n": 1, "text": "Ω"}, idempotent=False, lean=lean)
        assert answer.json() == {"ok": True}
        with pytest.raises(NotFound):
            client.request("POST", "/item", json={"n": 2}, idempotent=False, lean=lean)
        app.inject_fault(Fault(status=None, count=1, delay_s=0.6))
        with pytest.raises(Unreachable, match="may still be processed") as caught:
            client.request("POST", "/item", json={"n": 3}, idempotent=False, lean=lean)
        assert caught.value.retry_after_s == 42.0
        client.close()
    headers, body = seen[0]
    assert body == {"n": 1, "text": "Ω"}
    assert headers["authorization"] == "Basic dXNlcjpzZWNyZXQ=" and headers["accept"] == "application/json"
    assert headers["content-type"] == "application/json"
    assert (client._lean is not None) == lean  # noqa: SLF001 - which path was taken


def test_the_lean_path_reports_a_refused_connection_as_the_session_does() -> None:
    client = HttpClient("http://127.0.0.1:9", system="nobody", attempts=1)  # nothing listens on the discard port
    for lean in (False, True):
        with pytest.raises(Unreachable, match="cannot reach"):
            client.request("POST", "/item", json={}, idempotent=False, lean=lean)
