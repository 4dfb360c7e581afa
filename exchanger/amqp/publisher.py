"""The confirmed publisher: a publish either is confirmed by the broker or raises, never a silent success.

Publisher confirms plus ``mandatory``: a nack raises :class:`PublishRefused`, an unroutable message
(returned by the broker) raises :class:`Unroutable`, a broker that is gone raises
:class:`~exchanger.errors.Unreachable` after one reconnect attempt. Messages are persistent JSON with
a ``message_id``, a ``correlation_id`` (the external task id) and the schema header.

A publisher owns its own connection and is not thread-safe (pika is not): one per thread.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import pika
from loguru import logger
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import AMQPError, NackError, UnroutableError

from exchanger.amqp.connection import connect
from exchanger.amqp.topology import Topology, delay_bucket_s
from exchanger.contracts import SCHEMA_HEADER, Contract, ParkedRecord
from exchanger.errors import ExchangerError, Unreachable
from exchanger.settings import RabbitMQSettings

ATTEMPT_HEADER = "x-exchanger-attempt"  # 1 on the first delivery, +1 at every scheduled retry
# headers RabbitMQ adds when dead-lettering; carrying them into a new publish would make the broker
# see a dead-letter cycle on the next expiry and drop the message
_BROKER_HEADERS = ("x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
                   "x-last-death-exchange", "x-last-death-queue", "x-last-death-reason")


class PublishError(ExchangerError):
    """The broker did not take responsibility for the message."""


class PublishRefused(PublishError):
    """The broker nacked the message (e.g. a queue at its length limit with reject-publish)."""


class Unroutable(PublishError):
    """No queue was bound for the routing key; with ``mandatory`` the broker returned the message."""


def clean_headers(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Headers worth carrying into a new publish (the broker's dead-letter bookkeeping removed)."""
    return {k: v for k, v in (headers or {}).items() if k not in _BROKER_HEADERS}


class Publisher:
    def __init__(self, settings: RabbitMQSettings, topology: Topology, *, name: str) -> None:
        self.settings = settings
        self.topology = topology
        self.name = name
        self._connection: BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    # --- connection ---------------------------------------------------------------------------

    def _ensure_channel(self) -> BlockingChannel:
        if self._channel is not None and self._channel.is_open and self._connection and self._connection.is_open:
            return self._channel
        self.close()
        self._connection = connect(self.settings, name=self.name, attempts=self.settings.connection_attempts)
        self._channel = self._connection.channel()
        self._channel.confirm_delivery()
        self.topology.forget_delays()
        return self._channel

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except AMQPError as exc:
                logger.debug("publisher {}: close failed: {}", self.name, exc)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- publishing ---------------------------------------------------------------------------

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        headers: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
        message_id: str | None = None,
    ) -> None:
        """Publish persistently with confirms and ``mandatory``; return only once the broker confirmed."""
        properties = pika.BasicProperties(
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=message_id or uuid.uuid4().hex,
            correlation_id=correlation_id,
            timestamp=int(time.time()),  # operators see the age of the oldest message (exchanger queues)
            headers=clean_headers(headers),
        )
        for attempt in (1, 2):
            try:
                channel = self._ensure_channel()
                channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)
                return
            except UnroutableError as exc:
                raise Unroutable(f"no queue bound for {exchange!r} with routing key {routing_key!r}") from exc
            except NackError as exc:
                raise PublishRefused(f"broker refused the message to {exchange!r}/{routing_key!r}") from exc
            except (AMQPError, OSError) as exc:
                self.close()
                if attempt == 2:
                    raise Unreachable(f"RabbitMQ lost while publishing to {exchange!r}: {exc!r}",
                                      system="rabbitmq") from exc
                logger.warning("publisher {}: connection lost ({!r}); reconnecting once", self.name, exc)

    def publish_contract(
        self,
        message: Contract,
        exchange: str,
        routing_key: str,
        *,
        correlation_id: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> None:
        """Publish a contract model with its schema header."""
        all_headers = {**(headers or {}), SCHEMA_HEADER: message.SCHEMA}
        self.publish(exchange, routing_key, message.to_bytes(), headers=all_headers, correlation_id=correlation_id)

    def publish_delayed(
        self,
        target_queue: str,
        delay_ms: int,
        body: bytes,
        *,
        headers: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
    ) -> None:
        """Deliver ``body`` to ``target_queue`` after ``delay_ms``, rounded up to the next step of the delay
        ladder (:data:`~exchanger.amqp.topology.DELAY_LADDER_S`); a delay beyond its last step is capped."""
        step_s = delay_bucket_s(delay_ms)
        if delay_ms > step_s * 1000:
            logger.warning("publisher {}: a delay of {:.0f} s to {} is beyond the longest delay queue; capped to {} s",
                           self.name, delay_ms / 1000, target_queue, step_s)
        for attempt in (1, 2):
            try:
                self.topology.declare_delay(self._ensure_channel(), step_s)
                break
            except (AMQPError, OSError) as exc:
                self.close()
                if attempt == 2:
                    raise Unreachable(f"RabbitMQ lost while declaring a delay queue: {exc!r}",
                                      system="rabbitmq") from exc
        routing_key = self.topology.delay_routing_key(step_s, target_queue)
        self.publish(self.topology.settings.delay_exchange, routing_key, body, headers=headers,
                     correlation_id=correlation_id)

    def publish_response(self, message: Contract, *, correlation_id: str | None = None) -> None:
        s = self.topology.settings
        self.publish_contract(message, s.responses_exchange, s.responses_queue, correlation_id=correlation_id)

    def park(self, record: ParkedRecord) -> None:
        """Put a record into the parking lot (default exchange, straight to the queue)."""
        logger.error("parked a message from {}: {} ({})", record.source_queue, record.reason, record.error_type)
        self.publish_contract(record, "", self.topology.settings.parking_queue, correlation_id=record.task_id)
