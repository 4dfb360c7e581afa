"""The confirmed publisher: a publish either is confirmed by the broker or raises, never a silent success.

Publisher confirms plus ``mandatory``: a nack raises :class:`PublishRefused`, an unroutable message
(returned by the broker) raises :class:`Unroutable`, a broker that is gone raises
:class:`~exchanger.errors.Unreachable` after one reconnect attempt. Messages are persistent JSON with
a ``message_id``, a ``correlation_id`` (the external task id) and the schema header.

:meth:`Publisher.publish_many` pipelines: it keeps a window of unconfirmed messages in flight on a
channel of its own and returns one outcome per message once the broker answered for each (a confirm
costs a round trip; waiting for each one at a time caps a publisher at ~1.4k msg/s, a window of 100
recovers the no-confirm rate).

A publisher owns its own connection and is not thread-safe (pika is not): one per thread.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pika
from loguru import logger
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import AMQPError, ChannelWrongStateError, NackError, UnroutableError
from pika.frame import Method
from pika.spec import Basic

from exchanger.amqp.connection import connect
from exchanger.amqp.topology import Topology, delay_bucket_s
from exchanger.contracts import SCHEMA_HEADER, Contract, ParkedRecord
from exchanger.errors import ContractError, ExchangerError, Unreachable
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


DEFAULT_WINDOW = 100  # unconfirmed messages in flight in publish_many
CONFIRM_TIMEOUT_S = 30.0  # a broker that confirms nothing this long is treated as gone


@dataclass(frozen=True)
class Outgoing:
    """One message for :meth:`Publisher.publish_many`; build it with :meth:`Publisher.outgoing`."""

    exchange: str
    routing_key: str
    body: bytes
    properties: pika.BasicProperties


_PENDING = object()  # an outcome not known yet


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
        self._pipe: BlockingChannel | None = None  # publish_many's channel: confirms handled here, not by pika
        self._next_tag = 1
        self._pending: dict[int, int] = {}  # delivery tag → index in the batch being published
        self._batch: Sequence[Outgoing] = ()
        self._outcomes: list[Any] = []
        self._returned: set[str] = set()  # message ids the broker returned (unroutable)

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

    def _ensure_pipe(self) -> BlockingChannel:
        """A channel in confirm mode whose acks come to :meth:`_on_confirm` (pika's blocking adapter has no
        pipelined-confirm API, so the channel's underlying asynchronous implementation is used)."""
        if self._pipe is not None and self._pipe.is_open and self._connection and self._connection.is_open:
            return self._pipe
        self._ensure_channel()
        assert self._connection is not None
        pipe = self._connection.channel()
        selected: list[bool] = []
        impl = pipe._impl  # noqa: SLF001 - see the docstring
        impl.confirm_delivery(ack_nack_callback=self._on_confirm, callback=lambda _frame: selected.append(True))
        impl.add_on_return_callback(self._on_return)
        deadline = time.monotonic() + CONFIRM_TIMEOUT_S
        pipe._flush_output(lambda: bool(selected), lambda: time.monotonic() > deadline)  # noqa: SLF001
        if not selected:
            raise ChannelWrongStateError("confirm mode not acknowledged by the broker")
        self._pipe, self._next_tag = pipe, 1
        self._pending.clear()
        self._returned.clear()
        return pipe

    def close(self) -> None:
        self._pipe = None
        self._pending.clear()
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
        properties = self.properties(headers=headers, correlation_id=correlation_id, message_id=message_id)
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

    @staticmethod
    def properties(*, headers: Mapping[str, Any] | None = None, correlation_id: str | None = None,
                   message_id: str | None = None) -> pika.BasicProperties:
        """Persistent JSON with a message id (returned messages are told apart by it)."""
        return pika.BasicProperties(
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=message_id or uuid.uuid4().hex,
            correlation_id=correlation_id,
            timestamp=int(time.time()),  # operators see the age of the oldest message (exchanger queues)
            headers=clean_headers(headers),
        )

    @classmethod
    def outgoing(cls, message: Contract, exchange: str, routing_key: str, *, correlation_id: str | None = None,
                 headers: Mapping[str, Any] | None = None, max_bytes: int | None = None) -> Outgoing:
        """A contract message for :meth:`publish_many`; ``ContractError`` when it cannot be encoded or is above
        ``max_bytes`` (what every consumer refuses: ``RABBITMQ_MAX_MESSAGE_BYTES``)."""
        properties = cls.properties(headers={**(headers or {}), SCHEMA_HEADER: message.SCHEMA},
                                    correlation_id=correlation_id)
        body = message.to_bytes()
        if max_bytes is not None and len(body) > max_bytes:
            raise ContractError(f"the {message.SCHEMA} message is {len(body)} bytes, above "
                                f"RABBITMQ_MAX_MESSAGE_BYTES={max_bytes} that every consumer refuses")
        return Outgoing(exchange, routing_key, body, properties)

    def publish_many(self, messages: Sequence[Outgoing], *, window: int = DEFAULT_WINDOW,
                     confirm_timeout_s: float = CONFIRM_TIMEOUT_S) -> list[PublishError | Unreachable | None]:
        """Publish with at most ``window`` unconfirmed messages in flight; one outcome per message, in order.

        ``None``: confirmed (the broker took responsibility). :class:`PublishRefused`: nacked.
        :class:`Unroutable`: returned. :class:`~exchanger.errors.Unreachable`: the broker was lost twice (once
        the connection is reopened and what was not confirmed is sent again: a message may then be in its
        queue twice, which consumers handle anyway) or confirmed nothing for ``confirm_timeout_s``.
        """
        self._batch, self._outcomes = messages, [_PENDING] * len(messages)
        for attempt in (1, 2):
            todo = [index for index, outcome in enumerate(self._outcomes) if outcome is _PENDING]
            if not todo:
                break
            try:
                self._pipeline(messages, todo, window, confirm_timeout_s)
            except Unreachable as exc:  # no connection could be opened
                self.close()
                self._fail_pending(exc)
            except TimeoutError as exc:
                self.close()
                self._fail_pending(Unreachable(f"RabbitMQ confirmed nothing for {confirm_timeout_s:.0f}s: {exc}",
                                               system="rabbitmq"))
            except (AMQPError, OSError) as exc:
                self.close()
                if attempt == 2:
                    self._fail_pending(Unreachable(f"RabbitMQ lost while publishing: {exc!r}", system="rabbitmq"))
                else:
                    logger.warning("publisher {}: connection lost ({!r}); reconnecting once", self.name, exc)
        outcomes, self._outcomes, self._batch = self._outcomes, [], ()
        return outcomes

    def _pipeline(self, messages: Sequence[Outgoing], todo: list[int], window: int, timeout_s: float) -> None:
        pipe = self._ensure_pipe()
        assert self._connection is not None
        impl = pipe._impl  # noqa: SLF001 - see _ensure_pipe
        for index in todo:
            if len(self._pending) >= window:
                self._wait_confirms(pipe, window - 1, timeout_s)
            message = messages[index]
            impl.basic_publish(message.exchange, message.routing_key, message.body, message.properties,
                               mandatory=True)
            self._pending[self._next_tag] = index
            self._next_tag += 1
        self._wait_confirms(pipe, 0, timeout_s)

    def _wait_confirms(self, pipe: BlockingChannel, most: int, timeout_s: float) -> None:
        """Send what is buffered and serve the connection until at most ``most`` messages are unconfirmed.

        pika's own wait loop is used (``process_data_events`` would sleep out its whole time limit, as
        the confirms arrive on the asynchronous channel); it raises when the channel or connection closes.
        """
        deadline = time.monotonic() + timeout_s
        pipe._flush_output(lambda: len(self._pending) <= most,  # noqa: SLF001 - see _ensure_pipe
                           lambda: time.monotonic() > deadline)  # the I/O loop wakes at least every 5 s
        if len(self._pending) > most:
            raise TimeoutError(f"{len(self._pending)} message(s) unconfirmed")

    def _on_confirm(self, frame: Method) -> None:
        method = frame.method
        if method.multiple:
            tags = [tag for tag in self._pending if tag <= method.delivery_tag]
        else:
            tags = [method.delivery_tag] if method.delivery_tag in self._pending else []
        for tag in tags:
            index = self._pending.pop(tag)
            message = self._batch[index]
            where = f"{message.exchange!r}/{message.routing_key!r}"
            if isinstance(method, Basic.Nack):
                self._outcomes[index] = PublishRefused(f"broker refused the message to {where}")
            elif message.properties.message_id in self._returned:  # a return comes before its ack
                self._returned.discard(message.properties.message_id)
                self._outcomes[index] = Unroutable(f"no queue bound for {where}")
            else:
                self._outcomes[index] = None

    def _on_return(self, _channel: Any, method: Basic.Return, properties: pika.BasicProperties,
                   _body: bytes) -> None:
        if properties.message_id:
            self._returned.add(properties.message_id)

    def _fail_pending(self, error: Unreachable) -> None:
        for index, outcome in enumerate(self._outcomes):
            if outcome is _PENDING:
                self._outcomes[index] = error

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
