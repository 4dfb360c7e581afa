"""The parking lot (``errors.camunda_tasks.queue``) for operators: look at parked messages, replay them.

Peeking takes messages without acking and closes the channel, so the broker puts them back. Replaying
publishes the original body (confirmed) to the queue it came from, with the attempt count reset,
and only then acks the parked copy: a crash in between leaves a duplicate, never a loss.
"""

from __future__ import annotations

from collections.abc import Callable

from pika.adapters.blocking_connection import BlockingChannel

from exchanger.amqp.connection import connect
from exchanger.amqp.publisher import ATTEMPT_HEADER, Publisher
from exchanger.amqp.topology import Topology
from exchanger.contracts import ContractError, ParkedRecord
from exchanger.settings import RabbitMQSettings

Parked = tuple[int, ParkedRecord]  # (delivery tag, record)


def _take(channel: BlockingChannel, queue: str, limit: int) -> list[Parked]:
    taken: list[Parked] = []
    while len(taken) < limit:
        method, properties, body = channel.basic_get(queue, auto_ack=False)
        if method is None:
            break
        try:
            record = ParkedRecord.from_bytes(body, properties.headers)
        except ContractError as exc:
            record = ParkedRecord.for_body(body, reason=f"not a parked record: {exc}", error_type="ContractError",
                                           source_queue="?")
        taken.append((method.delivery_tag, record))
    return taken


def peek(rabbit: RabbitMQSettings, topology: Topology, limit: int = 100) -> list[ParkedRecord]:
    """Up to ``limit`` parked records, left in the queue."""
    connection = connect(rabbit, name="parking:peek", attempts=rabbit.connection_attempts)
    try:
        return [record for _, record in _take(connection.channel(), topology.settings.parking_queue, limit)]
    finally:
        connection.close()  # unacked messages go back to the queue


def replay(rabbit: RabbitMQSettings, topology: Topology, *, limit: int = 100,
           select: Callable[[ParkedRecord], bool] = lambda record: True) -> list[ParkedRecord]:
    """Republish selected parked messages to their source queues; return what was replayed."""
    connection = connect(rabbit, name="parking:replay", attempts=rabbit.connection_attempts)
    replayed = []
    try:
        channel = connection.channel()
        with Publisher(rabbit, topology, name="parking:replay") as publisher:
            for tag, record in _take(channel, topology.settings.parking_queue, limit):
                if record.source_queue == "?" or not select(record):
                    continue
                headers = {k: v for k, v in record.headers.items() if k != ATTEMPT_HEADER}
                publisher.publish("", record.source_queue, record.original_body(), headers=headers,
                                  correlation_id=record.task_id)
                channel.basic_ack(tag)
                replayed.append(record)
    finally:
        connection.close()
    return replayed
