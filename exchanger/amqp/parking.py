"""The parking lot (``errors.camunda_tasks.queue``) for operators: look at parked messages, replay or purge them.

Peeking is :func:`exchanger.amqp.inspect.peek` (taken without acking, given back by closing the channel).
Replaying publishes the original body (confirmed) to the queue it came from, with the attempt count
reset, and only then acks the parked copy: a crash in between leaves a duplicate, never a loss.
Purging acks the selected parked copies (they are gone); everything else goes back untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pika.adapters.blocking_connection import BlockingChannel

from exchanger.amqp import inspect
from exchanger.amqp.connection import connect
from exchanger.amqp.publisher import ATTEMPT_HEADER, Publisher
from exchanger.amqp.topology import Topology
from exchanger.contracts import ParkedRecord
from exchanger.errors import ContractError
from exchanger.settings import RabbitMQSettings

Parked = tuple[int, ParkedRecord]  # (delivery tag, record)


def _record(body: bytes, headers: dict[str, Any] | None) -> ParkedRecord:
    try:
        return ParkedRecord.from_bytes(body, headers)
    except ContractError as exc:
        return ParkedRecord.for_body(body, reason=f"not a parked record: {exc}", error_type="ContractError",
                                     source_queue="?")


def _take(channel: BlockingChannel, queue: str, limit: int) -> list[Parked]:
    taken: list[Parked] = []
    while len(taken) < limit:
        method, properties, body = channel.basic_get(queue, auto_ack=False)
        if method is None:
            break
        taken.append((method.delivery_tag, _record(body, properties.headers)))
    return taken


def peek(rabbit: RabbitMQSettings, topology: Topology, limit: int = 100) -> list[ParkedRecord]:
    """Up to ``limit`` parked records, left in the queue."""
    return [_record(m.body, m.headers) for m in inspect.peek(rabbit, [topology.settings.parking_queue], limit)]


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


def purge(rabbit: RabbitMQSettings, topology: Topology, *, limit: int = 100,
          select: Callable[[ParkedRecord], bool]) -> list[ParkedRecord]:
    """Delete the selected parked messages for good; return what was deleted."""
    connection = connect(rabbit, name="parking:purge", attempts=rabbit.connection_attempts)
    purged = []
    try:
        channel = connection.channel()
        for tag, record in _take(channel, topology.settings.parking_queue, limit):
            if select(record):
                channel.basic_ack(tag)
                purged.append(record)
    finally:
        connection.close()  # what was not selected goes back to the queue
    return purged
