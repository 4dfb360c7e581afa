"""Delay queues are bounded (a ladder of steps), expire when unused, and old-style queues still drain."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from exchanger.amqp.connection import connect
from exchanger.amqp.publisher import Publisher
from exchanger.amqp.topology import DELAY_LADDER_S, Topology, delay_bucket_s
from exchanger.routing import RoutingTable
from exchanger.settings import RabbitMQSettings, TopologySettings


def _delay_queues(vhost: str) -> dict[str, dict]:
    """name → arguments of every ``exchanger.delay.*`` queue of ``vhost`` (as the broker lists them)."""
    out = subprocess.run(["rabbitmqctl", "-q", "--formatter", "json", "list_queues", "-p", vhost, "name",
                          "arguments"], check=True, capture_output=True, text=True, timeout=60).stdout
    rows = json.loads(out or "[]")
    return {row["name"]: dict(row["arguments"]) if isinstance(row["arguments"], dict)
            else {a[0]: a[2] for a in row["arguments"]} for row in rows
            if row["name"].startswith("exchanger.delay.")}


@pytest.fixture
def fresh(vhost_factory):
    vhost = vhost_factory()
    settings = RabbitMQSettings(virtual_host=vhost, heartbeat_s=10, reconnect_max_s=2.0)
    topology = Topology(TopologySettings(), RoutingTable().systems, virtual_host=vhost)
    connection = connect(settings, name="t", attempts=3)
    topology.declare(connection)
    connection.close()
    return settings, topology


def test_the_ladder_rounds_up_and_caps():
    assert delay_bucket_s(1) == 1 and delay_bucket_s(1000) == 1 and delay_bucket_s(1001) == 2
    assert delay_bucket_s(37_000) == delay_bucket_s(38_000) == 45
    assert delay_bucket_s(70_000) == 90
    assert delay_bucket_s(10**12) == DELAY_LADDER_S[-1]
    assert list(DELAY_LADDER_S) == sorted(set(DELAY_LADDER_S))


def test_forty_distinct_delays_leave_a_bounded_number_of_expiring_quorum_queues(fresh):
    settings, topology = fresh
    with Publisher(settings, topology, name="t") as publisher:
        for seconds in range(21, 61):  # 40 distinct Retry-After values
            publisher.publish_delayed("python.queue", seconds * 1000, b"{}")
    queues = _delay_queues(settings.virtual_host)
    assert sorted(queues) == ["exchanger.delay.30s", "exchanger.delay.45s", "exchanger.delay.60s"]
    arguments = queues["exchanger.delay.45s"]
    assert arguments["x-queue-type"] == "quorum" and arguments["x-dead-letter-strategy"] == "at-least-once"
    assert arguments["x-message-ttl"] == 45_000 and arguments["x-expires"] > 45_000


def test_an_absurd_delay_is_capped_to_the_longest_step(fresh):
    settings, topology = fresh
    with Publisher(settings, topology, name="t") as publisher:
        publisher.publish_delayed("python.queue", 10**12, b"{}")  # ~31 years: the broker refuses such a TTL
    assert list(_delay_queues(settings.virtual_host)) == [f"exchanger.delay.{DELAY_LADDER_S[-1]}s"]


def test_messages_in_an_old_style_delay_queue_still_come_back_and_new_ones_are_not_copied_there(fresh):
    """Installations before the ladder have ``exchanger.delay.<ms>`` queues (no x-expires) bound with
    ``<ms>.#``: declaring them anew would clash, so the new names differ; their messages must still return."""
    settings, topology = fresh
    s = topology.settings
    connection = connect(settings, name="t", attempts=3)
    channel = connection.channel()
    channel.confirm_delivery()
    old = "exchanger.delay.1000"
    channel.queue_declare(old, durable=True, arguments={
        "x-queue-type": "quorum", "x-message-ttl": 1000, "x-dead-letter-exchange": s.redeliver_exchange,
        "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"})
    channel.queue_bind(old, s.delay_exchange, routing_key="1000.#")
    channel.basic_publish(s.delay_exchange, "1000.python.queue", b"old")
    with Publisher(settings, topology, name="t") as publisher:
        publisher.publish_delayed("python.queue", 1000, b"new")
    bodies: list[bytes] = []
    deadline = time.monotonic() + 15
    while len(bodies) < 2 and time.monotonic() < deadline:
        method, _props, body = channel.basic_get("python.queue", auto_ack=True)
        if method is None:
            time.sleep(0.1)
        else:
            bodies.append(body)
    time.sleep(1.5)  # a copy through the old queue would arrive by now
    assert channel.basic_get("python.queue", auto_ack=True)[0] is None
    connection.close()
    assert sorted(bodies) == [b"new", b"old"]
