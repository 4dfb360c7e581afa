"""The RabbitMQ topology: the single source of truth for every exchange and queue name.

Declared idempotently by every daemon at start (declaring twice changes nothing)::

    camunda.external.tasks  (topic, alternate exchange camunda.unrouted.tasks)
        <system>.#      → <system>.queue                   one per system of the routing table
    camunda.unrouted.tasks  (fanout)           → default.queue   tasks whose system has no queue
    camunda.task.responses  (direct)           → camunda.responses.queue
    <system>.sent.queue                                     tracking records
    <system>.events.queue                                   "item changed" events of a system whose tracker
                                                            takes pushed events or sweeps (single active
                                                            consumer, see exchanger.creator.item_events)
    exchanger.answered      (fanout)           → an exclusive queue per task-creator: "task answered"
    errors.camunda_tasks.queue                              the parking lot
    exchanger.delay         (topic)  <s>s.#    → exchanger.delay.<s>s   (quorum, TTL <s> seconds, expires
                                                                      when unused, dead-letters to ↓ at
                                                                      least once)
    exchanger.redeliver     (topic)  *.<queue> → <queue>                every consumable queue

A delayed message (a retry or a re-check) is published to ``exchanger.delay`` with routing key
``<s>s.<target queue>``; it waits in the queue whose TTL is ``<s>`` seconds (one TTL per queue, so
nothing blocks the head), expires, and is dead-lettered with the same routing key to
``exchanger.redeliver``, which routes it back to the target queue.

Delays are rounded up to the next step of :data:`DELAY_LADDER_S`, so a Retry-After of 37 s and one of
38 s share a queue and the number of delay queues is bounded by the ladder; a queue nobody declared
for :data:`DELAY_QUEUE_IDLE_S` after its TTL goes away (``x-expires``). Earlier versions named them
``exchanger.delay.<ms>`` bound with ``<ms>.#``; their messages still expire into ``exchanger.redeliver``
and come back, and the new ``<s>s`` keys never match the old bindings (no double copies). Once empty,
the old queues can be deleted by hand.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import ChannelClosedByBroker

from exchanger.errors import ConfigError
from exchanger.routing import DEFAULT_SYSTEM
from exchanger.settings import TopologySettings

# the delays a message can wait, in seconds: each step at most ~1.7x the previous up to an hour, then
# hours and days; a delay is rounded up to the next step, one above the last is capped to it
DELAY_LADDER_S = (1, 2, 3, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 900, 1200, 1800, 2700, 3600,
                  7200, 10800, 21600, 43200, 86400, 172800, 345600, 604800)  # fmt: skip
DELAY_QUEUE_IDLE_S = 3600  # a delay queue not declared for its TTL plus this long is deleted by the broker
DELAY_REDECLARE_S = 60  # a publisher re-declares (renews) a delay queue it uses at least this often


def delay_bucket_s(delay_ms: int) -> int:
    """The ladder step (seconds) that holds a wait of ``delay_ms``: the next one up, at most the last."""
    for step in DELAY_LADDER_S:
        if step * 1000 >= delay_ms:
            return step
    return DELAY_LADDER_S[-1]


class TopologyMismatch(ConfigError):
    """An existing exchange or queue was declared with other arguments; the message says how to migrate."""


def system_queue(system: str) -> str:
    return f"{system}.queue"


def sent_queue(system: str) -> str:
    return f"{system}.sent.queue"


def events_queue(system: str) -> str:
    return f"{system}.events.queue"


ANSWERED_EXCHANGE = "exchanger.answered"  # fanout: "task X answered", to every task-creator's own queue


@dataclass
class Topology:
    settings: TopologySettings
    systems: list[str]
    queue_type: str = "classic"
    virtual_host: str = "/"
    event_systems: list[str] = field(default_factory=list)  # systems with an <system>.events.queue
    _declared_delays: dict[int, float] = field(default_factory=dict)  # ladder step → monotonic time of declare

    @property
    def consumable_queues(self) -> list[str]:
        """Every queue a consumer may read, hence a target of delayed redelivery."""
        queues = [self.settings.responses_queue]
        for system in self.systems:
            queues += [system_queue(system), sent_queue(system)]
        queues += [events_queue(system) for system in self.event_systems]
        return queues

    def delay_queue(self, step_s: int) -> str:
        return f"{self.settings.delay_exchange}.{step_s}s"

    def delay_routing_key(self, step_s: int, target_queue: str) -> str:
        return f"{step_s}s.{target_queue}"

    def _queue_arguments(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        arguments: dict[str, Any] = {"x-queue-type": "quorum"} if self.queue_type == "quorum" else {}
        arguments.update(extra or {})
        return arguments

    def declare(self, connection: BlockingConnection) -> None:
        """Declare everything; raise :class:`TopologyMismatch` with migration advice on a clash."""
        s = self.settings
        with _Declarer(connection, self.virtual_host) as d:
            d.exchange(s.unrouted_exchange, "fanout")
            d.exchange(s.tasks_exchange, "topic", {"alternate-exchange": s.unrouted_exchange})
            d.exchange(s.responses_exchange, "direct")
            d.exchange(s.delay_exchange, "topic")
            d.exchange(s.redeliver_exchange, "topic")
            for system in self.systems:
                d.queue(system_queue(system), self._queue_arguments())
                d.bind(system_queue(system), s.tasks_exchange, f"{system}.#")
                d.queue(sent_queue(system), self._queue_arguments())
            if self.event_systems:
                d.exchange(ANSWERED_EXCHANGE, "fanout")
            for system in self.event_systems:
                # one consumer at a time across every task-creator: it alone answers from events, so it
                # can tell a duplicate event from a new one (exchanger.creator.item_events)
                d.queue(events_queue(system), self._queue_arguments({"x-single-active-consumer": True}))
            d.queue(system_queue(DEFAULT_SYSTEM), self._queue_arguments())
            d.bind(system_queue(DEFAULT_SYSTEM), s.unrouted_exchange, "")
            d.queue(s.responses_queue, self._queue_arguments())
            d.bind(s.responses_queue, s.responses_exchange, s.responses_queue)
            d.queue(s.parking_queue, self._queue_arguments())
            for queue in self.consumable_queues:
                d.bind(queue, s.redeliver_exchange, f"*.{queue}")

    @property
    def declared_delays(self) -> list[int]:
        """Ladder steps (seconds) whose queue this process declared (tests delete them afterwards)."""
        return sorted(self._declared_delays)

    def forget_delays(self) -> None:
        """Declare delay queues again on next use (a new connection may reach a new broker)."""
        self._declared_delays.clear()

    def declare_delay(self, channel: BlockingChannel, step_s: int) -> None:
        """Declare the queue of ladder step ``step_s``; again every ``DELAY_REDECLARE_S`` to renew its lease.

        ``x-expires`` counts from the last declaration, not from the last publish: a queue in use must be
        declared again well before it could expire, or it would vanish with the messages it holds.
        """
        declared_at = self._declared_delays.get(step_s)
        if declared_at is not None and time.monotonic() - declared_at < DELAY_REDECLARE_S:
            return
        name = self.delay_queue(step_s)
        channel.queue_declare(name, durable=True, arguments=delay_queue_arguments(step_s, self.settings))
        channel.queue_bind(name, self.settings.delay_exchange, routing_key=f"{step_s}s.#")
        self._declared_delays[step_s] = time.monotonic()


def delay_queue_arguments(step_s: int, settings: TopologySettings) -> dict[str, Any]:
    """A quorum queue whose expired messages are dead-lettered *at least once*, whatever RABBITMQ_QUEUE_TYPE says.

    Classic dead-lettering is at-most-once: a message expiring while the broker restarts can vanish
    between the delay queue and its target (seen in the chaos test: a tracked item was never checked
    again). Quorum queues with ``dead-letter-strategy: at-least-once`` (RabbitMQ 3.10+, which needs
    ``overflow: reject-publish``) hand it over with internal confirms instead. ``x-expires`` removes
    a step nobody used for a while (its messages expired long before, see ``declare_delay``).
    """
    return {
        "x-queue-type": "quorum",
        "x-message-ttl": step_s * 1000,
        "x-expires": (step_s + DELAY_QUEUE_IDLE_S) * 1000,
        "x-dead-letter-exchange": settings.redeliver_exchange,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


class _Declarer:
    """Declares on a channel of its own and turns a 406 PRECONDITION_FAILED into migration advice."""

    def __init__(self, connection: BlockingConnection, virtual_host: str) -> None:
        self.connection = connection
        self.virtual_host = virtual_host
        self.channel: BlockingChannel = connection.channel()

    def __enter__(self) -> _Declarer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.channel.is_open:
            self.channel.close()

    def exchange(self, name: str, kind: str, arguments: dict[str, Any] | None = None) -> None:
        try:
            self.channel.exchange_declare(name, exchange_type=kind, durable=True, arguments=arguments)
        except ChannelClosedByBroker as exc:
            raise TopologyMismatch(
                f"exchange {name!r} already exists with other settings ({exc.reply_text}); Exchanger wants a "
                f"durable {kind} exchange with {arguments or {}}. To migrate: stop the daemons and delete it "
                f"(rabbitmqctl eval or the management UI, vhost {self.virtual_host!r}), then start again."
            ) from None

    def queue(self, name: str, arguments: dict[str, Any]) -> None:
        try:
            self.channel.queue_declare(name, durable=True, arguments=arguments)
        except ChannelClosedByBroker as exc:
            raise TopologyMismatch(
                f"queue {name!r} already exists with other arguments ({exc.reply_text}); Exchanger wants "
                f"{arguments or 'a plain durable classic queue'}. To migrate: stop the daemons, let the queue "
                f"drain (or move its messages with a shovel), delete it with "
                f"`rabbitmqctl delete_queue {name} -p {self.virtual_host}`, and start again; or set "
                f"RABBITMQ_QUEUE_TYPE to the type the existing queues have."
            ) from None

    def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        self.channel.queue_bind(queue, exchange, routing_key=routing_key)
