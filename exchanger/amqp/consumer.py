"""The consumer base: one queue, its own connection, work off the I/O thread, ack after the effect.

The I/O thread only receives deliveries and services heartbeats; each delivery runs in a worker
thread (at most ``prefetch`` at once) that calls the handler with a :class:`Delivery` and a
thread-owned :class:`~exchanger.amqp.publisher.Publisher`. The ack goes back to the I/O thread
through ``add_callback_threadsafe`` once the handler returned, i.e. once its effect and its next
message are confirmed. What the handler raises decides the rest, in one place:

* :class:`RetryLater` — republished to the queue after a delay with the attempt count + 1, then acked;
* :class:`ParkMessage` (or a contract error) — parked with its reason and the original bytes, acked;
* a message above ``RABBITMQ_MAX_MESSAGE_BYTES`` — cut to its first :data:`OVERSIZE_KEEP_BYTES` as it
  arrives (the I/O thread keeps no reference to the rest), never given to the handler: ``on_oversize``
  reports it (the task-creator makes the task an incident), then it is parked with the reason;
* anything else — treated as transient: retried with backoff up to ``max_attempts``, then parked.

If even the retry or the parking cannot be published (broker trouble), the message is not acked:
the worker waits a backoff step and rejects it with requeue, so it is never lost and never spins.

**Batches.** With a :class:`Batching` a consumer gives its handler many deliveries at once instead: one
thread collects what arrives for up to ``window_s`` (or until ``max_batch`` are there; the prefetch is
at least that), the batch handler returns one result per delivery (``None`` or the exception that
delivery would have raised), and each delivery is settled on its own exactly as above. A tracker uses
it to ask its system about many items in one request; nothing is acked before its own effect.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pika
from loguru import logger
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import AMQPError

from exchanger.amqp.connection import connect
from exchanger.amqp.publisher import ATTEMPT_HEADER, Publisher
from exchanger.amqp.topology import Topology
from exchanger.backoff import Backoff
from exchanger.contracts import ParkedRecord
from exchanger.errors import ContractError, ExchangerError, Unreachable
from exchanger.errors import ParkMessage as ParkMessage  # defined with the other errors; importable here too
from exchanger.errors import RetryLater as RetryLater
from exchanger.settings import RabbitMQSettings

DEFAULT_MAX_ATTEMPTS = 5  # deliveries of one message before an unexpected error parks it
DEFAULT_RETRY_BACKOFF = Backoff(initial_s=2.0, factor=2.0, max_s=300.0, jitter=0.0)  # 2 s, 4 s, 8 s … 5 min
DEFAULT_DRAIN_S = 20.0  # how long a stopping consumer waits for in-flight messages
OVERSIZE_KEEP_BYTES = 64 * 1024  # of a message above RABBITMQ_MAX_MESSAGE_BYTES, what is kept and parked


@dataclass
class Delivery:
    queue: str
    body: bytes
    headers: dict[str, Any]
    routing_key: str
    redelivered: bool
    delivery_tag: int
    message_id: str | None = None
    correlation_id: str | None = None
    received_at: float = field(default_factory=time.time)
    oversize: int = 0  # the original size in bytes when ``body`` was cut (above RABBITMQ_MAX_MESSAGE_BYTES)
    held: Callable[[], bool] = field(default=lambda: True, repr=False)  # False once its channel is gone

    @property
    def lost(self) -> bool:
        """True when the channel it came on is closed (a broker restart, a dropped connection): it cannot be
        acked any more, the broker gives it to another consumer, so its effects must not be published here."""
        return not self.held()

    @property
    def attempt(self) -> int:
        """1 on the first delivery; scheduled retries count up (broker redeliveries do not)."""
        try:
            return int(self.headers.get(ATTEMPT_HEADER, 1))
        except (TypeError, ValueError):
            return 1

    def park_record(self, reason: str, error_type: str) -> ParkedRecord:
        return ParkedRecord.for_body(
            self.body,
            reason=reason,
            error_type=error_type,
            source_queue=self.queue,
            attempts=self.attempt,
            headers={k: v for k, v in self.headers.items() if isinstance(v, str | int | float | bool)},
            task_id=self.correlation_id,
        )


Handler = Callable[[Delivery, Publisher], None]
BatchHandler = Callable[[list[Delivery], Publisher], list[Exception | None]]  # one result per delivery, in order


@dataclass(frozen=True)
class Batching:
    """Deliveries handed to ``handler`` together: up to ``max_batch``, collected for up to ``window_s``."""

    handler: BatchHandler
    max_batch: int
    window_s: float = 1.0
OversizeHandler = Callable[[Delivery, Publisher, str], None]  # (cut delivery, publisher, reason)


class Consumer:
    """Consume ``queue`` until :meth:`stop`; see the module docstring for the ack policy."""

    def __init__(
        self,
        settings: RabbitMQSettings,
        topology: Topology,
        queue: str,
        handler: Handler,
        *,
        prefetch: int | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        retry_backoff: Backoff = DEFAULT_RETRY_BACKOFF,
        name: str | None = None,
        declare: bool = True,
        on_oversize: OversizeHandler | None = None,
        batching: Batching | None = None,
    ) -> None:
        self.settings = settings
        self.topology = topology
        self.queue = queue
        self.handler = handler
        self.prefetch = max(prefetch or settings.prefetch, batching.max_batch if batching else 1)
        self.batching = batching
        self._batch: list[tuple[BlockingConnection, BlockingChannel, Delivery]] = []
        self._batch_ready = threading.Condition()
        self.max_attempts = max_attempts
        self.retry_backoff = retry_backoff
        self.name = name or f"consumer:{queue}"
        self.declare = declare
        self.on_oversize = on_oversize
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._local = threading.local()
        self._publishers: list[Publisher] = []
        self._publishers_lock = threading.Lock()
        self._inflight = 0
        self._inflight_lock = threading.Lock()

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True while connected and consuming."""
        return self._ready.is_set()

    def stop(self) -> None:
        self._stop.set()

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        thread.start()
        return thread

    def run(self, drain_s: float = DEFAULT_DRAIN_S) -> None:
        """Consume with reconnects until stopped; on stop, drain in-flight work within ``drain_s``."""
        attempt = 0
        batcher = None
        if self.batching is not None:
            batcher = threading.Thread(target=self._batch_loop, name=f"{self.name}:batches", daemon=True)
            batcher.start()
        workers = 2 if self.batching is not None else self.prefetch  # batched: only oversized ones go there
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=self.name) as executor:
            while not self._stop.is_set():
                try:
                    connection = connect(self.settings, name=self.name, stop=self._stop)
                except Unreachable:
                    break
                try:
                    self._consume(connection, executor, drain_s)
                    attempt = 0
                except (AMQPError, OSError) as exc:
                    attempt += 1
                    self._ready.clear()
                    wait = self.retry_backoff.delay(attempt) if attempt > 1 else 0.5
                    logger.warning("{}: connection lost ({!r}); reconnecting in {:.1f}s", self.name, exc, wait)
                    self._stop.wait(min(wait, self.settings.reconnect_max_s))
                finally:
                    self._ready.clear()
                    if connection.is_open:
                        try:
                            connection.close()
                        except AMQPError as exc:
                            logger.debug("{}: close failed: {!r}", self.name, exc)
        if batcher is not None:
            with self._batch_ready:
                self._batch_ready.notify_all()
            batcher.join(5)
        with self._publishers_lock:
            for publisher in self._publishers:
                publisher.close()

    def _consume(self, connection: BlockingConnection, executor: ThreadPoolExecutor, drain_s: float) -> None:
        if self.declare:
            self.topology.declare(connection)
        channel = connection.channel()
        channel.basic_qos(prefetch_count=self.prefetch)
        on_message = functools.partial(self._on_message, connection, executor)
        tag = channel.basic_consume(self.queue, on_message)
        self._ready.set()
        logger.info("{}: consuming {} (prefetch {})", self.name, self.queue, self.prefetch)
        while not self._stop.is_set():
            connection.process_data_events(time_limit=0.2)
        channel.basic_cancel(tag)
        deadline = time.monotonic() + drain_s
        while self._inflight and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.1)
        if self._inflight:
            logger.warning("{}: {} message(s) still in flight at the deadline; they will be redelivered",
                           self.name, self._inflight)
        connection.process_data_events(time_limit=0)

    # --- one delivery -------------------------------------------------------------------------

    def _on_message(
        self,
        connection: BlockingConnection,
        executor: ThreadPoolExecutor,
        channel: BlockingChannel,
        method: pika.spec.Basic.Deliver,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        oversize = len(body) if len(body) > self.settings.max_message_bytes else 0
        if oversize:
            body = body[:OVERSIZE_KEEP_BYTES]  # the only copy kept: the big one goes when this callback returns
        delivery = Delivery(
            queue=self.queue,
            body=body,
            headers=dict(properties.headers or {}),
            routing_key=method.routing_key,
            redelivered=bool(method.redelivered),
            delivery_tag=method.delivery_tag,
            message_id=properties.message_id,
            correlation_id=properties.correlation_id,
            oversize=oversize,
            held=lambda: bool(channel.is_open),
        )
        with self._inflight_lock:
            self._inflight += 1
        if self.batching is not None and not oversize:
            with self._batch_ready:
                self._batch.append((connection, channel, delivery))
                self._batch_ready.notify_all()
            return
        executor.submit(self._process, connection, channel, delivery)

    def _publisher(self) -> Publisher:
        publisher = getattr(self._local, "publisher", None)
        if publisher is None:
            publisher = Publisher(self.settings, self.topology, name=f"{self.name}:publisher")
            self._local.publisher = publisher
            with self._publishers_lock:
                self._publishers.append(publisher)
        return publisher

    def _process(self, connection: BlockingConnection, channel: BlockingChannel, delivery: Delivery,
                 error: Exception | None = None, *, handled: bool = False) -> None:
        """Settle one delivery; ``handled`` True: a batch handler already ran it and answered ``error``."""
        try:
            acked = self._after(delivery, self._publisher(), error) if handled else self._settle(delivery)
            if acked:
                settle = functools.partial(channel.basic_ack, delivery.delivery_tag)
            else:
                time.sleep(self.retry_backoff.delay(1))  # broker trouble: no hot redelivery loop
                settle = functools.partial(channel.basic_nack, delivery.delivery_tag, requeue=True)
            try:
                connection.add_callback_threadsafe(settle)
            except (AMQPError, OSError) as exc:
                logger.warning("{}: could not settle {} ({!r}); the broker will redeliver it",
                               self.name, delivery.correlation_id or delivery.message_id, exc)
        finally:
            with self._inflight_lock:
                self._inflight -= 1

    def _settle(self, delivery: Delivery) -> bool:
        """Run the handler and its consequences; True when the message may be acked."""
        publisher = self._publisher()
        if delivery.oversize:
            return self._refuse_oversized(delivery, publisher)
        try:
            self.handler(delivery, publisher)
        except Exception as exc:  # noqa: BLE001 - mapped by _after: retried, parked, never dropped
            return self._after(delivery, publisher, exc)
        return True

    def _after(self, delivery: Delivery, publisher: Publisher, exc: Exception | None) -> bool:
        """What the handler's exception (None: success) means for ``delivery``; True when it may be acked."""
        if exc is None:
            return True
        if isinstance(exc, RetryLater):
            return self._retry(delivery, publisher, exc.reason, exc.delay_ms, count_attempt=exc.count_attempt)
        if isinstance(exc, ParkMessage | ContractError):
            error_type = exc.error_type if isinstance(exc, ParkMessage) else "ContractError"
            return self._park(delivery, publisher, str(exc), error_type)
        logger.opt(exception=exc).error("{}: handler failed on attempt {}", self.name, delivery.attempt)
        if delivery.attempt >= self.max_attempts:
            reason = f"failed {delivery.attempt} times, last: {type(exc).__name__}: {exc}"
            return self._park(delivery, publisher, reason, type(exc).__name__)
        return self._retry(delivery, publisher, f"{type(exc).__name__}: {exc}", None)

    # --- batches ------------------------------------------------------------------------------

    def _batch_loop(self) -> None:
        """Take batches until stopped and nothing is left; each delivery is settled on its own."""
        assert self.batching is not None
        while True:
            batch = self._next_batch()
            if batch:
                self._run_batch(batch)
            elif self._stop.is_set():
                return

    def _next_batch(self) -> list[tuple[BlockingConnection, BlockingChannel, Delivery]]:
        """Wait for a first delivery, then up to ``window_s`` for more (or until ``max_batch``)."""
        assert self.batching is not None
        with self._batch_ready:
            while not self._batch and not self._stop.is_set():
                self._batch_ready.wait(0.5)
            deadline = time.monotonic() + self.batching.window_s
            while self._batch and len(self._batch) < self.batching.max_batch and not self._stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._batch_ready.wait(remaining)
            batch, self._batch = self._batch[: self.batching.max_batch], self._batch[self.batching.max_batch :]
            return batch

    def _run_batch(self, batch: list[tuple[BlockingConnection, BlockingChannel, Delivery]]) -> None:
        assert self.batching is not None
        deliveries = [delivery for _, _, delivery in batch]
        try:
            errors = self.batching.handler(deliveries, self._publisher())
            if len(errors) != len(batch):
                raise RuntimeError(f"the batch handler answered {len(errors)} results for {len(batch)} deliveries")
        except Exception as exc:  # noqa: BLE001 - every delivery of the batch takes the error path
            errors = [exc] * len(batch)
        for (connection, channel, delivery), error in zip(batch, errors, strict=True):
            self._process(connection, channel, delivery, error, handled=True)

    def _retry(self, delivery: Delivery, publisher: Publisher, reason: str, delay_ms: int | None, *,
               count_attempt: bool = True) -> bool:
        if delay_ms is None:
            delay_ms = int(self.retry_backoff.delay(delivery.attempt) * 1000)
        attempt = delivery.attempt + 1 if count_attempt else delivery.attempt
        headers = {**delivery.headers, ATTEMPT_HEADER: attempt, "x-exchanger-last-error": reason[:500]}
        try:
            publisher.publish_delayed(self.queue, delay_ms, delivery.body, headers=headers,
                                      correlation_id=delivery.correlation_id)
        except ExchangerError as exc:
            logger.error("{}: cannot schedule the retry ({}); leaving the message unacked", self.name, exc)
            return False
        logger.info("{}: retry {} of {} in {} ms: {}", self.name, attempt,
                    delivery.correlation_id or delivery.message_id, delay_ms, reason)
        return True

    def _refuse_oversized(self, delivery: Delivery, publisher: Publisher) -> bool:
        reason = (f"message of {delivery.oversize} bytes is larger than RABBITMQ_MAX_MESSAGE_BYTES="
                  f"{self.settings.max_message_bytes}; refused unread, its first {len(delivery.body)} bytes parked")
        try:
            if self.on_oversize is not None:
                self.on_oversize(delivery, publisher, reason)
        except ExchangerError as exc:
            logger.error("{}: cannot report an oversized message ({}); leaving it unacked", self.name, exc)
            return False
        return self._park(delivery, publisher, reason, "MessageTooLarge")

    def _park(self, delivery: Delivery, publisher: Publisher, reason: str, error_type: str) -> bool:
        try:
            publisher.park(delivery.park_record(reason, error_type))
        except ExchangerError as exc:
            logger.error("{}: cannot park ({}); leaving the message unacked", self.name, exc)
            return False
        return True
