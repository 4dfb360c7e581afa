"""Moving the old messages over, one at a time: back up, convert, hand the task over, publish, journal, ack.

For each old message of a queue (as many as the queue held when its turn came, so what is published
back into the same queue is not read again):

1. a current message (schema header) is moved to the back of its queue unchanged (republished, then
   acked) — given back unacked it would read as redelivered;
2. the body is backed up (:mod:`exchanger.migration.journal`);
3. it is converted (:mod:`exchanger.migration.legacy`); what cannot be is parked with the reason and the
   original bytes;
4. a task already handled in this migration (R > S > T > E: queues are read in that order) is a
   duplicate: acked and journaled;
5. the Camunda task is handed over to the new worker id (*re-lock handover*: ``unlock`` then ``lock``
   with ``CAMUNDA_LOCK_DURATION``), so that the converted message completes
   with the id Exchanger's worker uses. A task Camunda no longer has is *gone* (acked: a response for a
   completed task, a task cancelled by a boundary event); a task another live worker holds is parked;
6. the converted message is published with confirms (``message_id`` = hash of the old body, so a rerun
   publishes the same id), journaled, and only then the old one is acked.

Camunda or the broker failing mid-way leaves the message unacked for the next run; nothing is dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from exchanger.amqp.publisher import Publisher
from exchanger.amqp.topology import Topology, sent_queue, system_queue
from exchanger.camunda.client import CamundaClient, CamundaConflict, CamundaNotFound
from exchanger.contracts import SCHEMA_HEADER, ParkedRecord
from exchanger.errors import ContractError, ExchangerError
from exchanger.migration import journal
from exchanger.migration.inventory import messages, queue_depth
from exchanger.migration.journal import Entry, StateDir
from exchanger.migration.legacy import (
    ERROR_TYPE,
    NEW,
    Converted,
    LegacyConversionError,
    classify,
    convert,
    message_id,
    task_id_of,
)
from exchanger.routing import RoutingTable

LEFT = "left"  # not migrated in this run (Camunda or the broker failed); the next run takes it again


@dataclass
class Handover:
    """Who holds the old tool's tasks now, and how to give them to the new worker id."""

    camunda: CamundaClient
    new_worker_id: str
    old_worker_ids: frozenset[str]
    lock_duration_ms: int

    def take(self, task_id: str) -> str | None:
        """Lock ``task_id`` for the new worker id; None if Camunda no longer has it (gone).

        Raises :class:`LegacyConversionError` (→ parked) when a worker that is neither old nor new holds
        a running lock, and lets transient errors through (→ left for the next run).
        """
        try:
            task = self.camunda.get_task(task_id)
            owner = task.get("workerId")
            if owner == self.new_worker_id:
                return owner
            if owner in self.old_worker_ids:
                self.camunda.unlock(task_id)  # no worker check; the new id may not lock over a running lock
            self.camunda.lock(task_id, self.lock_duration_ms, worker_id=self.new_worker_id)
            return self.new_worker_id
        except CamundaNotFound:
            return None
        except CamundaConflict as exc:
            raise LegacyConversionError(f"Camunda refused to hand task {task_id} over: {exc}") from None


@dataclass
class QueueResult:
    queue: str
    before: int = 0
    counts: Counter[str] = field(default_factory=Counter)  # journal action (or LEFT) → messages


@dataclass
class Transfer:
    publisher: Publisher
    topology: Topology
    routing: RoutingTable
    handover: Handover
    state: StateDir
    answer_text: Callable[[str], str | None] = lambda enum_id: None
    item_url: Callable[[str], str] = lambda task_id: ""
    handled: set[str] = field(default_factory=set)  # task ids that got their message in this migration

    def __post_init__(self) -> None:
        for entry in self.state.entries():
            if entry.action in (journal.PUBLISHED, journal.GONE) and entry.task_id:
                self.handled.add(entry.task_id)

    def run(self, connection: BlockingConnection, queue: str) -> QueueResult:
        """Migrate the messages ``queue`` holds now; see the module docstring."""
        result = QueueResult(queue)
        exists, result.before, _ = queue_depth(connection, queue)
        if not exists or result.before == 0:
            return result
        for channel, method, properties, body in messages(connection, queue, result.before):
            action = self._one(channel, method.delivery_tag, queue, properties, body)
            result.counts[action] += 1
        logger.info("migrated {}: {}", queue, dict(result.counts))
        return result

    def _one(self, channel: BlockingChannel, tag: int, queue: str, properties: Any, body: bytes) -> str:
        headers = dict(properties.headers or {})
        kind = classify(body, headers)
        if kind == NEW:  # moved behind, not given back: a requeued message reads as redelivered, which makes
            # the task-creator wait WRITE_SETTLE_S before a create in case another one was still running
            self.publisher.publish("", queue, body, headers=headers, correlation_id=properties.correlation_id,
                                   message_id=properties.message_id)
            channel.basic_ack(tag)
            return journal.ALREADY_NEW
        self.state.backup(queue, body, _properties(properties), headers)
        try:
            action, detail, task_id = self._settle(queue, kind, body, headers)
        except ExchangerError as exc:  # Camunda or the broker failed: the message stays for the next run
            logger.warning("{}: an old {} message stays for the next run: {}", queue, kind, exc)
            return LEFT
        self.state.record(Entry(action, queue, kind, task_id, detail))
        channel.basic_ack(tag)
        return action

    def _settle(self, queue: str, kind: str, body: bytes, headers: dict[str, Any]) -> tuple[str, str, str | None]:
        """Do what the message needs; return (journal action, detail, task id)."""
        try:
            converted = convert(body, headers, worker_id=self.handover.new_worker_id, routing=self.routing,
                                answer_text=self.answer_text, item_url=self.item_url)
            if converted.target != "response" and converted.task_id in self.handled:
                return journal.DUPLICATE, "the task already has its message", converted.task_id
            if self.handover.take(converted.task_id) is None:
                self.handled.add(converted.task_id)
                return journal.GONE, "Camunda no longer has the task", converted.task_id
            target = self._publish(converted, body)
        except (LegacyConversionError, ContractError) as exc:  # it can never become a valid current message
            task_id = task_id_of(body)
            record = ParkedRecord.for_body(body, reason=str(exc), error_type=ERROR_TYPE, source_queue=queue,
                                           headers=headers, task_id=task_id)
            self.publisher.park(record)
            return journal.PARKED, str(exc), task_id
        self.handled.add(converted.task_id)
        return journal.PUBLISHED, target, converted.task_id

    def _publish(self, converted: Converted, old_body: bytes) -> str:
        message = converted.message
        if converted.target == "response":
            exchange, key = self.topology.settings.responses_exchange, self.topology.settings.responses_queue
        elif converted.target == "sent":
            exchange, key = "", sent_queue(converted.system)
        else:
            exchange, key = "", system_queue(converted.system)
        self.publisher.publish(exchange, key, message.to_bytes(), headers={SCHEMA_HEADER: message.SCHEMA},
                               correlation_id=converted.task_id, message_id=message_id(old_body))
        return key


def _properties(properties: Any) -> dict[str, Any]:
    names = ("content_type", "content_encoding", "delivery_mode", "priority", "correlation_id", "message_id",
             "timestamp", "type", "app_id")
    return {name: getattr(properties, name) for name in names if getattr(properties, name, None) is not None}
