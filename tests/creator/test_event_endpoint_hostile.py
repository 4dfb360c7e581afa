"""The event endpoint against a hostile or broken caller: malformed bodies, lying Content-Length, huge
bodies, slow clients, floods, an unreachable broker. Every case through the real receiver on a real socket
and the real broker; each asserts what the caller is answered and what reaches the events queue."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker_queues import Queues, free_port, wait_for
from creator_testkit import ItemStore, context
from test_item_events import SYSTEM, TOKEN, EventStoreTracker, post
from worker_proxy import TcpProxy

from exchanger.amqp.topology import Topology, events_queue
from exchanger.creator.event_receiver import EventReceiver
from exchanger.settings import RabbitMQSettings

pytestmark = pytest.mark.usefixtures("topology")  # declares and purges <system>.events.queue too


@pytest.fixture
def tracker(tmp_path: Path) -> EventStoreTracker:
    return EventStoreTracker(context(SYSTEM), store=ItemStore(tmp_path / "items"), interval_s=60)


@pytest.fixture
def server(tracker: EventStoreTracker, rabbit_settings: RabbitMQSettings,
           topology: Topology) -> Iterator[EventReceiver]:
    receiver = EventReceiver({SYSTEM: tracker}, rabbit_settings, topology, port=0, max_bytes=4096,
                             read_timeout_s=1.0).start()
    yield receiver
    receiver.stop()


def raw(server: EventReceiver, request: bytes, timeout_s: float = 10) -> tuple[int, bytes]:
    """Send ``request`` as is; (status, body) of the answer, (0, b"") when the server closed without one."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout_s) as sock:
        sock.sendall(request)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    if not answer:
        return 0, b""
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def request(path: str, body: bytes, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: x", *headers]
    if not any(h.lower().startswith("content-length") for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def queued(queues: Queues) -> int:
    return queues.depth(events_queue(SYSTEM))


def test_a_body_the_tracker_cannot_read_is_answered_not_dropped(server: EventReceiver, queues: Queues) -> None:
    status, body = raw(server, request(f"/events/{SYSTEM}", b"{not json"))
    assert status in (400, 500), f"no answer for a malformed body (status {status})"
    assert "error" in json.loads(body)
    status, _ = raw(server, request(f"/events/{SYSTEM}", json.dumps({"token": TOKEN}).encode()))  # no "items"
    assert status in (400, 500)
    assert post(server, {"token": TOKEN, "items": ["item-1"]})[0] == 200, "the server died on bad input"
    assert queued(queues) == 1


@pytest.mark.parametrize("length", ["abc", "-5", "1e3", ""])
def test_a_content_length_that_is_no_length_is_400(server: EventReceiver, length: str) -> None:
    status, _ = raw(server, request(f"/events/{SYSTEM}", b"{}", f"Content-Length: {length}"))
    assert status == 400, f"Content-Length {length!r} answered {status}"


def test_a_body_above_the_bound_is_413_without_reading_it(server: EventReceiver, queues: Queues) -> None:
    status, _ = raw(server, request(f"/events/{SYSTEM}", b"", "Content-Length: 999999999"))
    assert status == 413
    status, _ = raw(server, request(f"/events/{SYSTEM}", b"x" * 5000))  # sent in full: still 413
    assert status == 413
    assert queued(queues) == 0


def test_unknown_paths_and_methods(server: EventReceiver) -> None:
    for path in ("/events/nosuch", "/events/", "/events/../events/1c", "/other", f"/events/{SYSTEM}/../x"):
        assert raw(server, request(path, b"{}"))[0] == 404, path
    status, _ = raw(server, f"GET /events/{SYSTEM} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert status in (404, 405, 501)


def test_a_body_shorter_than_its_content_length_times_out_and_others_are_served(
        server: EventReceiver, queues: Queues) -> None:
    """A slow (or lying) client holds one connection for the read timeout at most, never the others."""
    slow = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    slow.sendall(request(f"/events/{SYSTEM}", b'{"tok', "Content-Length: 100"))
    half_headers = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    half_headers.sendall(b"POST /events/1c HTTP/1.1\r\nHost: x\r\n")
    assert post(server, {"token": TOKEN, "items": ["item-2"]})[0] == 200, "a slow client blocked another call"
    started = time.monotonic()
    for sock in (slow, half_headers):
        with sock:
            try:
                rest = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                rest = b""
            assert time.monotonic() - started < 8, "a stalled client was never cut off"
            assert not rest or b" 408 " in rest or b" 400 " in rest, rest[:80]
    assert queued(queues) == 1


def test_stop_returns_while_a_client_stalls(tracker: EventStoreTracker, rabbit_settings: RabbitMQSettings,
                                            topology: Topology) -> None:
    receiver = EventReceiver({SYSTEM: tracker}, rabbit_settings, topology, port=0).start()
    stalled = socket.create_connection(("127.0.0.1", receiver.port), timeout=10)
    stalled.sendall(request(f"/events/{SYSTEM}", b"", "Content-Length: 50"))
    time.sleep(0.2)
    done = threading.Event()
    threading.Thread(target=lambda: (receiver.stop(), done.set()), daemon=True).start()
    assert done.wait(5), "stop() waited for a client that never finishes its body"
    stalled.close()


def test_a_flood_of_concurrent_calls_queues_every_event_once(server: EventReceiver, queues: Queues) -> None:
    answers: list[int] = []
    lock = threading.Lock()

    def caller(n: int) -> None:
        for k in range(10):
            status = post(server, {"token": TOKEN, "items": [f"item-{n}-{k}"]})[0]
            with lock:
                answers.append(status)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert answers.count(200) == 200, sorted(set(answers))
    wait_for(lambda: queued(queues) == 200, 10, f"200 events queued (have {queued(queues)})")


def test_thousands_of_ids_in_one_call_are_refused_whole_never_half_queued(server: EventReceiver,
                                                                          queues: Queues) -> None:
    body = json.dumps({"token": TOKEN, "items": [f"i{n}" for n in range(2000)]}).encode()
    status, _ = raw(server, request(f"/events/{SYSTEM}", body, "Content-Type: application/json"))
    assert status == 413
    assert queued(queues) == 0


def test_the_broker_away_is_503_never_200(tracker: EventStoreTracker, topology: Topology,
                                         rabbit_settings: RabbitMQSettings) -> None:
    away = rabbit_settings.model_copy(update={"port": free_port()})
    receiver = EventReceiver({SYSTEM: tracker}, away, topology, port=0).start()
    try:
        started = time.monotonic()
        status, body = post(receiver, {"token": TOKEN, "items": ["item-3"]})
        assert status == 503, (status, body)
        assert time.monotonic() - started < 30, "the caller waited too long for a 503"
        assert rabbit_settings.password.get_secret_value() not in json.dumps(body)
    finally:
        receiver.stop()


def test_a_hung_broker_is_503_and_calls_do_not_queue_up_behind_it(tracker: EventStoreTracker, topology: Topology,
                                                                  rabbit_settings: RabbitMQSettings) -> None:
    """A broker that takes the TCP connection and never answers: pika's handshake timeout, not a dropped call;
    and a second call at the same time is answered at once instead of waiting for the first one's timeout."""
    proxy = TcpProxy(rabbit_settings.port)
    proxy.mode = "blackhole"
    hung = rabbit_settings.model_copy(update={"port": proxy.port, "connection_attempts": 1})
    receiver = EventReceiver({SYSTEM: tracker}, hung, topology, port=0).start()
    answers: dict[str, tuple[int, float]] = {}

    def call(name: str) -> None:
        started = time.monotonic()
        answers[name] = (post(receiver, {"token": TOKEN, "items": [f"item-{name}"]}, timeout_s=60)[0],
                         time.monotonic() - started)

    try:
        first = threading.Thread(target=call, args=("first",))
        first.start()
        time.sleep(0.5)
        call("second")
        first.join(60)
    finally:
        receiver.stop()
        proxy.close()
    assert answers["first"][0] == 503 and answers["second"][0] == 503, answers
    assert answers["second"][1] < answers["first"][1], answers
