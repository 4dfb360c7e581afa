"""Pushed events and change sweeps: an item that changed is looked at now, not at its next check.

Both only say "item X changed": the event receiver (:mod:`exchanger.creator.event_receiver`) for a call
the system pushed, the :class:`Sweeper` for each item a change sweep lists. Each becomes an
:class:`~exchanger.contracts.ItemEvent` in ``<system>.events.queue``, a queue with a *single active
consumer* across every task-creator of the environment. That consumer (``CreatorService._on_events``)
asks the tracker which of the items are finished (``finished``: read from the system, the Camunda task
rebuilt from what the item stores), publishes each response (confirmed) and remembers the Camunda task
id in the :class:`AnsweredLedger`; then it acks.

The tracking record of such a task still waits in its delay queue: it stays the safety net for a lost
event. When it comes back, the ledger says so and the record is acked without a check or a second
response. Every answer is also told to the other task-creators (:class:`AnsweredBroadcast`, a fanout to
a queue of each), so a record that comes back to another task-creator ends there as well; a notice lost
on a reconnect means one second ``complete``, which the camunda-worker acks as "task gone" (Camunda's
404). The ledger also drops a duplicated event, and an event for a task the safety net answered first.
Why a ledger in memory and not a store: docs/tracking.md, "Events and sweeps".
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from loguru import logger
from pika.exceptions import AMQPError

from exchanger.amqp.connection import connect
from exchanger.amqp.publisher import Outgoing, Publisher
from exchanger.amqp.topology import ANSWERED_EXCHANGE, Topology, events_queue
from exchanger.backoff import Backoff
from exchanger.contracts import ItemEvent, SentRecord
from exchanger.creator.base import BaseTracker
from exchanger.errors import ExchangerError
from exchanger.settings import RabbitMQSettings

DEFAULT_SWEEP_OVERLAP_S = 30.0  # a sweep looks this far behind the previous one (portal clock, commit lag)


class AnsweredLedger:
    """The tasks answered in the last ``ttl_s`` seconds, by Camunda task id and by item id (thread-safe,
    oldest forgotten first).

    The ttl covers a tracking record's way back from its delay queue (``ledger_ttl_s``); memory is one
    entry per task answered within it, not per open item. The item ids let the events consumer skip
    reading an item it answered already (a sweep finding what an event answered).
    """

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._until: OrderedDict[tuple[str, str], float] = OrderedDict()  # (kind, id) → forget after (monotonic)

    def add_ids(self, task_id: str, item_id: str) -> None:
        with self._lock:
            self._put(task_id, item_id, self._clock())

    def claim(self, record: SentRecord) -> bool:
        """Note ``record``'s task as answered unless it is already (then False), in one step: of a check and
        an event of the same item in the same second, only the one that claims first publishes a response.
        :meth:`release` it when that publish fails."""
        now = self._clock()
        with self._lock:
            until = self._until.get(("task", record.task.task_id))
            if until is not None and until >= now:
                return False
            self._put(record.task.task_id, record.item.id, now)
            return True

    def release(self, record: SentRecord) -> None:
        """Undo a :meth:`claim` whose response was not published: a later check or event answers."""
        with self._lock:
            self._until.pop(("task", record.task.task_id), None)
            self._until.pop(("item", record.item.id), None)

    def _put(self, task_id: str, item_id: str, now: float) -> None:
        for key in (("task", task_id), ("item", item_id)):
            self._until[key] = now + self.ttl_s
            self._until.move_to_end(key)
        while self._until and next(iter(self._until.values())) < now:
            self._until.popitem(last=False)

    def task_answered(self, task_id: str) -> bool:
        return self._has(("task", task_id))

    def item_answered(self, item_id: str) -> bool:
        return self._has(("item", item_id))

    def _has(self, key: tuple[str, str]) -> bool:
        with self._lock:
            until = self._until.get(key)
            return until is not None and until >= self._clock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._until) // 2


class AnsweredBroadcast:
    """Tells every task-creator of the environment which tasks were answered, so that each one's ledger
    knows: a tracking record that comes back to another task-creator than the one that answered it from
    an event then ends there too, without a second response.

    ``exchanger.answered`` is a fanout exchange; each task-creator binds an exclusive queue of its own
    and adds what arrives to the ledger of that system. Best effort by design: a notice lost while a
    connection is down only means one harmless second ``complete`` (the worker takes Camunda's 404 as
    "task gone").
    """

    def __init__(self, rabbit: RabbitMQSettings, ledgers: dict[str, AnsweredLedger]) -> None:
        self.rabbit = rabbit
        self.ledgers = ledgers  # system → its ledger
        self.received = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="answered-broadcast", daemon=True)
        self.ready = threading.Event()

    @staticmethod
    def tell(publisher: Publisher, system: str, record: SentRecord) -> None:
        """Publish "``record``'s task is answered" (confirmed; a failure is logged and ignored)."""
        body = json.dumps({"system": system, "task_id": record.task.task_id, "item_id": record.item.id}).encode()
        try:
            publisher.publish(ANSWERED_EXCHANGE, system, body)
        except ExchangerError as exc:  # e.g. no task-creator listening right now: nothing to tell
            logger.debug("answered notice for task {} not sent: {}", record.task.task_id, exc)

    def start(self) -> AnsweredBroadcast:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _listen(self) -> None:
        backoff = Backoff(initial_s=0.5, max_s=30.0)
        attempt = 0
        while not self._stop.is_set():
            try:
                with connect(self.rabbit, name="creator:answered", attempts=1) as connection:
                    channel = connection.channel()
                    channel.exchange_declare(ANSWERED_EXCHANGE, exchange_type="fanout", durable=True)
                    queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
                    channel.queue_bind(queue, ANSWERED_EXCHANGE)
                    channel.basic_consume(queue, self._on_notice, auto_ack=True)
                    self.ready.set()
                    attempt = 0
                    while not self._stop.is_set():
                        connection.process_data_events(time_limit=0.5)
            except (AMQPError, OSError, ExchangerError) as exc:
                self.ready.clear()
                attempt += 1
                logger.debug("answered broadcast: connection lost ({}); again in a moment", exc)
                self._stop.wait(backoff.delay(attempt))

    def _on_notice(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        try:
            notice = json.loads(body)
            ledger = self.ledgers.get(str(notice["system"]))
            if ledger is not None:
                ledger.add_ids(str(notice["task_id"]), str(notice["item_id"]))
                self.received += 1
        except (ValueError, KeyError, TypeError):
            logger.debug("answered broadcast: a notice it cannot read was ignored")


def ledger_ttl_s(tracker: BaseTracker) -> float:
    """Long enough for a tracking record to come back twice from its delay queue (the ladder rounds up)."""
    return 2 * tracker.check_interval_s + 120.0


def event_messages(system: str, item_ids: list[str], source: str) -> list[Outgoing]:
    """One :class:`ItemEvent` per id, for ``publish_many`` to ``<system>.events.queue``."""
    queue = events_queue(system)
    return [Publisher.outgoing(ItemEvent(system=system, item_id=item_id, source=source), "", queue)
            for item_id in item_ids]


def publish_events(publisher: Publisher, system: str, item_ids: list[str], source: str) -> None:
    """Publish the events of ``item_ids``, confirmed; raise the first failure."""
    for outcome in publisher.publish_many(event_messages(system, item_ids, source)):
        if outcome is not None:
            raise outcome


class Sweeper:
    """Every ``sweep_interval_s``, the items changed since the last sweep become events (``source`` sweep).

    The first sweep looks back one check interval; each next one from where the last successful one
    started, minus ``overlap_s`` (the portal's clock and a change committed while we listed). A failed
    sweep is logged and the next one covers its time too. Every task-creator sweeps (no coordination):
    what two sweeps both find is one answer, the events queue's single consumer drops the second.
    """

    def __init__(self, system: str, tracker: BaseTracker, rabbit: RabbitMQSettings, topology: Topology,
                 overlap_s: float = DEFAULT_SWEEP_OVERLAP_S) -> None:
        self.system = system
        self.tracker = tracker
        self.overlap = timedelta(seconds=overlap_s)
        self.publisher = Publisher(rabbit, topology, name=f"creator:{system}.sweep")
        self.since = datetime.now(UTC) - timedelta(seconds=tracker.check_interval_s)
        self._resume_from: datetime | None = None  # set while a burst is listed over several sweeps
        self.sweeps = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"sweep:{system}", daemon=True)

    def start(self) -> Sweeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.publisher.close()

    def sweep(self) -> list[str]:
        """One sweep: list what changed, publish it; returns the item ids found. A sweep cut short by its
        page limit is continued by the next one from the last change it listed (``Changes.resume_from``,
        no overlap: a burst larger than the overlap's worth of pages still moves forward)."""
        started = datetime.now(UTC)
        changes = self.tracker.changed_since(self._resume_from or self.since - self.overlap)
        item_ids = list(dict.fromkeys(changes.item_ids))
        if item_ids:
            publish_events(self.publisher, self.system, item_ids, "sweep")
        self._resume_from = changes.resume_from
        if changes.resume_from is None:  # listed to the end: everything up to this sweep's start is seen
            self.since = changes.as_of or started
        else:
            logger.info("{}: change sweep cut at its page limit; the next one goes on from {}", self.system,
                        changes.resume_from.isoformat())
        self.sweeps += 1
        return item_ids

    def _loop(self) -> None:
        while not self._stop.wait(self.tracker.sweep_interval_s):
            try:
                found = self.sweep()
            except Exception as exc:  # noqa: BLE001 - the next sweep covers this one's time too
                logger.warning("{}: change sweep failed ({}: {}); the next one looks back further",
                               self.system, type(exc).__name__, exc)
                continue
            if found:
                logger.debug("{}: change sweep found {} changed item(s)", self.system, len(found))
