"""The shared HTTP client's timeout rule: an unanswered write carries the settle wait, a read does not."""

from __future__ import annotations

import pytest

from exchanger.errors import Unreachable
from exchanger.http_client import HttpClient
from exchanger.sandbox.http import App, Fault, json_response, start


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
        client.request("POST", "/item", json={})
    assert caught.value.retry_after_s == 42.0


def test_a_timed_out_read_is_retried_without_the_settle_wait(slow_server) -> None:
    client = HttpClient(slow_server.url, system="slow", read_timeout_s=0.2, attempts=1, write_settle_s=42.0)
    with pytest.raises(Unreachable) as caught:
        client.request("GET", "/item")
    assert caught.value.retry_after_s is None
    with pytest.raises(Unreachable) as caught:  # a POST that only reads (Bitrix24 style) says so
        client.request("POST", "/item", json={}, write=False)
    assert caught.value.retry_after_s is None
