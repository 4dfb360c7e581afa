"""The running task-creator: one consumer per served queue, each delivery turned into its next message.

For a task (``<system>.queue``) the handler runs, :func:`~exchanger.creator.outcomes.for_task` decides,
and this module publishes: a response, a parked copy, a sent record (delayed by the tracker's check
interval), or a retry. For a sent record (``<system>.sent.queue``) the tracker runs,
:func:`~exchanger.creator.outcomes.for_check` decides, and an open item goes back through a delay
queue with ``checks + 1``. Every publish is confirmed before the handler function returns, and the
:class:`~exchanger.amqp.consumer.Consumer` acks only then (architecture doc, delivery guarantee).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from loguru import logger
from prometheus_client import CollectorRegistry, Counter, Histogram

from exchanger.amqp.consumer import Batching, Consumer, Delivery
from exchanger.amqp.publisher import Publisher
from exchanger.amqp.topology import Topology, events_queue
from exchanger.contracts import SCHEMA_HEADER, ItemEvent, ResponseMessage, ResponseStatus, SentRecord, TaskMessage
from exchanger.creator import outcomes
from exchanger.creator.base import Finished, HandlerOutcome, TrackerOutcome
from exchanger.creator.item_events import AnsweredBroadcast, AnsweredLedger, Sweeper, ledger_ttl_s
from exchanger.creator.loader import Components, LoadedHandler, LoadedTracker
from exchanger.creator.retry_policy import RetryPolicy
from exchanger.creator.settings import CreatorSettings
from exchanger.errors import ContractError, ParkMessage, RetryLater
from exchanger.settings import RabbitMQSettings

EVENT_READ_ATTEMPTS = 3  # reads of an event's item before it is left to the item's tracking record
EVENT_RETRY_S = 10.0  # wait between them (a delay-ladder step)


class CreatorMetrics:
    """The task-creator's Prometheus series, in the service's own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.tasks = Counter("exchanger_creator_tasks", "tasks handled, by queue and result", ["queue", "result"],
                             registry=registry)
        self.checks = Counter("exchanger_creator_checks", "tracker checks, by queue and result", ["queue", "result"],
                              registry=registry)
        self.handler_seconds = Histogram("exchanger_creator_handler_seconds", "time in a handler or tracker call",
                                         ["queue"], registry=registry)
        self.events = Counter("exchanger_creator_item_events",
                              "item events (pushed or swept), by system and result", ["system", "result"],
                              registry=registry)
        self.task_age_seconds = Histogram(
            "exchanger_creator_task_age_seconds", "fetch to final response", ["queue"], registry=registry,
            buckets=(0.1, 0.5, 1, 5, 30, 60, 300, 1800, 3600, 4 * 3600, 86400, 7 * 86400))


def _result_label(action: outcomes.Action) -> str:
    if isinstance(action, outcomes.Respond):
        return f"{action.response.status.value}{'_parked' if action.park_reason else ''}"
    return {outcomes.Track: "tracked", outcomes.Retry: "retry", outcomes.Park: "parked"}[type(action)]


M = TypeVar("M", SentRecord, ItemEvent)


def _read_batch(deliveries: list[Delivery], contract: type[M]) -> tuple[dict[int, M], list[Exception | None]]:
    """The readable messages of a batch by position, and one result per delivery: the
    ``ContractError`` of one that cannot be read (the consumer parks it), else None."""
    found: dict[int, M] = {}
    errors: list[Exception | None] = [None] * len(deliveries)
    for n, delivery in enumerate(deliveries):
        try:
            found[n] = contract.from_bytes(delivery.body, delivery.headers)
        except ContractError as exc:
            errors[n] = exc
    return found, errors


class CreatorService:
    """Consumers for every loaded handler and tracker; :meth:`start`, then :meth:`stop` drains and cleans up."""

    def __init__(
        self,
        components: Components,
        *,
        rabbit: RabbitMQSettings,
        topology: Topology,
        settings: CreatorSettings,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.components = components
        self.rabbit = rabbit
        self.topology = topology
        self.settings = settings
        self.default_policy = settings.retry_policy
        self.registry = registry or CollectorRegistry()
        self.metrics = CreatorMetrics(self.registry)
        self.consumers: list[Consumer] = []
        self._threads: list[threading.Thread] = []
        self.ledgers: dict[str, AnsweredLedger] = {}  # sent queue → Camunda task ids answered lately
        self.sweepers: list[Sweeper] = []
        self.broadcast: AnsweredBroadcast | None = None
        for loaded in components.handlers.values():
            self.consumers.append(self._consumer(loaded.queue, functools.partial(self._on_task, loaded)))
        for tracked in components.trackers.values():
            batching = None
            if tracked.tracker.batch_size > 1:
                batching = Batching(functools.partial(self._on_records, tracked), tracked.tracker.batch_size,
                                    settings.check_batch_window_s)
            self.consumers.append(self._consumer(tracked.queue, functools.partial(self._on_record, tracked),
                                                 batching))
            if tracked.tracker.item_events:
                self._serve_events(tracked)
        if self.ledgers:
            by_system = {t.system: self.ledgers[q] for q, t in components.trackers.items() if q in self.ledgers}
            self.broadcast = AnsweredBroadcast(self.rabbit, by_system)

    def _serve_events(self, tracked: LoadedTracker) -> None:
        """The consumer of ``<system>.events.queue``, the ledger it shares with the sent queue, the sweeper."""
        tracker = tracked.tracker
        if tracked.system not in self.topology.event_systems:  # declared by the consumer before it consumes
            self.topology.event_systems.append(tracked.system)
        self.ledgers[tracked.queue] = AnsweredLedger(ledger_ttl_s(tracker))
        batching = Batching(functools.partial(self._on_events, tracked), max(tracker.batch_size, 1),
                            self.settings.check_batch_window_s)
        self.consumers.append(self._consumer(events_queue(tracked.system), functools.partial(self._on_event, tracked),
                                             batching))
        if tracker.sweep_interval_s > 0:
            self.sweepers.append(Sweeper(tracked.system, tracker, self.rabbit, self.topology,
                                         self.settings.sweep_overlap_s))

    def _consumer(self, queue: str, handler: functools.partial[None], batching: Batching | None = None) -> Consumer:
        """A consumer of ``queue``; with ``batching`` (a tracker that checks many items per request) its
        prefetch is at least a batch."""
        return Consumer(self.rabbit, self.topology, queue, handler, prefetch=self.settings.prefetch.get(queue),
                        name=f"creator:{queue}", on_oversize=self._on_oversized, batching=batching)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> CreatorService:
        for consumer in self.consumers:
            thread = threading.Thread(target=consumer.run, kwargs={"drain_s": self.settings.drain_s},
                                      name=consumer.name, daemon=True)
            thread.start()
            self._threads.append(thread)
        for sweeper in self.sweepers:
            sweeper.start()
        if self.broadcast is not None:
            self.broadcast.start()
        logger.info("task-creator serving {}", ", ".join(c.queue for c in self.consumers))
        return self

    def wait_ready(self, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(c.ready for c in self.consumers):
                return True
            time.sleep(0.02)
        return False

    def readiness(self) -> tuple[bool, str]:
        """Ready when every consumer is connected and consuming."""
        down = [c.queue for c in self.consumers if not c.ready]
        return (not down, f"not consuming: {', '.join(down)}" if down else f"consuming {len(self.consumers)} queues")

    def stop(self) -> None:
        """Stop consuming, let in-flight messages finish within ``CREATOR_DRAIN_S``, clean up handlers."""
        for sweeper in self.sweepers:
            sweeper.stop()
        for consumer in self.consumers:
            consumer.stop()
        if self.broadcast is not None:
            self.broadcast.stop()
        deadline = time.monotonic() + self.settings.drain_s + 5
        for thread in self._threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        stuck = [t.name for t in self._threads if t.is_alive()]
        if stuck:
            logger.warning("consumers still running at the deadline: {}", ", ".join(stuck))
        self.components.cleanup()
        for name, stats in self.stats().items():
            logger.info("{} stats: {}", name, stats)

    def stats(self) -> dict[str, dict[str, int]]:
        """``get_stats()`` of every handler and tracker, by queue."""
        found = {q: h.handler.get_stats() for q, h in self.components.handlers.items()}
        found.update({q: t.tracker.get_stats() for q, t in self.components.trackers.items()})
        return found

    def check_interval_ms(self, sent_queue: str) -> int:
        """The tracker's interval when it runs here, else ``CREATOR_CHECK_INTERVAL_S``."""
        tracked = self.components.trackers.get(sent_queue)
        seconds = tracked.tracker.check_interval_s if tracked else self.settings.check_interval_s
        return int(seconds * 1000)

    # --- deliveries ---------------------------------------------------------------------------

    def _on_task(self, loaded: LoadedHandler, delivery: Delivery, publisher: Publisher) -> None:
        task = TaskMessage.from_bytes(delivery.body, delivery.headers)  # ContractError → parked by the consumer
        handler = loaded.handler
        if delivery.redelivered and handler.write_settle_s > 0:
            raise RetryLater(f"redelivered: a create for task {task.task_id} may still be running on "
                             f"{loaded.system}; looking it up after {handler.write_settle_s:g} s (WRITE_SETTLE_S)",
                             int(handler.write_settle_s * 1000), count_attempt=False)
        policy = RetryPolicy.for_task(task, handler.retry_policy_for(task) or self.default_policy)
        started = time.perf_counter()
        result: HandlerOutcome | Exception
        try:
            result = handler.process_message(task)
        except Exception as exc:  # noqa: BLE001 - every exception is an outcome; outcomes.for_task maps it
            result = exc
            if not isinstance(exc, outcomes.EXPECTED_ERRORS):
                logger.opt(exception=exc).warning("{}: task {} raised", loaded.queue, task.task_id)
        finally:
            self.metrics.handler_seconds.labels(loaded.queue).observe(time.perf_counter() - started)
        action = outcomes.for_task(task, result, attempt=delivery.attempt, policy=policy,
                                   retry_through_camunda=handler.retry_through_camunda,
                                   max_retry_after_s=self.settings.max_retry_after_s)
        if isinstance(action, outcomes.Track) and not loaded.sent_queue:
            reason = (f"the {loaded.system} handler created item {action.record.item.id}, but {loaded.queue} has no "
                      f"sent queue (CREATOR_SENT_QUEUES_MAPPING) to track it in")
            action = outcomes.incident(task, reason, reason, "ConfigError", action.record.item)
        self.metrics.tasks.labels(loaded.queue, _result_label(action)).inc()
        self._execute(action, delivery, publisher, sent_queue=loaded.sent_queue,
                      target_queue=self.topology.settings.responses_queue)

    def _on_record(self, tracked: LoadedTracker, delivery: Delivery, publisher: Publisher) -> None:
        record = SentRecord.from_bytes(delivery.body, delivery.headers)
        if self._answered(tracked, record):
            return
        started = time.perf_counter()
        result: TrackerOutcome | Exception
        try:
            result = tracked.tracker.track(record)
        except Exception as exc:  # noqa: BLE001 - mapped by outcomes.for_check; transient ones re-check later
            result = exc
        finally:
            self.metrics.handler_seconds.labels(tracked.queue).observe(time.perf_counter() - started)
        self._after_check(tracked, record, result, delivery, publisher)

    def _on_records(self, tracked: LoadedTracker, deliveries: list[Delivery],
                    publisher: Publisher) -> list[Exception | None]:
        """A batch of the sent queue: one ``track_many`` for the readable records, then each record's own
        next message; the result per delivery is what :meth:`_on_record` would have raised (None: ack)."""
        readable, errors = _read_batch(deliveries, SentRecord)
        records = {n: record for n, record in readable.items() if not self._answered(tracked, record)}
        started = time.perf_counter()
        results = tracked.tracker.track_many(list(records.values())) if records else []
        self.metrics.handler_seconds.labels(tracked.queue).observe(time.perf_counter() - started)
        for (n, record), result in zip(records.items(), results, strict=True):
            try:
                self._after_check(tracked, record, result, deliveries[n], publisher)
            except Exception as exc:  # noqa: BLE001 - the consumer settles it as _on_record's exception
                errors[n] = exc
        return errors

    def _after_check(self, tracked: LoadedTracker, record: SentRecord, result: TrackerOutcome | Exception,
                     delivery: Delivery, publisher: Publisher) -> None:
        """Publish what the check's ``result`` means for ``record`` (confirmed) or raise for the consumer."""
        if isinstance(result, Exception):
            log = logger.opt(exception=result) if not isinstance(result, outcomes.EXPECTED_ERRORS) else logger
            log.warning("{}: check of {} item {} failed ({})", tracked.queue, record.item.system, record.item.id,
                        result)
        action = outcomes.for_check(record, result, now=datetime.now(UTC),
                                    max_age_s=self.settings.max_tracking_age_s,
                                    max_check_errors=self.settings.max_check_errors)
        ledger = self.ledgers.get(tracked.queue) if isinstance(action, outcomes.Respond) else None
        execute = functools.partial(self._execute, action, delivery, publisher, sent_queue=tracked.queue,
                                    target_queue=tracked.target_queue)
        if not self._respond_once(ledger, tracked.system, record, publisher, execute):
            self.metrics.checks.labels(tracked.queue, "answered_by_event").inc()
            return  # an event answered it while this check ran
        self.metrics.checks.labels(tracked.queue, _result_label(action)).inc()

    def _respond_once(self, ledger: AnsweredLedger | None, system: str, record: SentRecord, publisher: Publisher,
                      publish: Callable[[], None]) -> bool:
        """``publish`` (a response for ``record``) unless its task is answered already; True when it ran.

        The task is claimed in the ledger *before* publishing, so that a check and an event of the same item
        racing each other answer once; a later event (or sweep, or a record coming back) finds it answered,
        here and, through the broadcast, in the other task-creators. Without a ledger it just publishes.
        """
        if ledger is None:
            publish()
            return True
        if not ledger.claim(record):
            return False
        try:
            publish()
        except BaseException:
            ledger.release(record)
            raise
        AnsweredBroadcast.tell(publisher, system, record)
        return True

    # --- item events (exchanger.creator.item_events) ------------------------------------------------

    def _answered(self, tracked: LoadedTracker, record: SentRecord) -> bool:
        """True when an event answered ``record``'s task lately: its tracking ends here, unchecked."""
        ledger = self.ledgers.get(tracked.queue)
        if ledger is None or not ledger.task_answered(record.task.task_id):
            return False
        self.metrics.checks.labels(tracked.queue, "answered_by_event").inc()
        logger.debug("{}: task {} was answered from an event; its tracking record ends", tracked.queue,
                     record.task.task_id)
        return True

    def _on_event(self, tracked: LoadedTracker, delivery: Delivery, publisher: Publisher) -> None:
        error = self._on_events(tracked, [delivery], publisher)[0]
        if error is not None:
            raise error

    def _on_events(self, tracked: LoadedTracker, deliveries: list[Delivery],
                   publisher: Publisher) -> list[Exception | None]:
        """Events of ``<system>.events.queue``: one ``finished`` for their items, one response per finished
        task not answered yet. A failed read (the system away a moment) retries the events after
        :data:`EVENT_RETRY_S`, up to :data:`EVENT_READ_ATTEMPTS` reads: the sweep that found them has moved on
        and will not list them again, the system does not resend a call, and the tracking record may be
        minutes away. Then they are dropped (logged) for the record. Result per delivery as in
        :meth:`_on_records`."""
        system = tracked.system
        events, errors = _read_batch(deliveries, ItemEvent)
        by_item: dict[str, list[int]] = {}
        for n, event in events.items():
            by_item.setdefault(event.item_id, []).append(n)
        answered = [item_id for item_id in by_item if self.ledgers[tracked.queue].item_answered(item_id)]
        for item_id in answered:  # e.g. a sweep finding what an event answered: no need to read it again
            del by_item[item_id]
        self.metrics.events.labels(system, "already_answered").inc(len(answered))
        if not by_item:
            return errors
        try:
            found = tracked.tracker.finished(list(by_item))
        except Exception as exc:  # noqa: BLE001 - retried a few times, then the safety net
            self.metrics.events.labels(system, "read_failed").inc(len(by_item))
            for n in (n for ns in by_item.values() for n in ns):
                if deliveries[n].attempt < EVENT_READ_ATTEMPTS:
                    errors[n] = RetryLater(f"could not read item(s) after an event: {type(exc).__name__}: {exc}",
                                           int(EVENT_RETRY_S * 1000))
            if any(errors[n] is None for ns in by_item.values() for n in ns):
                logger.warning("{}: could not look at item(s) {} after an event ({}: {}); gave up, their tracking "
                               "records answer them", system, ", ".join(by_item), type(exc).__name__, exc)
            return errors
        if any(deliveries[n].lost for ns in by_item.values() for n in ns):
            # the connection went while reading (a broker restart): the events go to another consumer (or to
            # this one again), which answers them; answering here too would complete the tasks twice
            logger.warning("{}: lost the events of item(s) {} while reading them; they are redelivered", system,
                           ", ".join(by_item))
            self.metrics.events.labels(system, "lost_while_reading").inc(len(by_item))
            return errors
        self.metrics.events.labels(system, "still_open").inc(max(0, len(by_item) - len(found)))
        for done in found:
            where = by_item.get(done.record.item.id, [])
            try:
                self._answer_event(tracked, done, deliveries[where[0]] if where else deliveries[0], publisher)
            except Exception as exc:  # noqa: BLE001 - settled by the consumer per delivery
                for n in where:
                    errors[n] = exc
        return errors

    def _answer_event(self, tracked: LoadedTracker, done: Finished, delivery: Delivery, publisher: Publisher) -> None:
        """Respond for a finished item unless its task was answered lately (a duplicate event)."""
        execute = functools.partial(self._execute, outcomes.respond(done.record.task, done.outcome, done.record.item),
                                    delivery, publisher, sent_queue=None, target_queue=tracked.target_queue)
        if not self._respond_once(self.ledgers[tracked.queue], tracked.system, done.record, publisher, execute):
            self.metrics.events.labels(tracked.system, "already_answered").inc()
            return
        self.metrics.events.labels(tracked.system, "answered").inc()

    def _on_oversized(self, delivery: Delivery, publisher: Publisher, reason: str) -> None:
        """A task or record too large to read: its task (the correlation id) becomes an incident.

        The consumer parks the cut message afterwards; without a task id only that happens.
        """
        if not delivery.correlation_id:
            return
        failure = ResponseMessage(task_id=delivery.correlation_id, worker_id="", status=ResponseStatus.FAILURE,
                                  error_message=reason, retries=0)
        publisher.publish_response(failure, correlation_id=failure.task_id)
        self.metrics.tasks.labels(delivery.queue, "failure_parked").inc()
        logger.error("{}: task {} → failure ({})", delivery.queue, failure.task_id, reason)

    def _execute(self, action: outcomes.Action, delivery: Delivery, publisher: Publisher, *,
                 sent_queue: str | None, target_queue: str) -> None:
        """Publish what ``action`` says (confirmed), or raise what makes the consumer retry or park."""
        if isinstance(action, outcomes.Retry):
            raise RetryLater(action.reason, action.delay_ms)
        if isinstance(action, outcomes.Park):
            raise ParkMessage(action.reason, action.error_type)
        if isinstance(action, outcomes.Track):
            assert sent_queue is not None  # a Track without a sent queue became an incident above
            record = action.record
            publisher.publish_delayed(sent_queue, self.check_interval_ms(sent_queue), record.to_bytes(),
                                      headers={SCHEMA_HEADER: SentRecord.SCHEMA}, correlation_id=record.task.task_id)
            return
        response = action.response
        if action.park_reason:
            publisher.park(delivery.park_record(action.park_reason, action.error_type))
        if target_queue == self.topology.settings.responses_queue:
            publisher.publish_response(response, correlation_id=response.task_id)
        else:
            publisher.publish_contract(response, "", target_queue, correlation_id=response.task_id)
        if response.task_created_at is not None:
            age = (datetime.now(UTC) - response.task_created_at).total_seconds()
            self.metrics.task_age_seconds.labels(delivery.queue).observe(max(0.0, age))
        logger.info("{}: task {} → {}{}", delivery.queue, response.task_id, response.status.value,
                    f" ({response.error_message})" if response.error_message else "")
