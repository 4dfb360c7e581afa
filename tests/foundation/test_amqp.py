"""The RabbitMQ layer against the real broker: routing, confirms, consumer ack policy, delays, parking."""

from __future__ import annotations

import json
import threading
import time

import pytest
from pika.exceptions import ChannelClosedByBroker

from exchanger.amqp.connection import connect
from exchanger.amqp.consumer import Batching, Consumer, Delivery
from exchanger.amqp.publisher import ATTEMPT_HEADER, Outgoing, Publisher, PublishRefused, Unroutable
from exchanger.amqp.topology import Topology, TopologyMismatch, delay_queue_arguments
from exchanger.backoff import Backoff
from exchanger.contracts import TaskMessage
from exchanger.errors import ParkMessage, RetryLater
from exchanger.routing import RoutingTable
from exchanger.settings import RabbitMQSettings, TopologySettings


def test_dotted_and_hyphenated_topics_reach_their_system_and_unknown_ones_default(rabbit_settings, topology, queues):
    routing = RoutingTable({"bitrix24": ["bitrix.create-task.v2"], "python": ["send_email"]})
    with Publisher(rabbit_settings, topology, name="t") as publisher:
        for topic in ("bitrix.create-task.v2", "nobody_knows_me"):
            publisher.publish(topology.settings.tasks_exchange, routing.routing_key(topic), topic.encode())
    assert queues.get("bitrix24.queue")[2] == b"bitrix.create-task.v2"
    assert queues.get("default.queue")[2] == b"nobody_knows_me"


def test_unroutable_publish_raises(rabbit_settings, topology):
    with Publisher(rabbit_settings, topology, name="t") as publisher:
        with pytest.raises(Unroutable, match="no queue bound"):
            publisher.publish(topology.settings.responses_exchange, "no-such-key", b"{}")


def test_a_pipelined_batch_gets_one_outcome_per_message_in_order(rabbit_settings, topology, queues):
    """Confirmed, returned (unroutable) and nacked (a full queue with reject-publish) in one window."""
    full = "test.pipelined.full"
    queues.channel.queue_delete(full)
    queues.channel.queue_declare(full, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    exchange = topology.settings.tasks_exchange
    batch = [Publisher.properties(message_id=f"m{n}") for n in range(6)]
    messages = [(exchange, "bitrix24.a"), ("", full), (exchange, "bitrix24.b"), ("", full),
                (topology.settings.responses_exchange, "no-such-key"), (exchange, "bitrix24.c")]
    with Publisher(rabbit_settings, topology, name="t") as publisher:
        outcomes = publisher.publish_many(
            [Outgoing(ex, key, f"body{n}".encode(), batch[n]) for n, (ex, key) in enumerate(messages)], window=4)
        again = publisher.publish_many([Outgoing(exchange, "bitrix24.d", b"body6", Publisher.properties())])
    assert [type(o).__name__ for o in outcomes] == ["NoneType", "NoneType", "NoneType", "PublishRefused",
                                                    "Unroutable", "NoneType"]
    assert isinstance(outcomes[3], PublishRefused) and again == [None]
    assert [queues.get("bitrix24.queue")[2] for _ in range(4)] == [b"body0", b"body2", b"body5", b"body6"]
    assert queues.depth(full) == 1
    queues.channel.queue_delete(full)


def test_declaring_the_topology_twice_changes_nothing(rabbit_settings, topology, queues):
    with Publisher(rabbit_settings, topology, name="t") as publisher:
        publisher.publish("", "python.queue", b"kept")
    connection = connect(rabbit_settings, name="t", attempts=1)
    topology.declare(connection)
    topology.declare(connection)
    connection.close()
    assert queues.depth("python.queue") == 1


def test_a_queue_declared_with_other_arguments_stops_with_migration_advice(rabbit_settings, topology):
    quorum = Topology(TopologySettings(), topology.systems, queue_type="quorum", virtual_host=topology.virtual_host)
    connection = connect(rabbit_settings, name="t", attempts=1)
    try:
        with pytest.raises(TopologyMismatch, match="rabbitmqctl delete_queue .* RABBITMQ_QUEUE_TYPE"):
            quorum.declare(connection)
    finally:
        connection.close()


def run_consumer(consumer: Consumer) -> threading.Thread:
    thread = consumer.start_in_thread()
    deadline = time.monotonic() + 10
    while not consumer.ready and time.monotonic() < deadline:
        time.sleep(0.02)
    assert consumer.ready
    return thread


def test_a_message_whose_consumer_dies_before_acking_is_redelivered(rabbit_settings, topology):
    seen: list[Delivery] = []
    crashed = threading.Event()

    def die_without_ack(delivery: Delivery, publisher: Publisher) -> None:
        seen.append(delivery)
        crashed.set()
        raise SystemExit  # the thread dies; the connection below is closed before any ack

    first = Consumer(rabbit_settings, topology, "python.queue", die_without_ack, prefetch=1)
    with Publisher(rabbit_settings, topology, name="t") as publisher:
        publisher.publish("", "python.queue", b"work", correlation_id="task-1")
    thread = run_consumer(first)
    assert crashed.wait(5)
    first.stop()
    thread.join(10)

    received = threading.Event()
    second = Consumer(rabbit_settings, topology, "python.queue", lambda d, p: (seen.append(d), received.set()))
    thread = run_consumer(second)
    assert received.wait(5)
    second.stop()
    thread.join(10)
    assert [d.body for d in seen] == [b"work", b"work"]
    assert seen[1].redelivered is True


def test_poison_messages_are_parked_with_reason_and_bytes_and_the_queue_flows(rabbit_settings, topology, queues):
    processed: list[str] = []
    done = threading.Event()

    def handle(delivery: Delivery, publisher: Publisher) -> None:
        task = TaskMessage.from_bytes(delivery.body, delivery.headers)
        processed.append(task.task_id)
        done.set()

    consumer = Consumer(rabbit_settings, topology, "python.queue", handle, prefetch=1)
    good = TaskMessage(task_id="t-good", topic_name="echo", system="python", worker_id="w", process_instance_id="p")
    with Publisher(rabbit_settings, topology, name="t") as publisher:
        publisher.publish("", "python.queue", b"\xff not json", correlation_id="t-bad")
        publisher.publish("", "python.queue", json.dumps({"task_id": 1}).encode())
        publisher.publish("", "python.queue", good.to_bytes())
    thread = run_consumer(consumer)
    assert done.wait(10)
    consumer.stop()
    thread.join(10)
    assert processed == ["t-good"]
    first = queues.parked()[0]
    second = queues.parked()[0]
    assert first.original_body() == b"\xff not json" and first.body_base64 is not None
    assert first.source_queue == "python.queue" and first.task_id == "t-bad"
    assert "not a valid exchanger.task/1 message" in first.reason
    assert "topic_name: Field required" in second.reason
    assert second.original_body() == b'{"task_id": 1}'


def test_a_delayed_retry_arrives_after_its_delay_with_the_attempt_count(rabbit_settings, topology):
    arrivals: list[tuple[float, int]] = []
    second = threading.Event()

    def flaky(delivery: Delivery, publisher: Publisher) -> None:
        arrivals.append((time.monotonic(), delivery.attempt))
        if delivery.attempt == 1:
            raise RetryLater("Bitrix24 said QUERY_LIMIT_EXCEEDED", delay_ms=1500)
        second.set()

    consumer = Consumer(rabbit_settings, topology, "bitrix24.queue", flaky, prefetch=2)
    thread = run_consumer(consumer)
    with Publisher(rabbit_settings, topology, name="t") as publisher:
        publisher.publish("", "bitrix24.queue", b"{}", correlation_id="task-r")
    assert second.wait(10)
    consumer.stop()
    thread.join(10)
    (t1, a1), (t2, a2) = arrivals
    assert (a1, a2) == (1, 2)
    assert 1.4 <= t2 - t1 < 5.0


def test_delay_queues_dead_letter_at_least_once(rabbit_settings, topology):
    """Classic dead-lettering can drop a message that expires while the broker restarts; the delay
    queues must be quorum queues with the at-least-once strategy. Re-declaring with exactly those
    arguments succeeds only if the broker holds them; a classic declaration is refused."""
    with Publisher(rabbit_settings, topology, name="t") as publisher:
        publisher.publish_delayed("python.queue", 7000, b"{}")
    assert 10 in topology.declared_delays  # 7 s waits on the 10 s step of the ladder
    connection = connect(rabbit_settings, name="t", attempts=1)
    try:
        name = topology.delay_queue(10)
        connection.channel().queue_declare(name, durable=True,
                                           arguments=delay_queue_arguments(10, topology.settings))
        classic = {"x-message-ttl": 10000, "x-dead-letter-exchange": topology.settings.redeliver_exchange}
        with pytest.raises(ChannelClosedByBroker, match="x-queue-type|x-dead-letter-strategy|x-overflow"):
            connection.channel().queue_declare(name, durable=True, arguments=classic)
    finally:
        connection.close()


def test_unexpected_errors_are_retried_then_parked_after_max_attempts(rabbit_settings, topology, queues):
    attempts: list[int] = []

    def always_broken(delivery: Delivery, publisher: Publisher) -> None:
        attempts.append(delivery.attempt)
        raise RuntimeError("the handler has a bug")

    consumer = Consumer(rabbit_settings, topology, "openproject.queue", always_broken, prefetch=1, max_attempts=3,
                        retry_backoff=Backoff(initial_s=1.0, factor=1.0, jitter=0.0))
    thread = run_consumer(consumer)
    with Publisher(rabbit_settings, topology, name="t") as publisher:
        publisher.publish("", "openproject.queue", b"{}", correlation_id="task-x")
    parked = queues.parked(timeout_s=15)[0]
    consumer.stop()
    thread.join(10)
    assert attempts == [1, 2, 3]
    assert parked.attempts == 3 and "RuntimeError: the handler has a bug" in parked.reason
    assert parked.headers[ATTEMPT_HEADER] == 3


def test_explicit_park_keeps_the_reason(rabbit_settings, topology, queues):
    consumer = Consumer(rabbit_settings, topology, "1c.queue",
                        lambda d, p: (_ for _ in ()).throw(ParkMessage("topic not supported", "Unsupported")))
    thread = run_consumer(consumer)
    with Publisher(rabbit_settings, topology, name="t") as publisher:
        publisher.publish("", "1c.queue", b"{}")
    parked = queues.parked()[0]
    consumer.stop()
    thread.join(10)
    assert (parked.reason, parked.error_type) == ("topic not supported", "Unsupported")


def test_a_handler_longer_than_two_heartbeats_keeps_its_connection(session_vhost, topology, queues):
    settings = RabbitMQSettings(virtual_host=session_vhost, heartbeat_s=1)
    finished = threading.Event()

    def slow(delivery: Delivery, publisher: Publisher) -> None:
        time.sleep(3.5)
        finished.set()

    consumer = Consumer(settings, topology, "python.queue", slow, prefetch=1)
    thread = run_consumer(consumer)
    with Publisher(settings, topology, name="t") as publisher:
        publisher.publish("", "python.queue", b"{}")
    assert finished.wait(10)
    time.sleep(0.5)
    consumer.stop()
    thread.join(10)
    assert queues.depth("python.queue") == 0  # acked on the same connection: no redelivery


def test_a_batching_consumer_hands_over_many_and_settles_each_on_its_own(rabbit_settings, topology, queues):
    """Batch mode (a tracker checking many items per request): one call for many deliveries, and each
    delivery's own result decides its fate: acked, retried later with its attempt count, or parked."""
    batches: list[list[str]] = []
    retried = threading.Event()

    def handle(deliveries: list[Delivery], publisher: Publisher) -> list[Exception | None]:
        batches.append([d.correlation_id or "" for d in deliveries])
        results: list[Exception | None] = []
        for delivery in deliveries:
            if delivery.correlation_id == "m-retry" and delivery.attempt == 1:
                results.append(RetryLater("not yet", delay_ms=1000))
            elif delivery.correlation_id == "m-retry":
                retried.set()
                results.append(None)
            elif delivery.correlation_id == "m-park":
                results.append(ParkMessage("cannot be read", "Broken"))
            else:
                results.append(None)
        return results

    batching = Batching(handle, max_batch=20, window_s=0.5)
    consumer = Consumer(rabbit_settings, topology, "openproject.sent.queue", lambda d, p: None, batching=batching)
    assert consumer.prefetch >= 20
    names = [f"m-{n}" for n in range(38)] + ["m-retry", "m-park"]
    with Publisher(rabbit_settings, topology, name="t") as publisher:
        for name in names:
            publisher.publish("", "openproject.sent.queue", b"{}", correlation_id=name)
    thread = run_consumer(consumer)
    assert retried.wait(15)
    consumer.stop()
    thread.join(10)
    first_round = [name for batch in batches for name in batch][: len(names)]
    assert sorted(first_round) == sorted(names)
    assert len(batches[0]) == 20 and max(len(b) for b in batches) <= 20  # 40 deliveries in 2-3 calls, not 40
    assert len(batches) <= 4
    (parked,) = queues.parked()
    assert (parked.task_id, parked.reason) == ("m-park", "cannot be read")
    assert parked.source_queue == "openproject.sent.queue"
    assert queues.depth("openproject.sent.queue") == 0
